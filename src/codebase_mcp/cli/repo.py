"""``codebase-mcp repo list | add PATH | remove PATH``: the repositories a pod mounts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from codebase_mcp.cli.pod import _pod_name, name_option


@click.group()
def repo() -> None:
    """The repositories the pod mounts (read-only) for indexing; remembered per pod.

    \b
    codebase-mcp repo list                 what the next `up` mounts, and what is missing
    codebase-mcp repo add /abs/path        mount it from the next `up` on
    codebase-mcp repo remove /abs/path     forget it (its index stays in the database)

    `up --repo PATH` mounts and remembers too (replacing the list). `up` skips a
    remembered repository that no longer exists, with a warning.
    """


@repo.command("list")
@name_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(name: str | None, as_json: bool) -> None:
    """The remembered repositories, each `ok` or `missing` (not mounted by `up`)."""
    from codebase_mcp.pod.state import load_state, pod_dir

    state = load_state(pod_dir(_pod_name(name)))
    repos = state.repos if state else []
    rows = [{"path": r, "exists": os.path.isdir(r)} for r in repos]
    if as_json:
        click.echo(json.dumps({"repos": rows}, indent=2))
        return
    if not rows:
        click.echo("no repositories remembered: `codebase-mcp repo add /abs/path`")
    for row in rows:
        click.echo(f"{'ok     ' if row['exists'] else 'missing'}  {row['path']}")


@repo.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@name_option
def add(path: Path, name: str | None) -> None:
    """Remember PATH: the next `codebase-mcp up` mounts it read-only."""
    from codebase_mcp.pod import repos
    from codebase_mcp.pod.state import pod_dir

    pod = _pod_name(name)
    resolved = str(path.resolve())
    if repos.add(pod_dir(pod), pod, resolved):
        click.echo(f"added {resolved}: `codebase-mcp up` mounts it (the running pod is unchanged)")
    else:
        click.echo(f"{resolved} is already remembered")


@repo.command()
@click.argument("path")
@name_option
def remove(path: str, name: str | None) -> None:
    """Forget PATH (it may no longer exist): the next `up` does not mount it.

    Its index stays in the database; the delete_project tool removes it.
    """
    from codebase_mcp.pod import repos
    from codebase_mcp.pod.state import pod_dir
    from codebase_mcp.server import tools

    pod = _pod_name(name)
    gone = repos.remove(pod_dir(pod), pod, path)
    click.echo(
        f"forgot {gone}: the next `codebase-mcp up` does not mount it "
        f"(its index stays in the database: the {tools.DELETE_PROJECT} tool removes it)"
    )
