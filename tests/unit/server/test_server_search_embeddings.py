"""Search helpers (validation, fusion, tsquery) and the Ollama client (mocked HTTP)."""

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
    Hit,
    fuse,
    normalise_file_type,
    tsquery_text,
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


def test_tsquery_text_ors_words_and_identifier_parts() -> None:
    assert tsquery_text("parseConfig file") == "parseconfig | parse | config | file"
    assert tsquery_text("!!! ?") == ""


def hit(i: int, similarity: float = 0.5) -> Hit:
    return Hit(i, f"/p{i}", f"p{i}", None, 1, 2, None, "", similarity)


def test_rrf_fusion_rewards_agreement() -> None:
    fused = fuse([[hit(1), hit(2), hit(3)], [hit(3), hit(4)]], limit=3)
    assert [h.id for h in fused] == [3, 1, 2]
    assert math.isclose(fused[0].score, 1 / 63 + 1 / 61, rel_tol=1e-4)


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

        async def fetchval(self, sql: str, *args: Any) -> Any:
            executed.append((sql, *args))
            return ["pars", "config"]  # the query's lexemes

        async def fetch(self, *args: Any) -> list[Any]:
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
    ((sql, words, budget),) = executed
    assert "set_config('statement_timeout', $2, true)" in sql
    assert "set_config('plan_cache_mode', 'force_custom_plan', true)" in sql
    assert (words, budget) == ("parse config", "40")


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
