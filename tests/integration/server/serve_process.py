"""``codebase-mcp serve`` as a real process for module-scoped fixtures: its own migrated
database, its log in a file the tests can read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.postgres import PgServer, scratch_database

CLI = str(Path(sys.executable).parent / "codebase-mcp")


@contextmanager
def migrated_database(pg: PgServer) -> Iterator[str]:
    """A fresh database migrated to head (for a module's worth of tests); dropped after."""
    with scratch_database(pg, migrate=True) as dsn:
        yield dsn


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    port: int
    process: subprocess.Popen[str]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def run_serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    """``serve`` expected to exit at once (a refusal): its result."""
    return subprocess.run(
        [CLI, "serve", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def serving(
    args: list[str], env: dict[str, str], log: Path, port: int, startup_timeout: float = 90
) -> Iterator[Served]:
    """Start ``serve``; yield once /health answers at all (200 or 503); stop it after.

    Importing the server alone took 13-19 s on the shared 2-core host at a load
    average of 12-14 (2026-12-02): hence the generous ``startup_timeout``."""
    handle = log.open("w")
    process = subprocess.Popen(
        [CLI, "serve", "--transport", "http", *args],
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"serve did not answer /health in {startup_timeout} s:\n{log.read_text()}"
                )
            time.sleep(0.2)
        yield Served(url=url, port=port, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        handle.close()
