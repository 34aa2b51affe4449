"""``codebase-mcp doctor [--fix] [--dry-run] [--tests] [--json] [--packages]``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from codebase_mcp.errors import HostCheckFailed

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


@click.command()
@click.option("--fix", is_flag=True,
              help="Change what is missing: as root install the packages and write "
              "/etc/containers/containers.conf (merged, never replaced); as a plain user fix "
              "your own containers.conf and print the sudo commands for the rest.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="With --fix: print the plan, change nothing.")
@click.option("--tests", is_flag=True,
              help="Also what `make test` needs beyond the stack (a local registry for the "
              "publish tests).")  # fmt: skip
@click.option("--packages", "list_packages", is_flag=True,
              help="Print the Debian packages the project needs (one per line), exit.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the checks (and plan) as JSON.")
def doctor(fix: bool, dry_run: bool, tests: bool, list_packages: bool, as_json: bool) -> None:
    """Check this host for what building and running the stack needs, and fix it.

    Checks the packages of one list (podman, its pause binary catatonit, runc,
    buildah, mmdebstrap, dpkg-dev, ...), the OCI runtime against the cgroup
    setup, the nofile/nproc limits containers get against the host's caps, the
    storage driver, and for rootless use the subuid/subgid ranges, user
    namespaces and /dev/net/tun.

    \b
    codebase-mcp doctor                 the checks, each with its fix
    sudo codebase-mcp doctor --fix      install and configure what is missing
    codebase-mcp doctor --fix --dry-run the plan only
    A second --fix changes nothing.
    """
    from codebase_mcp import doctor as checks
    from codebase_mcp.doctor import apply
    from codebase_mcp.doctor import fix as fixes
    from codebase_mcp.hostpackages import wanted
    from codebase_mcp.proc import Runner

    if list_packages:
        click.echo("\n".join(p.name for p in wanted(tests=tests)))
        return
    runner = Runner()
    facts = checks.gather(runner)
    plan = fixes.plan(facts, tests=tests) if fix else None
    changed: list[str] = []
    if plan is not None and not dry_run:
        changed = apply.apply(plan, runner)
        if changed:
            facts = checks.gather(runner)  # check the host as it is now
            plan = fixes.plan(facts, tests=tests)
    results = checks.evaluate(facts, tests=tests)
    if as_json:
        click.echo(json.dumps(_json(results, plan, changed, dry_run), indent=2))
    else:
        _print(results, plan, changed, dry_run, facts.uid)
    failed = [r.name for r in results if r.status == "fail"]
    if failed:
        if plan is None or dry_run:
            hint = f"run: {checks.fix_command(facts.uid)}"
        elif plan.manual:
            hint = "run the commands above, then `codebase-mcp doctor` again"
        else:
            hint = "the checks above say what to fix by hand; then run `codebase-mcp doctor`"
        raise HostCheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}", hint=hint)


def _print(results: list[Any], plan: Any, changed: list[str], dry_run: bool, uid: int) -> None:
    from codebase_mcp.doctor.fix import Command, SetConf, WriteFile

    for r in results:
        click.echo(f"[{MARKS[r.status]}] {r.name:<17} {r.detail}")
        if r.fix and r.status != "ok":
            click.echo(f"       fix: {r.fix}")
    if plan is None:
        return
    if dry_run:
        for action in plan.actions:
            if isinstance(action, Command):
                click.echo(f"would run: {action.shell()}  ({action.why})")
            elif isinstance(action, SetConf):
                click.echo(f"would set: {action.describe()}")
            elif isinstance(action, WriteFile):
                click.echo(f"would write: {action.path}")
        if not plan.actions:
            click.echo("--fix would change nothing here")
    else:
        for line in changed:
            click.echo(f"changed: {line}")
        if not changed:
            click.echo("nothing to change" + (" as this user" if plan.manual else ""))
    if plan.manual:
        from codebase_mcp.doctor import fix_command

        click.echo(f"run as root (or all at once: `{fix_command(uid)}`):")
        for command in plan.manual:
            click.echo(f"  {command.shell(sudo=uid != 0)}    # {command.why}")


def _json(results: list[Any], plan: Any, changed: list[str], dry_run: bool) -> dict[str, Any]:
    from codebase_mcp.doctor.fix import Command, SetConf

    data: dict[str, Any] = {
        "ok": all(r.status != "fail" for r in results),
        "checks": [asdict(r) for r in results],
    }
    if plan is not None:

        def describe(action: Any) -> dict[str, Any]:
            if isinstance(action, Command):
                return {"run": action.shell(), "why": action.why}
            if isinstance(action, SetConf):
                return {"set": action.describe(), "why": action.why}
            return {"write": action.path, "why": action.why}

        data["plan"] = [describe(a) for a in plan.actions] if dry_run else []
        data["changed"] = changed
        data["manual"] = [{"run": c.shell(sudo=True), "why": c.why} for c in plan.manual]
    return data
