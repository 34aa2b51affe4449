"""The real ``codebase-mcp embedder serve`` process on a loopback port, and the built image.

- the CLI server answers, passes its own liveness probe, and survives a flood of
  100 concurrent requests (each with a different text, some 1 MB) with its
  resident memory bounded;
- the image built by ``codebase-mcp image build embedder`` runs read-only as
  its non-root user and answers /api/embed (skipped, saying why, when the
  image has not been built).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.support.processes import stop

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CLI = Path(sys.executable).with_name("codebase-mcp")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, alive: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError("embedder exited before answering")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"embedder at {url} did not answer within {timeout}s")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(CLI), "embedder", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, lambda: proc.poll() is None)
        yield url, proc
    finally:
        stop(proc, timeout=20)


def test_probe_command_against_the_server(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = server
    ok = subprocess.run(
        [str(CLI), "embedder", "probe", "--url", url], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(
        [str(CLI), "embedder", "probe", "--url", url, "--model", "nomic-embed-text"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 51
    assert "lacks the model" in missing.stderr


def test_hundred_concurrent_requests_bounded_memory(
    server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = server
    httpx.post(f"{url}/api/embed", json={"model": "all-minilm", "input": "warm"}, timeout=30)
    rss_before = _rss_mb(proc.pid)
    big = "x = compute(y)  # " * 60_000  # ~1 MB
    texts = [
        big if i % 10 == 0 else f"def handler_{i}(request):\n    return {i}\n" for i in range(100)
    ]
    peak = rss_before

    async def flood() -> list[httpx.Response]:
        nonlocal peak
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
            tasks = [
                asyncio.create_task(
                    http.post("/api/embed", json={"model": "all-minilm", "input": t})
                )
                for t in texts
            ]
            while not all(t.done() for t in tasks):
                peak = max(peak, _rss_mb(proc.pid))
                await asyncio.sleep(0.05)
            return [t.result() for t in tasks]

    responses = asyncio.run(flood())
    assert [r.status_code for r in responses] == [200] * 100
    vectors = np.array([r.json()["embeddings"][0] for r in responses])
    assert vectors.shape == (100, 384)
    assert (
        len({v.round(5).tobytes() for v in vectors[1:10]}) == 9
    )  # distinct texts, distinct vectors
    assert all(r.json()["prompt_eval_count"] == 256 for r in responses[::10])  # 1 MB truncated
    # 10 MB of bodies in flight, one forward pass at a time: growth stays far below 1 GB.
    assert peak - rss_before < 600, f"RSS grew from {rss_before:.0f} to {peak:.0f} MB"
    assert proc.poll() is None


def _embedder_image() -> str:
    """The embedder image, built (or found cached) by the project's builder; skip if undefined."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    lock = REPO / "build/lock.json"
    if not (REPO / "images/embedder/image.toml").is_file() or not lock.is_file():
        pytest.skip("no images/embedder definition or build/lock.json yet")
    if "embedder" not in json.loads(lock.read_text()).get("images", {}):
        pytest.skip("build/lock.json has no embedder entry: run `codebase-mcp image lock`")
    from codebase_mcp.builder.build import Builder

    (result,) = Builder.create(REPO).build(["embedder"])
    return result.ref


def test_built_image_serves_embed_read_only() -> None:
    ref = _embedder_image()
    port = _free_port()
    name = f"embedder-test-{port}"
    run = subprocess.run(
        [
            "podman", "run", "-d", "--rm", "--name", name, "--label", "codebase-mcp.test=1",
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-p", f"127.0.0.1:{port}:11434", ref,
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        running = ["podman", "container", "exists", name]
        _wait_ready(url, lambda: subprocess.run(running, check=False).returncode == 0, timeout=120)
        body = httpx.post(
            f"{url}/api/embed",
            json={"model": "all-minilm", "input": ["Why is the sky blue?", "def f(): pass"]},
            timeout=60,
        ).json()
        assert len(body["embeddings"]) == 2
        assert len(body["embeddings"][0]) == 384
        assert body["prompt_eval_count"] > 0
        probe = subprocess.run(
            ["podman", "exec", name, "codebase-mcp", "embedder", "probe"],
            capture_output=True,
            text=True,
        )
        assert probe.returncode == 0, probe.stderr
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
