"""Issue 15 on one machine: two server processes and two embedders in one pod.

`codebase-mcp up` plays the pod (Postgres, embedder, server), then its own spec is
played again with small shards (SHARD_CHUNKS), a short STALE_AFTER and quick polls
added to the server's env (`up` has no option for them). The test adds a second
embedder and a second server to that same pod with `podman run --pod`, the server
configured like the first (its environment, hence the same database and password,
and its repository mount) except its port and its EMBEDDER_URL, the second embedder.

One job, started through the first server's MCP endpoint: both servers' workers
embed shards of it (two worker ids in `shard_workers`, each with shards done), each
embedder answers its own server's batches, then the second server is SIGKILLed
mid-job and the first finishes every shard (the one the dead server held, after
STALE_AFTER): completed, each chunk counted once, by one of the two workers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from tests.e2e.test_pod_stack import built_images, cli, job_status, start_indexing, up
from tests.support.pod import podman, wait_healthy

from codebase_mcp.pod.podman import Podman
from codebase_mcp.proc import Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["built_images"]  # the session fixture, shared with test_pod_stack

SHARD_CHUNKS = "32"
STALE_AFTER = "3"
SECOND_SERVER_PORT = "8001"
SECOND_EMBEDDER_PORT = "11435"
# Server settings both replicas get: small shards (a job has many), a dead worker's
# shard back in the pool after 3 s, and an idle worker that looks for shards often.
SCALE_ENV = {
    "CODEBASE_MCP_SHARD_CHUNKS": SHARD_CHUNKS,
    "CODEBASE_MCP_STALE_AFTER": STALE_AFTER,
    "CODEBASE_MCP_HEARTBEAT_INTERVAL": "1",
    "CODEBASE_MCP_POLL_INTERVAL": "0.5",
}
# Shards each server finishes before the second one is killed.
SHARDS_EACH = 3
# What the embedder's access log writes for each embedding request.
EMBED_REQUEST = '"POST /api/embed HTTP/1.1" 200'


@pytest.fixture
def scaled(built_images: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    name = f"codebase-mcp-e2e-scale-{os.getpid() % 100000}"
    env = {"CODEBASE_MCP_DATA_DIR": str(tmp_path / "data"), "CODEBASE_MCP_POD": name}
    # A real repository with several hundred chunks: click's source.
    repo = tmp_path / "repo"
    site = Path(click.__file__ or "").parent
    shutil.copytree(site, repo / "click", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    stack = {"name": name, "env": env, "repo": repo, "images": built_images, "tmp": tmp_path}
    extra = [f"{name}-server2", f"{name}-embedder2"]
    try:
        yield stack
    finally:
        for container in extra:
            podman("rm", "--force", "--time", "0", container, check=False)
        cli("down", "--volumes", env=env, check=False)


def replay_with_env(spec: Path, copy: Path, env: dict[str, str]) -> None:
    """``podman kube play --replace`` of ``spec`` with ``env`` added to the server's."""
    (pod,) = [d for d in yaml.safe_load_all(spec.read_text()) if d]
    (server,) = [c for c in pod["spec"]["containers"] if c["name"] == "server"]
    server["env"] += [{"name": key, "value": value} for key, value in sorted(env.items())]
    copy.write_text(yaml.safe_dump(pod, sort_keys=True))
    Podman(Runner()).play(copy)


def container_env(container: str) -> dict[str, str]:
    (info,) = json.loads(podman("container", "inspect", container).stdout)
    return dict(item.split("=", 1) for item in info["Config"]["Env"])


def bind_mounts(container: str) -> list[str]:
    """The container's bind mounts as `-v` arguments (the repositories `up --repo` mounted)."""
    (info,) = json.loads(podman("container", "inspect", container).stdout)
    mounts = [m for m in info["Mounts"] if m["Type"] == "bind"]
    return [f"{m['Source']}:{m['Destination']}:{'rw' if m['RW'] else 'ro'}" for m in mounts]


LOCKED_DOWN = [
    "--user", "10001:10001", "--read-only", "--tmpfs", "/tmp:rw,size=64m",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
]  # fmt: skip


def add_embedder(pod: str, image: str) -> str:
    container = f"{pod}-embedder2"
    podman(
        "run", "-d", "--pod", pod, "--name", container, *LOCKED_DOWN,
        "--health-cmd", f"codebase-mcp embedder probe --url http://127.0.0.1:{SECOND_EMBEDDER_PORT}",
        image, "--host", "127.0.0.1", "--port", SECOND_EMBEDDER_PORT,
    )  # fmt: skip
    return container


def add_server(pod: str, image: str, first: str, env_file: Path) -> str:
    """A second server like ``first``: its environment (password included, through a
    0600 file rather than argv), its mounts; its own port and the second embedder."""
    env = container_env(first)
    assert "DATABASE_PASSWORD" in env, sorted(env)
    env.update(SCALE_ENV)
    env["CODEBASE_MCP_PORT"] = SECOND_SERVER_PORT
    env["CODEBASE_MCP_HOST"] = "127.0.0.1"  # not published: loopback inside the pod
    env["EMBEDDER_URL"] = f"http://127.0.0.1:{SECOND_EMBEDDER_PORT}"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in sorted(env.items()))
    container = f"{pod}-server2"
    mounts = [arg for mount in bind_mounts(first) for arg in ("-v", mount)]
    podman(
        "run", "-d", "--pod", pod, "--name", container, *LOCKED_DOWN, *mounts,
        "--env-file", str(env_file), "--health-cmd", "codebase-mcp health", image,
    )  # fmt: skip
    return container


