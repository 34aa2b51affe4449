"""``codebase-mcp doctor``: is this host ready to build and run the stack, and what to fix.

Facts are gathered once (:mod:`.facts`: programs, podman's helper binaries, versions,
``podman info``, limits, containers.conf, subuid ranges); the checks (:mod:`.checks`)
and the fix (:mod:`.fix`, a plan of actions) are pure functions of those facts, tested
without a host; :mod:`.apply` runs a plan. The packages come from one list,
:mod:`codebase_mcp.hostpackages`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from codebase_mcp.doctor.checks import (
    CheckResult,
    Status,
    as_json,
    evaluate,
    free_subid_range,
    subid_count,
)
from codebase_mcp.doctor.facts import HostFacts, HostPaths, Limit, gather, parse_version
from codebase_mcp.proc import Runner

__all__ = [
    "CheckResult",
    "HostFacts",
    "HostPaths",
    "Limit",
    "Status",
    "as_json",
    "evaluate",
    "fix_command",
    "free_subid_range",
    "gather",
    "parse_version",
    "run_checks",
    "subid_count",
]


def run_checks(runner: Runner | None = None, *, tests: bool = False) -> list[CheckResult]:
    return evaluate(gather(runner), tests=tests)


def fix_command(uid: int) -> str:
    """The one command that fixes this host, spelled as this process was started.

    ``sudo`` for a plain user: root's fix installs the packages, writes
    /etc/containers/containers.conf and sets up the rootless parts for the user
    who ran sudo.
    """
    cli = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("codebase-mcp")
    if cli.name != "codebase-mcp":
        cli = Path(sys.executable).with_name("codebase-mcp")
    try:
        shown = str(Path(os.path.abspath(cli)).relative_to(Path.cwd()))
        shown = shown if "/" in shown else f"./{shown}"
    except ValueError:
        shown = str(cli) if "/" in str(cli) else "codebase-mcp"
    return ("" if uid == 0 else "sudo ") + f"{shlex.quote(shown)} doctor --fix"
