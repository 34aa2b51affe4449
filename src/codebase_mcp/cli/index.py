"""``codebase-mcp index``: share an index (push/pull as an OCI artifact; export/import)."""

from __future__ import annotations

import click

from codebase_mcp.cli.index_file import export_cmd, import_cmd
from codebase_mcp.cli.index_oci import pull, push


@click.group("index")
def index_group() -> None:
    """Share an index: export/import it as a file, push/pull that file to/from an OCI registry."""


index_group.add_command(push)
index_group.add_command(pull)
index_group.add_command(export_cmd)
index_group.add_command(import_cmd)
