"""Real podman 4.3+ `kube play` of the rendered spec, Postgres container only.

Checks what the full e2e cannot isolate: the password travels from a podman
secret through `secretKeyRef` (the 4.3 workaround), Postgres is not
published, data survives down/up, a killed process is restarted with its
data, and `down --volumes` leaves nothing. Needs only the postgres image.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pod import only_container, podman, wait_healthy

from codebase_mcp.pod import secret
from codebase_mcp.pod.features import detect_version, features_for
from codebase_mcp.pod.lifecycle import Lifecycle, free_port
from codebase_mcp.pod.models import RenderInputs
from codebase_mcp.pod.podman import Podman
from codebase_mcp.pod.render import render
from codebase_mcp.pod.state import password_file, pod_dir
from codebase_mcp.proc import Runner, which

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def postgres_ref() -> str:
    """The project's postgres image, built by the builder (a no-op when cached)."""
    if which("podman") is None:
        pytest.skip("podman is not installed")
    from tests.support.postgres import postgres_image

    return postgres_image()


def psql(container: str, password: str, sql: str) -> str:
    # Over TCP with the password: proves the secret reached initdb (scram auth).
    result = podman(
        "exec", "-e", f"PGPASSWORD={password}", container,
        "psql", "-h", "127.0.0.1", "-U", "codebase", "-d", "codebase", "-tAc", sql,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture
def pg_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_ref: str
) -> Iterator[dict[str, object]]:
    monkeypatch.setenv("CODEBASE_MCP_DATA_DIR", str(tmp_path / "data"))
    name = f"cm-it-{os.getpid() % 100000}-{int(time.time()) % 10000}"
    runner = Runner()
    inputs = RenderInputs(
        name=name,
        profile="test",
        images={"postgres": postgres_ref, "embedder": "unused", "server": "unused"},
        port=free_port(),
        features=features_for(detect_version(runner)),
    )
    spec = tmp_path / "pod.yaml"
    spec.write_text(only_container(render(inputs), "postgres"))
    directory = pod_dir(name)
    secret.ensure_podman_secret(runner, inputs.names.secret, password_file(directory))
    podman_ = Podman(runner)
    life = Lifecycle(podman=podman_)
    try:
        yield {
            "name": name, "spec": spec, "podman": podman_, "life": life,
            "container": inputs.names.container("postgres"),
            "password": password_file(directory).read_text().strip(), "names": inputs.names,
        }  # fmt: skip
    finally:
        life.down(name, volumes=True)


def test_postgres_in_the_pod_keeps_data_and_restarts(pg_pod: dict[str, object]) -> None:
    name, spec, container = str(pg_pod["name"]), Path(str(pg_pod["spec"])), str(pg_pod["container"])
    password = str(pg_pod["password"])
    podman_: Podman = pg_pod["podman"]  # type: ignore[assignment]
    life: Lifecycle = pg_pod["life"]  # type: ignore[assignment]

    podman_.play(spec)
    wait_healthy(container)
    assert psql(container, password, "SELECT extname FROM pg_extension WHERE extname='vector'") == (
        "vector"
    )
    # listen_addresses=127.0.0.1 and no containerPort: nothing published, nothing on the pod IP
    assert podman("port", container).stdout.strip() == ""
    listen = psql(container, password, "SHOW listen_addresses")
    assert listen == "127.0.0.1"
    psql(container, password, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")

    # a crash of the process: restarted by the pod's restart policy, data intact
    pid = podman("inspect", container, "--format", "{{.State.Pid}}").stdout.strip()
    os.kill(int(pid), 9)
    deadline = time.monotonic() + 30
    while json.loads(podman("inspect", container).stdout)[0]["RestartCount"] < 1:
        assert time.monotonic() < deadline, "postgres was not restarted"
        time.sleep(0.3)
    wait_healthy(container)
    assert psql(container, password, "SELECT v FROM kept") == "survives"

    # down (keep volumes) → play again: same data, same password
    removed = life.down(name, volumes=False)
    assert f"pod {name}" in removed
    podman_.play(spec)
    wait_healthy(container)
    assert psql(container, password, "SELECT v FROM kept") == "survives"

    # down --volumes leaves nothing behind
    names = pg_pod["names"]
    life.down(name, volumes=True)
    assert podman("pod", "exists", name, check=False).returncode != 0
    for volume in [*names.data_volumes(), *names.scratch_volumes()]:  # type: ignore[attr-defined]
        assert podman("volume", "exists", volume, check=False).returncode != 0, volume
    assert podman("secret", "inspect", names.secret, check=False).returncode != 0  # type: ignore[attr-defined]
    assert not pod_dir(name).exists()
