"""Scoring on hand-made rankings, and the embedding cache on a fake embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from codebase_mcp.evaluation.embcache import CachedEmbedder, VectorStore
from codebase_mcp.evaluation.scoring import (
    Scored,
    by_kind,
    file_ranking,
    first_rank,
    mean_metrics,
    metrics,
)


def test_file_ranking_keeps_the_first_appearance_of_each_file() -> None:
    assert file_ranking(["b.py", "a.py", "b.py", "c.py", "a.py"]) == ["b.py", "a.py", "c.py"]


def test_first_rank_takes_the_first_of_several_answers() -> None:
    files = ["x.py", "y.py", "a.py", "b.py"]
    assert first_rank(files, ["b.py", "a.py"]) == 3
    assert first_rank(files, ["z.py"]) is None


def test_recall_and_mrr_on_a_hand_made_ranking() -> None:
    # Ranks 1, 2, 5, 11 (beyond MRR's depth), absent.
    outcomes = [
        Scored("word", 1),
        Scored("word", 2),
        Scored("paraphrase", 5),
        Scored("identifier", 11),
        Scored("identifier", None),
    ]
    m = metrics(outcomes)
    assert m["recall@1"] == 0.2
    assert m["recall@5"] == 0.6
    assert m["recall@10"] == 0.6
    assert m["mrr@10"] == round((1 + 1 / 2 + 1 / 5) / 5, 4)
    assert m["queries"] == 5
    kinds = by_kind(outcomes)
    assert kinds["word"]["mrr@10"] == 0.75 and kinds["word"]["recall@1"] == 0.5
    assert kinds["identifier"]["mrr@10"] == 0.0 and kinds["paraphrase"]["recall@5"] == 1.0


def test_mean_is_over_repositories_and_counts_every_query() -> None:
    a = metrics([Scored("word", 1)])
    b = metrics([Scored("word", None), Scored("word", None), Scored("word", None)])
    mean = mean_metrics([a, b])
    assert mean["mrr@10"] == 0.5 and mean["recall@1"] == 0.5
    assert mean["queries"] == 4
    assert metrics([])["queries"] == 0


class Fake:
    model = "fake"

    def __init__(self) -> None:
        self.documents: list[str] = []
        self.queries: list[str] = []

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.documents.extend(texts)
        return [[float(len(t)), 0.1, 1 / 3] for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return [-float(len(text)), 0.2, 2 / 3]


def test_cache_embeds_each_text_once_and_returns_identical_vectors(tmp_path: Path) -> None:
    async def scenario() -> None:
        fake = Fake()
        store = VectorStore(tmp_path / "e.sqlite")
        cached = CachedEmbedder(fake, store, "fake/v1")
        first = await cached.embed_documents(["a", "bb", "a"])
        assert fake.documents == ["a", "bb"]  # a duplicate in one batch embedded once
        again = await cached.embed_documents(["bb", "ccc", "a"])
        assert fake.documents == ["a", "bb", "ccc"]
        assert again[0] == first[1] and again[2] == first[0] and again[2][2] == 1 / 3
        # Queries are kept apart from documents (models may prefix them differently).
        q = await cached.embed_query("a")
        assert q == [-1.0, 0.2, 2 / 3] and fake.queries == ["a"]
        assert await cached.embed_query("a") == q and fake.queries == ["a"]
        # The indexer asks an embedder for ``identity()`` (its weights' digest, the
        # server's embedding cache): the eval cache's key must not shadow it.
        assert not hasattr(cached, "identity") and cached.vector_identity == "fake/v1"
        store.close()
        # Another process (a new store on the same file) reads them; another model does not.
        reopened = VectorStore(tmp_path / "e.sqlite")
        other = Fake()
        assert await CachedEmbedder(other, reopened, "fake/v1").embed_documents(["ccc"]) == [
            [3.0, 0.1, 1 / 3]
        ]
        assert other.documents == []
        await CachedEmbedder(other, reopened, "fake/v2").embed_documents(["ccc"])
        assert other.documents == ["ccc"]
        reopened.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [0, 1, 1201])
def test_cache_handles_empty_and_large_batches(tmp_path: Path, n: int) -> None:
    async def scenario() -> None:
        store = VectorStore(tmp_path / "e.sqlite")
        fake = Fake()
        texts = [f"t{i}" for i in range(n)]
        vectors = await CachedEmbedder(fake, store, "f").embed_documents(texts)
        assert len(vectors) == n and len(fake.documents) == n
        assert await CachedEmbedder(fake, store, "f").embed_documents(texts) == vectors
        assert len(fake.documents) == n
        store.close()

    asyncio.run(scenario())