def logs(container: str) -> str:
    result = podman("logs", container, check=False)
    return result.stdout + result.stderr


def embed_requests(container: str) -> int:
    return logs(container).count(EMBED_REQUEST)


def wait_until(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def helper_ids(container: str, job: str) -> set[str]:
    """Worker ids ``container`` logged for shards of ``job`` it embedded as a helper."""
    return set(re.findall(rf"worker (\S+): shard \d+ of job {job}:", logs(container)))


def workers_with_shards(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["worker_id"]: w for w in status.get("shard_workers") or [] if w["shards_done"]}


@pytest.mark.timeout(400)
def test_two_servers_two_embedders_share_a_job_and_survive_one_dying(
    scaled: dict[str, Any],
) -> None:
    name, repo, images = scaled["name"], scaled["repo"], scaled["images"]
    started = time.monotonic()
    state = up(scaled, "--repo", str(repo))
    endpoint, first = state["endpoint"], state["server_container"]
    # `up` has no way to add server settings: play its own spec again with SCALE_ENV
    # added to the server's env (same pod, secrets, volumes and published port).
    spec = Path(scaled["env"]["CODEBASE_MCP_DATA_DIR"]) / "pods" / name / "pod.yaml"
    replay_with_env(spec, scaled["tmp"] / "pod-scaled.yaml", SCALE_ENV)
    for container in ("postgres", "embedder", "server"):
        wait_healthy(f"{name}-{container}", timeout=120)
    assert all(container_env(first)[k] == v for k, v in SCALE_ENV.items())
    embedder2 = add_embedder(name, images["embedder"])
    server2 = add_server(name, images["server"], first, scaled["tmp"] / "server2.env")
    wait_healthy(embedder2, timeout=120)
    wait_healthy(server2, timeout=120)
    embedder1 = f"{name}-embedder"
    before = {c: embed_requests(c) for c in (embedder1, embedder2)}

    job = start_indexing(endpoint, repo)

    def two_workers() -> dict[str, Any] | None:
        status = job_status(endpoint, job)
        done = [w["shards_done"] for w in workers_with_shards(status).values()]
        return status if len(done) >= 2 and min(done) >= SHARDS_EACH else None

    both = wait_until("shards done by two workers", two_workers)
    assert both["status"] == "running", both
    # work left for the survivor: pending shards it must claim after the kill
    assert both["shards_done"] + 2 < both["shards_total"], both
    print(f"two workers after {time.monotonic() - started:.1f}s: {both['shard_workers']}")
    # Hostname (the pod's) and pid (each container has its own pid namespace) are the
    # same in both containers: the ids differ in their random part. A helper logs its
    # id with every shard; the job's owner (the other one) does not.
    ids = set(workers_with_shards(both))
    helpers = {c: helper_ids(c, job) for c in (first, server2)}
    assert len(ids) == 2 and all(len(found) <= 1 for found in helpers.values()), (ids, helpers)
    (second_id,) = helpers[server2] or ids - helpers[first]
    (first_id,) = ids - {second_id}
    owner_dies = not helpers[server2]
    # Each server embeds with its own embedder: each embedder answered at least one
    # request per shard its server finished (nothing came from the cache).
    after = {c: embed_requests(c) for c in (embedder1, embedder2)}
    for embedder, worker in ((embedder1, first_id), (embedder2, second_id)):
        split = workers_with_shards(both)[worker]
        assert split["chunks_reused"] == 0, both
        assert after[embedder] - before[embedder] >= split["shards_done"], (before, after, both)

    # The second server dies mid-job (SIGKILL: no goodbye); what it held goes back.
    assert podman("kill", server2).returncode == 0
    killed_at = time.monotonic()
    at_kill = {w["worker_id"]: w for w in job_status(endpoint, job)["shard_workers"]}
    dead = at_kill[second_id]

    def ended() -> dict[str, Any] | None:
        status = job_status(endpoint, job)
        return status if status["status"] != "running" else None

    final = wait_until("the job to end", ended, timeout=240)
    print(f"finished {time.monotonic() - killed_at:.1f}s after the kill: {final}")
    assert final["status"] == "completed", final
    assert final["shards_done"] == final["shards_total"], final
    assert final["chunks_embedded"] + final["chunks_reused"] == final["chunks_to_embed"], final
    assert final["chunks_to_embed"] >= 10 * int(SHARD_CHUNKS), final
    workers = workers_with_shards(final)
    # Only the two servers' workers did shards.
    assert set(workers) == {first_id, second_id}, final
    assert sum(w["shards_done"] for w in workers.values()) == final["shards_total"], final
    assert (
        sum(w["chunks_embedded"] + w["chunks_reused"] for w in workers.values())
        == (final["chunks_to_embed"])
    ), final
    # The dead one finished nothing more; the survivor did everything else, including
    # the shard the dead one held, once STALE_AFTER had passed without its heartbeat.
    assert workers[second_id]["shards_done"] == dead["shards_done"], (dead, final)
    assert workers[second_id]["shards_running"] == 0, final
    survivor_log = logs(first)
    if owner_dies:  # the second server had claimed the job: the first re-ran it
        assert final["attempts"] == 2 and f"job {job} had a dead worker" in survivor_log, final
    else:
        assert final["attempts"] == 1, final
        if dead["shards_running"]:
            assert "embedding shard(s) had a dead worker: back to pending" in survivor_log
    print(
        f"runtime {time.monotonic() - started:.1f}s, owner killed: {owner_dies}, "
        f"held at the kill: {dead['shards_running']}"
    )
