"""Run ``codebase-mcp init`` as a real subprocess and inspect what it leaves behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CLI = str(Path(sys.executable).with_name("codebase-mcp"))
SUPERVISE_ONLY = ["--no-wait-database", "--no-wait-embedder", "--no-migrate"]


def start_init(
    options: Sequence[str], command: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    full_env = {**os.environ, "CODEBASE_MCP_INIT_LOG_FORMAT": "json", **(env or {})}
    return subprocess.Popen(
        [CLI, "init", *options, "--", *command],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(stderr: str) -> list[dict[str, object]]:
    """The init's JSON log lines (other stderr lines, e.g. the final error, are skipped)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "init":
                out.append(record)
    return out


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.02)


def proc_children(ppid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is ``ppid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == ppid:
            found.append((int(entry.name), fields[0]))
    return found
