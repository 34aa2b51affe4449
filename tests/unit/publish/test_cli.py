from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from codebase_mcp.cli import cli
from codebase_mcp.cli.image_publish import commands


def test_commands_join_the_image_group() -> None:
    assert [c.name for c in commands()] == ["publish", "sbom", "gc"]
    result = CliRunner().invoke(cli, ["image", "publish", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--tag", "--digestfile", "--json", "--no-tls-verify", "--sign-by"):
        assert option in result.output
    assert "--creds" not in result.output and "--password" not in result.output


def test_bad_destination_is_a_usage_error() -> None:
    code = "from codebase_mcp.cli import main; main()"
    argv = [sys.executable, "-c", code, "image", "publish", "no-registry", "server"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert "does not start with a registry host" in result.stderr
    assert "hint: write REGISTRY/REPO" in result.stderr
