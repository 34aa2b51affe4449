"""The CLI as the publish tests run it: a subprocess in the checkout under test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from codebase_mcp.builder.api import repo_root

# The checkout under test ($CODEBASE_MCP_ROOT when set, like the CLI).
REPO = repo_root(Path(__file__).resolve().parent)
CLI = [sys.executable, "-c", "from codebase_mcp.cli import main; main()"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
