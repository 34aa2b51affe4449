"""`--embedder ollama`'s container as podman really runs it, with a stand-in image.

The upstream Ollama image cannot be pulled here (no registry), so this test
builds a stand-in from the project's embedder image that behaves like upstream
where the pod spec depends on it: it runs as root, its entrypoint is
``ollama`` (``serve`` by default, ``list`` for the probe), it listens on
``OLLAMA_HOST`` and at start writes its key into ``$HOME/.ollama`` (as Ollama
does). It is referenced by digest, as the lock pins upstream.

What this proves on real podman: the rendered container (root, no capabilities,
no privilege escalation, read-only root filesystem) starts, its probe passes,
root without CAP_DAC_OVERRIDE can write its own volume, that volume keeps the
data across down/up and ``down --volumes`` removes it. What it cannot prove:
anything about the real Ollama binary, its model pull, or nomic-embed-text.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pod import only_container, podman, wait_healthy

from codebase_mcp.pod.features import detect_version, features_for
from codebase_mcp.pod.lifecycle import Lifecycle
from codebase_mcp.pod.models import RenderInputs
from codebase_mcp.pod.podman import Podman
from codebase_mcp.pod.render import render
from codebase_mcp.proc import Runner, which

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

STANDIN = "localhost/codebase-mcp-test-ollama-standin"
# Upstream's CLI as far as the pod uses it. Written like Ollama: the key is created once.
OLLAMA_SCRIPT = """#!/bin/sh
set -e
address="${OLLAMA_HOST:-127.0.0.1:11434}"
case "${1:-serve}" in
  serve)
    mkdir -p "$HOME/.ollama/models"
    [ -f "$HOME/.ollama/id_ed25519" ] || od -An -tx1 -N32 /dev/urandom > "$HOME/.ollama/id_ed25519"
    exec codebase-mcp embedder serve --host "${address%:*}" --port "${address##*:}" ;;
  list)
    exec codebase-mcp embedder probe --url "http://$address" ;;
  *)
    echo "stand-in ollama: unknown command $1" >&2; exit 2 ;;
esac
"""


def buildah(*args: str) -> str:
    result = subprocess.run(["buildah", *args], check=True, capture_output=True, text=True)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def standin_ref(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in image, as ``repository@sha256:digest`` (how the lock pins upstream)."""
    if which("podman") is None or which("buildah") is None:
        pytest.skip("podman and buildah are needed")
    from codebase_mcp.builder import api

    api.build(["embedder"])
    script = tmp_path_factory.mktemp("standin") / "ollama"
    script.write_text(OLLAMA_SCRIPT)
    script.chmod(0o755)
    container = buildah("from", "--pull-never", api.image_ref("embedder"))
    try:
        buildah("copy", "--chmod", "0755", container, str(script), "/usr/local/bin/ollama")
        buildah(
            "config", "--user", "0:0", "--env", "HOME=/root",
            "--entrypoint", '["/usr/local/bin/ollama"]', "--cmd", "serve", container,
        )  # fmt: skip
        buildah("commit", "--format", "oci", "--quiet", container, f"{STANDIN}:test")
    finally:
        buildah("rm", container)
    digest = podman("image", "inspect", "--format", "{{.Digest}}", f"{STANDIN}:test").stdout
    try:
        yield f"{STANDIN}@{digest.strip()}"
    finally:
        podman("rmi", "--force", f"{STANDIN}:test", check=False)


def in_container(container: str, *argv: str, check: bool = True) -> str:
    return podman("exec", container, *argv, check=check).stdout.strip()


def test_ollama_container_runs_locked_down_and_keeps_its_volume(
    standin_ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBASE_MCP_DATA_DIR", str(tmp_path / "data"))
    name = f"cm-ol-{os.getpid() % 100000}-{int(time.time()) % 10000}"
    runner = Runner()
    inputs = RenderInputs(
        name=name,
        profile="test",
        embedder="ollama",
        images={"postgres": "unused", "embedder": standin_ref, "server": "unused"},
        features=features_for(detect_version(runner)),
    )
    spec = tmp_path / "pod.yaml"
    spec.write_text(only_container(render(inputs), "embedder"))
    container = inputs.names.container("embedder")
    podman_ = Podman(runner)
    life = Lifecycle(podman=podman_)
    try:
        podman_.play(spec)
        wait_healthy(container, timeout=90)  # the probe is `ollama list`
        assert podman("inspect", "--format", "{{.ImageName}}", container).stdout.strip() == (
            standin_ref
        )
        # Root, but with no capabilities at all and no way to gain any.
        assert in_container(container, "id", "-u") == "0"
        status = in_container(container, "cat", "/proc/1/status")
        caps = dict(line.split(":\t", 1) for line in status.splitlines() if line.startswith("Cap"))
        assert caps["CapEff"].strip() == "0" * 16, caps
        assert caps["CapBnd"].strip() == "0" * 16, caps
        assert in_container(container, "grep", "NoNewPrivs", "/proc/1/status").split() == [
            "NoNewPrivs:",
            "1",
        ]
        # The root filesystem is read-only; /root/.ollama is the pod's own volume.
        denied = podman("exec", container, "touch", "/etc/probe", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        assert podman("volume", "exists", inputs.names.ollama, check=False).returncode == 0
        key = in_container(container, "cat", "/root/.ollama/id_ed25519")
        assert len(key.split()) == 32

        # down (keep volumes) → play again: Ollama finds its key (and models) again.
        life.down(name, volumes=False)
        podman_.play(spec)
        wait_healthy(container, timeout=90)
        assert in_container(container, "cat", "/root/.ollama/id_ed25519") == key
    finally:
        life.down(name, volumes=True)
    assert podman("volume", "exists", inputs.names.ollama, check=False).returncode != 0
    assert podman("pod", "exists", name, check=False).returncode != 0
