"""Hot reload for the dev profile: run a command, restart it when a watched file changes.

``python3 -m codebase_mcp.pod.devreload --watch DIR [--watch DIR ...] -- CMD ...``

Polls modification times (no inotify tools in the image, and bind mounts from
a VM share often drop inotify events anyway). Stdlib only: it runs from the
bind-mounted checkout inside the server image. Not used by prod or test.
It is the one place that starts a process with ``subprocess.Popen`` rather
than ``codebase_mcp.proc``: it supervises a long-running child, which
``proc.run`` (run to completion) cannot do.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

WATCHED_SUFFIXES = (".py", ".sql", ".ini", ".toml", ".mako")


def snapshot(roots: Iterable[Path]) -> dict[str, float]:
    """mtime of every watched file under ``roots`` (missing roots are skipped)."""
    seen: dict[str, float] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if d != "__pycache__" and not d.startswith(".")
            )
            for filename in filenames:
                if filename.endswith(WATCHED_SUFFIXES):
                    path = os.path.join(dirpath, filename)
                    try:
                        seen[path] = os.stat(path).st_mtime
                    except FileNotFoundError:
                        continue
    return seen


def changed(before: dict[str, float], after: dict[str, float]) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k))


def _stop(child: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devreload", description=__doc__)
    parser.add_argument("--watch", action="append", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state = snapshot(args.watch)
    child = subprocess.Popen(command)
    while not stopping:
        time.sleep(args.interval)
        current = snapshot(args.watch)
        diff = changed(state, current)
        if diff:
            print(
                f"devreload: {diff[0]} changed ({len(diff)} file(s)): restarting", file=sys.stderr
            )
            _stop(child)
            state = current
            child = subprocess.Popen(command)
        elif child.poll() is not None:
            # The server exited on its own: let the restart policy see it.
            return child.returncode
    _stop(child)
    return 0


if __name__ == "__main__":
    sys.exit(main())
