"""Search helpers (validation, fusion, the query vector's time limit) and the Ollama
client (mocked HTTP)."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from codebase_mcp.errors import EmbedderError, InvalidToolInput
from codebase_mcp.server.embeddings import OllamaEmbedder, prefixes_for
from codebase_mcp.server.search import (
    Filters,
    Fusion,
    Hit,
    embed_query_within,
    fuse,
    fuse_convex,
    fuse_hybrid,
    normalise_file_type,
    validate_query,
)


def test_validate_query() -> None:
    assert validate_query("  find it ", 10, 100) == "find it"
    cases = [("", 1, "empty"), (" \n", 1, "empty"), ("q", 0, "limit"), ("q", -3, "limit"),
             ("q", 101, "limit"), ("q" * 5000, 1, "long")]  # fmt: skip
    for query, limit, message in cases:
        with pytest.raises(InvalidToolInput, match=message):
            validate_query(query, limit, 100)


def test_normalise_file_type() -> None:
    assert normalise_file_type(".PY") == "py"
    assert normalise_file_type("*.ts") == "ts"
    assert normalise_file_type("python") == "python"
    assert normalise_file_type(" ") is None
    with pytest.raises(InvalidToolInput):
        normalise_file_type("py; drop table")


def hit(i: int, similarity: float = 0.5, bm25: float | None = None) -> Hit:
    return Hit(i, f"/p{i}", f"p{i}", None, 1, 2, None, "", similarity, bm25=bm25)


def test_rrf_fusion_rewards_agreement() -> None:
    fused = fuse([[hit(1), hit(2), hit(3)], [hit(3), hit(4)]], limit=3)
    assert [h.id for h in fused] == [3, 1, 2]
    assert math.isclose(fused[0].score, 1 / 63 + 1 / 61, rel_tol=1e-4)


def test_weighted_rrf_leans_towards_the_heavier_half() -> None:
    semantic, lexical = [hit(1), hit(2)], [hit(2, bm25=3.0), hit(3, bm25=2.0)]
    heavy_semantic = fuse_hybrid(semantic, lexical, 3, Fusion("rrf", 10, 0.9))
    assert [h.id for h in heavy_semantic][:2] == [2, 1]
    heavy_lexical = fuse_hybrid([hit(1), hit(2)], [hit(2, bm25=3.0), hit(3, bm25=2.0)], 3,
                                Fusion("rrf", 10, 0.1))  # fmt: skip
    assert [h.id for h in heavy_lexical] == [2, 3, 1]
    assert heavy_lexical[0].bm25 == 3.0  # the lexical score travels with the hit


def test_convex_fusion_mixes_cosine_and_normalised_bm25() -> None:
    unembedded = hit(3, similarity=0.0, bm25=4.0)
    unembedded.embedded = False
    fused = fuse_convex([hit(1, 0.9), hit(2, 0.5)], [hit(2, 0.5, 2.0), unembedded], 3, 0.5)
    scores = {h.id: h.score for h in fused}
    assert math.isclose(scores[1], 0.45) and math.isclose(scores[2], 0.25 + 0.25)
    assert math.isclose(scores[3], 0.5)  # no vector yet: its BM25 alone


async def test_a_slow_or_failing_embedder_gives_no_vector_and_says_why() -> None:
    import asyncio

    class Slow:
        model = "m"

        async def embed_documents(self, texts: Any) -> list[list[float]]:
            raise AssertionError

        async def embed_query(self, text: str) -> list[float]:
            await asyncio.sleep(5)
            return [1.0]

    class Down(Slow):
        async def embed_query(self, text: str) -> list[float]:
            raise EmbedderError("cannot reach the embedder at http://e", hint="start it")

    slow = await embed_query_within(Slow(), "q", 0.05)
    assert slow.vector is None and slow.reason == "embedder_timeout"
    assert slow.detail == "the embedder did not answer within 0.05 s"
    down = await embed_query_within(Down(), "q", 2.0)
    assert (down.vector, down.reason) == (None, "embedder_error")
    assert down.detail is not None and "cannot reach" in down.detail


def test_prefixes() -> None:
    assert prefixes_for("nomic-embed-text:latest") == ("search_document: ", "search_query: ")
    assert prefixes_for("all-minilm") == ("", "")


def client_for(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_embed_batches_prefixes_and_normalises() -> None:
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body["input"])
        return httpx.Response(200, json={"embeddings": [[3.0, 4.0] for _ in body["input"]]})

    embedder = OllamaEmbedder(
        "http://e", "nomic-embed-text", batch_size=2, client=client_for(handler)
    )
    vectors = await embedder.embed_documents(["a", "b", "c"])
    assert seen == [["search_document: a", "search_document: b"], ["search_document: c"]]
    assert vectors == [[0.6, 0.8]] * 3
    assert await embedder.embed_query("q") == [0.6, 0.8]
    assert seen[-1] == ["search_query: q"]


async def test_400_splits_the_batch_then_cuts_the_text() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        calls.append(len(texts))
        if any(len(t) > 100 for t in texts):
            return httpx.Response(400, json={"error": "input length exceeds the context length"})
        return httpx.Response(200, json={"embeddings": [[1.0, 0.0] for _ in texts]})

    embedder = OllamaEmbedder("http://e", "all-minilm", client=client_for(handler))
    vectors = await embedder.embed_documents(["short", "x" * 350, "fine", "ok"])
    assert len(vectors) == 4
    assert calls[0] == 4 and 1 in calls


async def test_errors_say_what_to_do() -> None:
    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "model not found"})

    embedder = OllamaEmbedder("http://e", "nope", client=client_for(missing))
    with pytest.raises(EmbedderError, match="does not serve model 'nope'") as err:
        await embedder.embed_query("q")
    assert "ollama pull nope" in (err.value.hint or "")

    def wrong_count(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"embeddings": []})

    embedder = OllamaEmbedder("http://e", "m", client=client_for(wrong_count))
    with pytest.raises(EmbedderError, match="0 vectors for 1 inputs"):
        await embedder.embed_query("q")


async def test_text_search_over_budget_falls_back_to_nothing() -> None:
    """Past its statement_timeout the lexical half returns no hits (hybrid = vector)."""
    import contextlib

    import asyncpg

    from codebase_mcp.server.db import Project
    from codebase_mcp.server.search import text_search

    executed: list[tuple[Any, ...]] = []

    class SlowConnection:
        def transaction(self) -> Any:
            return contextlib.AsyncExitStack()

        async def execute(self, sql: str, *args: Any) -> Any:
            executed.append((sql, *args))

        async def fetch(self, *args: Any) -> list[Any]:
            executed.append(args)
            raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")

    result = await text_search(
        SlowConnection(),  # type: ignore[arg-type]
        Project("p", "m", 2),
        "parse config",
        [1.0, 0.0],
        Filters(),
        10,
        budget_ms=40,
    )
    assert (result.hits, result.status) == ([], "over_budget")
    # The budget is set by the statement that reads the terms (one round trip).
    ((sql, project_id, _words, budget),) = executed
    assert "set_config('statement_timeout', $3, true)" in sql
    assert "set_config('plan_cache_mode', 'force_custom_plan', true)" in sql
    assert (project_id, budget) == ("p", "40")


async def test_text_search_without_words_asks_nothing() -> None:
    from codebase_mcp.server.db import Project
    from codebase_mcp.server.search import text_search

    class NoConnection:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"no query expected, got {name}")

    result = await text_search(
        NoConnection(),  # type: ignore[arg-type]
        Project("p", "m", 2),
        "!! ?",
        [1.0, 0.0],
        Filters(),
        10,
    )
    assert (result.hits, result.status) == ([], "no_words")


async def test_a_query_searched_again_is_not_embedded_again() -> None:
    from codebase_mcp.server.search import QueryVectors

    class Counting:
        model = "m"

        def __init__(self) -> None:
            self.calls: list[str] = []

        async def embed_documents(self, texts: Any) -> list[list[float]]:
            raise AssertionError

        async def embed_query(self, text: str) -> list[float]:
            self.calls.append(text)
            return [float(len(text)), 0.5]

    embedder = Counting()
    cache = QueryVectors(2)
    first = await embed_query_within(embedder, "abc", 2.0, cache)
    again = await embed_query_within(embedder, "abc", 2.0, cache)
    assert first.vector == again.vector == [3.0, 0.5]
    assert embedder.calls == ["abc"]
    # Least recently used out: "abc" was used last, so "de" goes when "fgh" comes.
    await embed_query_within(embedder, "de", 2.0, cache)
    await embed_query_within(embedder, "abc", 2.0, cache)
    await embed_query_within(embedder, "fgh", 2.0, cache)
    assert len(cache) == 2
    await embed_query_within(embedder, "abc", 2.0, cache)
    await embed_query_within(embedder, "de", 2.0, cache)
    assert embedder.calls == ["abc", "de", "fgh", "de"]
    # Another model's vector is another entry; size 0 keeps nothing.
    assert cache.get("other", "abc") is None
    none = QueryVectors(0)
    await embed_query_within(embedder, "abc", 2.0, none)
    await embed_query_within(embedder, "abc", 2.0, none)
    assert len(none) == 0 and embedder.calls[-2:] == ["abc", "abc"]
