"""Real ``codebase-mcp embedder serve`` processes over real HTTP: the query lane and fan-out.

- a query is answered while an index request is still being embedded (the
  one-lane embedder made it wait for the whole index request);
- two embedders behind the server's client, one SIGKILLed while it holds a batch:
  every batch is still answered, by the other, each vector the right one for its
  text; with both dead the error names both;
- a real embedder and one reporting other weights: refused, naming both.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.integration.server.fake_embedder import running_fake_embedder
from tests.support.processes import stop

from codebase_mcp.embedder.encoder import SentenceEncoder
from codebase_mcp.embedder.model_files import load_model_files
from codebase_mcp.errors import EmbedderModelMix, EmbedderUnavailable
from codebase_mcp.server.embeddings import OllamaEmbedder

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CLI = Path(sys.executable).with_name("codebase-mcp")
MODEL = "all-minilm"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start() -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(CLI), "embedder", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"embedder exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return url, proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise AssertionError(f"embedder at {url} did not answer")


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(load_model_files())


Started = list[tuple[str, subprocess.Popen[bytes]]]


@pytest.fixture
def start_embedders() -> Iterator[Callable[[int], Started]]:
    """Start N real embedders (each on its own free port); all stopped at the end."""
    started: Started = []

    def start(count: int) -> Started:
        for _ in range(count):
            started.append(_start())
        return started[-count:]

    try:
        yield start
    finally:
        for _, proc in started:
            if proc.poll() is None:
                stop(proc, timeout=20)


def _code_chunks(count: int, lines: int) -> list[str]:
    """Distinct real code windows from this repository's sources."""
    chunks: list[str] = []
    for path in sorted((REPO / "src/codebase_mcp").rglob("*.py")):
        text = path.read_text(encoding="utf-8").splitlines()
        for start in range(0, len(text), lines):
            window = "\n".join(text[start : start + lines]).strip()
            if len(window) > 200 and window not in chunks:
                chunks.append(window)
            if len(chunks) == count:
                return chunks
    raise AssertionError("not enough source")


def _assert_vectors_of(texts: list[str], got: list[list[float]], encoder: SentenceEncoder) -> None:
    """Each vector is its own text's (not a neighbour's, not missing, not doubled)."""
    expected = encoder.embed(texts)
    actual = np.array(got, dtype=np.float32)
    assert actual.shape == expected.shape
    cosine = (actual * expected).sum(axis=1)
    assert cosine.min() > 0.999, f"worst cosine {cosine.min():.5f} at {int(cosine.argmin())}"


def test_a_query_is_answered_while_an_index_request_is_embedding(
    start_embedders: Callable[[int], Started], encoder: SentenceEncoder
) -> None:
    ((url, _),) = start_embedders(1)
    # 48 chunks of ~40 lines: 256 tokens each, 12 slices of 4 (seconds of work even idle).
    chunks = _code_chunks(48, 40)
    query = "where does the server read its settings from the environment"

    async def scenario() -> tuple[list[list[float]], list[list[float]], list[bool]]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            index = asyncio.create_task(
                http.post(
                    "/api/embed",
                    json={"model": MODEL, "input": chunks},
                    headers={"X-Embed-Purpose": "index"},
                )
            )
            await asyncio.sleep(1.5)  # parsed, tokenised, its first slices running
            answered_while_indexing = []
            queries = []
            for _ in range(3):
                response = await http.post(
                    "/api/embed",
                    json={"model": MODEL, "input": query},
                    headers={"X-Embed-Purpose": "query"},
                )
                assert response.status_code == 200, response.text
                answered_while_indexing.append(not index.done())
                queries.append(response.json()["embeddings"][0])
            done = await index
            assert done.status_code == 200, done.text
            return queries, done.json()["embeddings"], answered_while_indexing

    queries, indexed, while_indexing = asyncio.run(scenario())
    assert while_indexing == [True, True, True]
    _assert_vectors_of([query] * 3, queries, encoder)
    _assert_vectors_of(chunks, indexed, encoder)  # sliced, reassembled in order


def test_a_killed_embedder_s_batches_are_answered_by_the_other(
    start_embedders: Callable[[int], Started], encoder: SentenceEncoder
) -> None:
    (url_a, proc_a), (url_b, proc_b) = start_embedders(2)
    chunks = _code_chunks(96, 8)
    calls = [chunks[i : i + 8] for i in range(0, len(chunks), 8)]  # 12 calls, 2 batches each

    async def scenario() -> tuple[list[list[list[float]]], dict[str, int]]:
        emb = OllamaEmbedder([url_a, url_b], MODEL, batch_size=4, timeout=300)
        a, b = emb.pool.endpoints
        seen: dict[str, int] = {}

        async def killer() -> None:
            while not (a.answered >= 2 and a.in_flight > 0):
                await asyncio.sleep(0.005)
            seen["a_in_flight_at_kill"] = a.in_flight
            seen["a_answered_at_kill"] = a.answered
            proc_a.send_signal(signal.SIGKILL)

        kill = asyncio.create_task(killer())
        results = []
        try:
            for texts in calls:
                results.append(await emb.embed_documents(texts))
            await asyncio.wait_for(kill, 1)
            seen["a_answered"], seen["b_answered"] = a.answered, b.answered
            report = await emb.probe()
            assert report["status"] == "ok" and report["healthy"] == "1/2"
            assert [e["status"] for e in report["endpoints"]] == ["down", "ok"]
            assert report["digest"]
            proc_b.send_signal(signal.SIGKILL)
            proc_b.wait()
            with pytest.raises(EmbedderUnavailable) as err:
                await emb.embed_query("anything")
            assert url_a in err.value.message and url_b in err.value.message
        finally:
            kill.cancel()
            await emb.aclose()
        return results, seen

    results, seen = asyncio.run(scenario())
    assert seen["a_in_flight_at_kill"] >= 1  # it died holding a batch
    assert seen["a_answered"] == seen["a_answered_at_kill"]  # nothing more from the dead one
    assert seen["b_answered"] >= len(calls) * 2 - seen["a_answered"]
    for texts, vectors in zip(calls, results, strict=True):
        _assert_vectors_of(texts, vectors, encoder)


def test_an_embedder_with_other_weights_is_refused(
    start_embedders: Callable[[int], Started],
) -> None:
    ((real, _),) = start_embedders(1)

    async def scenario(fake_url: str) -> None:
        emb = OllamaEmbedder([real, fake_url], MODEL)
        try:
            with pytest.raises(EmbedderModelMix) as err:
                await emb.embed_query("q")
            assert real in err.value.message and fake_url in err.value.message
            assert (await emb.probe())["status"] == "model mix"
        finally:
            await emb.aclose()

    with running_fake_embedder(model=MODEL, digest="0" * 64) as fake:
        asyncio.run(scenario(fake.url))
        assert fake.requests == 0  # nothing was embedded by either
