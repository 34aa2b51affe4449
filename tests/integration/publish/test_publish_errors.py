"""publish's bad inputs end with a clear error and no digest file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, BuildResult
from tests.integration.publish.cli import REPO, cli
from tests.integration.publish.registry import Registry, start_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> BuildResult:
    """Built up front; the publishes below may build again if the shared tree changes."""
    (result,) = Builder.create(REPO).build(["postgres"])
    return result


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("auth-registry"), auth=True) as reg:
        yield reg


@pytest.mark.usefixtures("postgres")
def test_unknown_registry_host(tmp_path: Path) -> None:
    digestfile = tmp_path / "digests.txt"
    result = cli(
        "image", "publish", "registry.invalid/acme", "postgres",
        "--digestfile", str(digestfile),
    )  # fmt: skip
    assert result.returncode == 40, result.stderr
    assert "registry host 'registry.invalid' is unknown" in result.stderr
    assert "hint: check the spelling of REGISTRY" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("postgres")
def test_wrong_credentials_then_right_ones(auth_registry: Registry, tmp_path: Path) -> None:
    digestfile = tmp_path / "out" / "digests.txt"
    wrong = "not-the-password-" + "x" * 8
    auth = auth_registry.auth_file(tmp_path / "auth.json", password=wrong)
    args = ["image", "publish", f"{auth_registry.host}/acme", "postgres"]
    args += ["--digestfile", str(digestfile), "--no-tls-verify"]
    args += ["--records", str(tmp_path / "substitutes.json")]
    result = cli("-v", *args, env={"REGISTRY_AUTH_FILE": str(auth)})
    assert result.returncode == 40, result.stderr
    assert f"registry '{auth_registry.host}' refused the credentials" in result.stderr
    assert "podman login" in result.stderr
    assert wrong not in result.stderr + result.stdout  # never echoed, even with -v
    assert not (tmp_path / "out").exists()

    auth_registry.auth_file(auth)  # the right password, still only in the auth file
    # --tag: skopeo (the tag copy) must find the credentials the same way podman does.
    result = cli(*args, "--tag", "ok", env={"REGISTRY_AUTH_FILE": str(auth)})
    assert result.returncode == 0, result.stderr
    assert digestfile.read_text().startswith(f"{auth_registry.host}/acme/postgres@sha256:")
    assert auth_registry.password is not None
    assert auth_registry.password not in result.stderr + result.stdout


@pytest.mark.usefixtures("postgres")
def test_tls_to_a_plain_http_registry_needs_no_tls_verify(tmp_path: Path) -> None:
    with start_registry(tmp_path / "registry") as registry:
        digestfile = tmp_path / "out" / "digests.txt"
        result = cli(
            "image", "publish", f"{registry.host}/acme", "postgres",
            "--digestfile", str(digestfile),
        )  # fmt: skip
    assert result.returncode == 40, result.stderr
    assert f"TLS to registry '{registry.host}' failed" in result.stderr
    assert "--no-tls-verify" in result.stderr
    assert not (tmp_path / "out").exists()


def changed_checkout(target: Path) -> Path:
    """A copy of the checkout whose postgres image has new inputs (so: not built)."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("src", "images", "build"):
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    with (target / "images/postgres/entrypoint.sh").open("a") as fh:
        fh.write("# a change: new input hash\n")
    return target


def test_image_not_built_and_offline(tmp_path: Path) -> None:
    checkout = changed_checkout(tmp_path / "checkout")
    digestfile = tmp_path / "out" / "digests.txt"
    offline = {
        "CODEBASE_MCP_ROOT": str(checkout),
        "CODEBASE_MCP_STORE": str(tmp_path / "empty-store"),
        # Every download goes to a closed port: this is what "offline" looks like.
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "no_proxy": "",
    }
    args = ["image", "publish", "127.0.0.1:9/acme", "postgres", "--digestfile", str(digestfile)]
    result = cli(*args, "--no-build", env=offline)
    assert result.returncode == 20, result.stderr
    assert "image 'postgres' is not built for the current inputs" in result.stderr
    assert "codebase-mcp image build postgres" in result.stderr

    result = cli(*args, env=offline)  # builds first: needs the inputs, cannot download them
    assert result.returncode == 15, result.stderr
    assert "could not download" in result.stderr
    assert "hint: check the network" in result.stderr
    assert not (tmp_path / "out").exists()
