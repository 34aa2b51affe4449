"""Upstream images pinned for real: skopeo against a local registry, then a pull by digest.

docker.io is unreachable here, so the "upstream" image is a tiny one pushed to
a throwaway local registry (Debian's docker-registry) on a port: what the lock
does with `images/upstream.toml` and what `up --embedder ollama` then does with
the pin (`podman pull repository@digest`) run exactly as they would against
docker.io.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.builder import api
from codebase_mcp.builder.lockfile import Lock, load_lock, write_lock
from codebase_mcp.builder.locking import resolve_upstream
from codebase_mcp.errors import CommandFailed
from codebase_mcp.pod.podman import Podman
from codebase_mcp.proc import Runner
from tests.integration.publish.registry import Registry, start_registry
from tests.support.pod import podman

pytestmark = pytest.mark.integration
CONF_D = Path("/etc/containers/registries.conf.d")
CLI = str(Path(sys.executable).with_name("codebase-mcp"))


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    if os.geteuid() != 0:
        pytest.skip("marks the throwaway registry insecure in /etc/containers: needs root")
    with start_registry(tmp_path / "registry") as reg:
        # Plain HTTP on loopback. skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF, so the
        # exception goes in a drop-in for this one host:port, removed afterwards.
        CONF_D.mkdir(parents=True, exist_ok=True)
        dropin = CONF_D / f"zz-codebase-mcp-test-{reg.host.rsplit(':', 1)[1]}.conf"
        dropin.write_text(f'[[registry]]\nlocation = "{reg.host}"\ninsecure = true\n')
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        try:
            yield reg
        finally:
            dropin.unlink()


def push_tiny_image(registry: Registry, tmp_path: Path, reference: str) -> str:
    """Import a one-file image, push it as ``reference``; the manifest digest pushed."""
    tar_path = tmp_path / "tiny.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = secrets.token_bytes(64)
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    local = f"localhost/cm-upstream-test:{secrets.token_hex(4)}"
    podman("import", "-q", str(tar_path), local)
    digestfile = tmp_path / "digest"
    try:
        podman("push", "--tls-verify=false", "--digestfile", str(digestfile), local, reference)
    finally:
        podman("rmi", "--force", local, check=False)
    return digestfile.read_text().strip()


def project_with_upstream(tmp_path: Path, reference: str) -> Path:
    root = tmp_path / "checkout"
    (root / "images").mkdir(parents=True)
    (root / "images" / "upstream.toml").write_text(f'[ollama]\nreference = "{reference}"\n')
    return root


def test_lock_pins_the_digest_and_up_pulls_by_it(registry: Registry, tmp_path: Path) -> None:
    reference = f"{registry.host}/ollama/ollama:latest"
    pushed = push_tiny_image(registry, tmp_path, reference)
    root = project_with_upstream(tmp_path, reference)

    # `image lock --upstream` on a checkout with a lock: only the pin changes.
    committed = api.repo_root() / "build" / "lock.json"
    (root / "build").mkdir()
    shutil.copy(committed, root / "build" / "lock.json")
    result = subprocess.run(
        [CLI, "image", "lock", "--upstream", "--root", str(root)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pinned = f"{registry.host}/ollama/ollama@{pushed}"
    assert pinned in result.stderr
    assert api.upstream_ref("ollama", root) == pinned
    assert load_lock(root).images == load_lock(api.repo_root()).images

    # `up`'s pull step: by digest, so a tag moved since the lock changes nothing.
    push_tiny_image(registry, tmp_path, reference)  # :latest now names another image
    engine = Podman(Runner())
    try:
        engine.pull(pinned)
        assert engine.image_exists(pinned)
        assert pushed in podman("image", "inspect", "--format", "{{.Digest}}", pinned).stdout
    finally:
        podman("rmi", "--force", pinned, check=False)

    # Re-locking now pins the image the tag names now.
    moved = resolve_upstream(root, load_lock(root), Runner())
    assert moved["ollama"].digest not in (None, pushed)


def test_an_unreachable_registry_keeps_the_pin_and_pull_fails_with_a_hint(
    registry: Registry, tmp_path: Path
) -> None:
    reference = f"{registry.host}/ollama/ollama:latest"
    pushed = push_tiny_image(registry, tmp_path, reference)
    root = project_with_upstream(tmp_path, reference)
    first = resolve_upstream(root, None, Runner())
    write_lock(root, Lock(source_date_epoch=0, images={}, upstream=first))

    gone = project_with_upstream(tmp_path / "gone", "127.0.0.1:9/ollama/ollama:latest")
    previous = Lock(source_date_epoch=0, images={}, upstream=first)
    # Another reference than the one pinned: nothing to keep, left unpinned.
    assert resolve_upstream(gone, previous, Runner())["ollama"].digest is None
    # The same reference, registry down (port 9 discards): the previous pin stays.
    down = project_with_upstream(tmp_path / "down", reference.replace(registry.host, "127.0.0.1:9"))
    previous_down = Lock(
        source_date_epoch=0,
        images={},
        upstream={"ollama": first["ollama"].model_copy(
            update={"reference": reference.replace(registry.host, "127.0.0.1:9")}
        )},
    )  # fmt: skip
    kept = resolve_upstream(down, previous_down, Runner())
    assert kept["ollama"].digest == pushed

    with pytest.raises(CommandFailed) as failed:
        Podman(Runner()).pull(f"127.0.0.1:9/ollama/ollama@{pushed}")
    assert "registry access" in (failed.value.hint or "")
