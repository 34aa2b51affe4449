"""``codebase-mcp doctor``."""

from __future__ import annotations

import click

from codebase_mcp.errors import HostCheckFailed

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check this host for what building and running the stack needs, and say how to fix it.

    Checks podman, buildah, mmdebstrap, dpkg-dev, the OCI runtime against the
    cgroup setup, nofile limits against podman's defaults, storage driver, and
    for rootless use the subuid/subgid ranges and /dev/net/tun.
    """
    from codebase_mcp import doctor as checks

    results = checks.run_checks()
    if as_json:
        click.echo(checks.as_json(results))
    else:
        for r in results:
            click.echo(f"[{MARKS[r.status]}] {r.name:<17} {r.detail}")
            if r.fix and r.status != "ok":
                click.echo(f"       fix: {r.fix}")
    failed = [r.name for r in results if r.status == "fail"]
    if failed:
        raise HostCheckFailed(
            f"{len(failed)} check(s) failed: {', '.join(failed)}",
            hint="apply the fixes above, then run `codebase-mcp doctor` again",
        )
