"""The embedding cache's pure parts: its key, text hashes, a batch's miss plan, the
status counters and the per-project space estimate (no database)."""

from __future__ import annotations

import hashlib

import pytest

from codebase_mcp.server import db, service
from codebase_mcp.server.chunker import Chunk, embedding_text
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embedcache import cache_key, normalise_digest, plan_misses, text_sha256
from tests.unit.server.test_server_service import MAPPER, job_row

DIGEST = "ab" * 32


def test_key_names_model_dimension_and_weights() -> None:
    key = cache_key("nomic-embed-text", 768, f"sha256:{DIGEST.upper()}")
    assert key == f"v1|nomic-embed-text|768|sha256:{DIGEST}"
    assert cache_key("nomic-embed-text", 768, DIGEST) == key  # with or without the prefix
    others = {
        cache_key("nomic-embed-text", 768, "cd" * 32),  # other weights
        cache_key("nomic-embed-text:v2", 768, DIGEST),  # other name (other prefixes)
        cache_key("nomic-embed-text", 384, DIGEST),  # other dimension
    }
    assert key not in others and len(others) == 3


@pytest.mark.parametrize("digest", [None, "", "  ", "sha256:"])
def test_no_digest_means_no_cache(digest: str | None) -> None:
    assert normalise_digest(digest) is None
    assert cache_key("all-minilm", 384, digest) is None
    assert cache_key("", 384, DIGEST) is None


def test_text_hash_is_sha256_of_the_exact_model_input() -> None:
    chunk = Chunk(1, 3, "def f():\n    return 1\n", "f")
    text = embedding_text("src/a.py", chunk)
    assert text_sha256(text) == hashlib.sha256(text.encode()).digest()
    assert len(text_sha256(text)) == 32
    # The path is relative: the same file in another clone hashes the same ...
    assert text_sha256(embedding_text("src/a.py", Chunk(9, 11, chunk.content, "f"))) == (
        text_sha256(text)
    )
    # ... one character of difference does not.
    assert text_sha256(text + " ") != text_sha256(text)
    assert text_sha256("lone \udc80 surrogate")  # never raises on odd text


def test_plan_misses_skips_filled_chunks_and_sends_each_text_once() -> None:
    ids = [10, 11, 12, 13, 14]
    texts = ["a", "b", "a", "c", "b"]
    hashes = [text_sha256(t) for t in texts]
    plan = plan_misses(ids, hashes, texts, filled={11})
    assert plan.chunk_ids == [10, 12, 13, 14]
    assert plan.texts == ["a", "c", "b"]  # "a" twice, embedded once
    assert plan.slots == [0, 0, 1, 2]
    assert plan.unique_hashes() == [text_sha256("a"), text_sha256("c"), text_sha256("b")]
    vectors = [[1.0], [3.0], [2.0]]
    assert plan.vectors_for_chunks(vectors) == [[1.0], [1.0], [3.0], [2.0]]


def test_plan_misses_everything_filled_asks_nothing() -> None:
    plan = plan_misses([1, 2], [b"x" * 32, b"y" * 32], ["x", "y"], filled={1, 2})
    assert (plan.chunk_ids, plan.texts, plan.unique_hashes()) == ([], [], [])


def test_status_counts_reused_chunks_as_progress() -> None:
    row = job_row(files_indexed=30, chunks_to_embed=10, chunks_embedded=2, chunks_reused=6)
    dumped = service.job_status(row, MAPPER).model_dump(mode="json")
    assert (dumped["chunks_embedded"], dumped["chunks_reused"]) == (2, 6)
    assert dumped["semantic_progress"] == 0.8
    assert dumped["phase"] == "embedding"


def test_job_counters_include_reused() -> None:
    assert "chunks_reused" in db.JOB_COUNTERS


def test_project_space_is_its_share_of_the_shared_tables() -> None:
    sizes = db.TableSizes(
        chunk_bytes=1000, lexical_bytes=400, all_chunks=100, all_lexical_length=2000
    )
    assert service.project_space(25, 500, sizes) == 250 + 100
    assert service.project_space(100, 2000, sizes) == 1400
    assert service.project_space(0, 0, sizes) == 0
    empty = db.TableSizes(chunk_bytes=8192, lexical_bytes=8192, all_chunks=0, all_lexical_length=0)
    assert service.project_space(0, 0, empty) == 0
    # Counts ahead of the totals (read at different moments) never exceed the tables.
    assert service.project_space(200, 9000, sizes) == 1400


def test_cache_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerSettings().embedding_cache is True
    monkeypatch.setenv("CODEBASE_MCP_EMBEDDING_CACHE", "false")
    monkeypatch.setenv("CODEBASE_MCP_EMBEDDING_CACHE_GRACE", "60")
    settings = ServerSettings()
    assert settings.embedding_cache is False and settings.embedding_cache_grace == 60.0
