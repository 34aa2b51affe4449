"""What keeps search fast on big projects, against real Postgres: the full-text
planner reads ANALYZE's word frequencies and ranks only the chunks of the rarest
words when the common ones would match too much."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from codebase_mcp.server import db
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.server.indexer import Indexer, Progress
from codebase_mcp.server.search import (
    Filters,
    TermStatsCache,
    fetch_term_stats,
    search,
    text_search,
)
from tests.integration.server.fake_embedder import DIMENSION, FakeEmbedder

pytestmark = pytest.mark.integration


def letters(n: int) -> str:
    """12 -> 'bc': a word the english stemmer leaves alone, unique per file."""
    return "".join(chr(ord("b") + int(d)) for d in str(n))


def write_handlers(root: Path, count: int) -> Path:
    """``count`` files sharing the words handle/request/shared/helper, each with
    one word of its own (``marker_<letters>``)."""
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"handler_{i}.py").write_text(
            f"def handle_request_{letters(i)}(request):\n"
            f"    marker_{letters(i)} = shared_helper(request)\n"
            f"    return marker_{letters(i)}\n"
        )
    return root


async def noop(progress: Progress) -> None:
    return None


async def index(pool: asyncpg.Pool, fake: FakeEmbedder, root: Path, **settings: Any) -> Progress:
    options: dict[str, Any] = {"embed_batch_size": 16, "write_batch_files": 20, **settings}
    server_settings = ServerSettings(**options)
    embedder = OllamaEmbedder(fake.url, fake.model, batch_size=server_settings.embed_batch_size)
    try:
        return await Indexer(pool, embedder, server_settings).run(
            project_id="default", root=str(root), force=False, report=noop
        )
    finally:
        await embedder.aclose()


async def test_full_text_ranks_the_rare_words_and_skips_only_common_ones(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    root = write_handlers(tmp_path / "repo", 120)
    pool = await db.create_pool(migrated_dsn)
    try:
        await index(pool, fake_embedder, root)
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE chunks")
            stats = await fetch_term_stats(conn)
            project = await db.get_project(conn, "default")
        assert project is not None
        assert stats.rows == 120 and stats.shares == {"default": 1.0}
        assert stats.freqs["share"] == 1.0  # in every chunk ("shared" stemmed)
        assert stats.estimate("markerbc") <= 1  # not among the common words

        wanted = f"handler_{12}.py"
        query = f"shared helper for marker_{letters(12)}"
        vector = [1.0] + [0.0] * (DIMENSION - 1)

        async def lexical(q: str, max_cost: int) -> Any:
            async with pool.acquire() as conn:
                return await text_search(
                    conn, project, q, vector, Filters(), 30, max_cost=max_cost,
                    term_stats=TermStatsCache(ttl=0),
                )  # fmt: skip

        capped = await lexical(query, max_cost=20)
        assert capped.status == "ranked" and capped.plan.kind == "rarest"
        assert "share" not in capped.plan.match and "share" in capped.plan.rank
        assert [h.rel_path for h in capped.hits] == [wanted]

        # Without the cap every word selects: all 120 chunks match, ranked by words.
        uncapped = await lexical(query, max_cost=0)
        assert uncapped.plan.kind == "any" and len(uncapped.hits) == 30
        assert uncapped.hits[0].rel_path == wanted

        # Words that are everywhere narrow nothing down: no full-text ranking at all,
        # and hybrid search answers with the vector ranking (and says so).
        common = await lexical("shared helper handle request", max_cost=20)
        assert (common.status, common.hits) == ("too_common", [])
        result = await search(
            pool, "default", "shared helper handle request", vector, Filters(), 5,
            mode="hybrid", ef_search=40, expected_model=fake_embedder.model,
            text_budget_ms=40, text_max_cost=20,
        )  # fmt: skip
        assert result.lexical == "too_common" and len(result.hits) == 5
    finally:
        await pool.close()
