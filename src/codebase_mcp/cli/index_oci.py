"""``codebase-mcp index push | pull``: an index file as an OCI artifact, by digest."""

from __future__ import annotations

import json
from pathlib import Path

import click

from codebase_mcp import ui
from codebase_mcp.cli.params import PodmanBoolCommand, tls_verify_option

authfile_option = click.option(
    "--authfile",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="REGISTRY_AUTH_FILE",
    help="containers auth.json with the registry's credentials (what `podman login` writes); "
    "default: the engine's auth file. Must exist if given. [env: REGISTRY_AUTH_FILE]",
)


@click.command(cls=PodmanBoolCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("reference", metavar="REGISTRY/REPO:TAG")
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata for the manifest (e.g. project=ID, model=NAME@DIGEST), stored as "
    "dev.codebase-mcp.index.KEY. Same file and annotations, same digest.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@tls_verify_option
@authfile_option
def push(
    file: Path,
    reference: str,
    annotations: tuple[str, ...],
    as_json: bool,
    tls_verify: bool,
    authfile: Path | None,
) -> None:
    """Push index FILE to REGISTRY/REPO:TAG as an OCI artifact; print its digest.

    \b
    The manifest is deterministic (no timestamp): the same file gives the same
    digest, which is what `index pull REGISTRY/REPO@sha256:…` fetches.
    Credentials: `podman login REGISTRY` or REGISTRY_AUTH_FILE; never argv.
    """
    from codebase_mcp.errors import UsageError
    from codebase_mcp.publish import index_oci

    notes: dict[str, str] = {}
    for item in annotations:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"annotation '{item}' is not KEY=VALUE")
        notes[key] = value
    result = index_oci.push(
        file, reference, annotations=notes, tls_verify=tls_verify, authfile=authfile
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(result.reference)


@click.command(cls=PodmanBoolCommand)
@click.argument("reference", metavar="REF")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the index file here (atomically; nothing is written on failure).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@tls_verify_option
@authfile_option
def pull(
    reference: str, output: Path, as_json: bool, tls_verify: bool, authfile: Path | None
) -> None:
    """Pull the index artifact REF (REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:…) into a file.

    Refuses anything that is not an index artifact (exit 42) and any blob or
    manifest whose digest does not match (exit 43). Import it afterwards with
    `codebase-mcp index import FILE`.
    """
    from codebase_mcp.publish import index_oci

    result = index_oci.pull(reference, output, tls_verify=tls_verify, authfile=authfile)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(result.reference)
        ui.info(f"{result.size} bytes ({result.layer_digest}) → {output}")
