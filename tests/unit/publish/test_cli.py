from __future__ import annotations

import subprocess
import sys

import pytest
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


def _publish_request(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, object]:
    """Run `image publish ARGS` with the push replaced: exit code, output, the request."""
    import codebase_mcp.publish.run as run

    seen: list[object] = []
    monkeypatch.setattr(run, "publish", lambda root, request: seen.append(request) or [])
    result = CliRunner().invoke(cli, ["image", "publish", "localhost:5000/acme", "server", *args])
    return result.exit_code, result.output, seen[0] if seen else None


@pytest.mark.parametrize(
    ("args", "verify"),
    [
        ((), True),
        (("--tls-verify=false",), False),
        (("--tls-verify=False",), False),
        (("--tls-verify=0",), False),
        (("--tls-verify=true",), True),
        (("--tls-verify",), True),
        (("--no-tls-verify",), False),
        (("--no-tls-verify", "--tls-verify=true"), True),  # the last one wins, as in podman
    ],
)
def test_tls_verify_takes_podmans_spelling(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], verify: bool
) -> None:
    code, output, request = _publish_request(monkeypatch, *args)
    assert code == 0, output
    assert request.tls_verify is verify  # type: ignore[attr-defined]


def test_tls_verify_with_a_bad_value_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output, request = _publish_request(monkeypatch, "--tls-verify=maybe")
    assert code == 2 and request is None
    assert "'maybe' is not a boolean: use --tls-verify=true or --tls-verify=false" in output
