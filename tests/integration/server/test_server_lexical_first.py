"""Lexical first, semantic as it arrives; BM25; the lexical fallback (issue 12).

Real Postgres, the MCP tools through FastMCP's in-memory client, the fake
Ollama-API embedder (slowed down where a test needs embedding to take a while).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from codebase_mcp.server import db
from codebase_mcp.server.app import ServerState, create_server
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.server.search import Filters, search
from tests.integration.server.conftest import make_state
from tests.integration.server.fake_embedder import FakeEmbedder, free_port
from tests.integration.server.test_server_mcp_memory import call, index, wait_done

pytestmark = pytest.mark.integration


async def wait_for(
    client: Client[Any], job_id: str, ok: Any, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await call(client, "get_indexing_status", job_id=job_id)
        if ok(status):
            return status
        assert status["status"] in ("pending", "running"), status
        assert time.monotonic() < deadline, f"condition not reached: {status}"
        await asyncio.sleep(0.05)


def top(answer: dict[str, Any]) -> str:
    return str(answer["results"][0]["relative_path"])


async def test_search_answers_while_embedding_and_a_cancel_keeps_it_searchable(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    # Two chunks per embedding request, each batch request takes 0.5 s: the
    # sample's ~12 chunks embed in ~3 s, while single queries answer at once.
    fake_embedder.batch_delay = 0.5
    state = make_state(migrated_dsn, fake_embedder, embed_batch_size=2)
    try:
        async with Client(create_server(state)) as client:
            started = await call(client, "start_indexing_background", repo_path=str(sample_repo))
            job = started["job_id"]
            status = await wait_for(
                client,
                job,
                lambda s: s["phase"] == "embedding" and 0 < s["chunks_embedded"] < 8,
            )
            assert status["lexical_progress"] == 1.0
            assert 0.0 < status["semantic_progress"] < 1.0
            assert status["chunks_to_embed"] == status["chunks_created"]

            found = await call(client, "search_code", query="computeChecksum")
            assert 0.0 < found["semantic_coverage"] < 1.0
            assert found["lexical_only"] is False and found["mode"] == "hybrid"
            assert top(found) == "cmd/main.go"

            cancelled = await call(client, "cancel_indexing", job_id=job)
            assert cancelled["cancel_requested"] is True
            final = await wait_done(client, job)
            assert final["status"] == "cancelled"
            assert final["semantic_progress"] < 1.0

            # Cancelled mid-embedding: the lexical index is all there.
            after = await call(client, "search_code", query="split whitespace tokens")
            assert after["semantic_coverage"] < 1.0
            assert top(after) == "lib/tokenizer.rs"
            routed = await call(client, "search_code", query="RequestRouter", file_type="js")
            assert top(routed) == "src/web/server.js"

            # The next job embeds only what is left, then everything is covered.
            fake_embedder.batch_delay = 0.0
            fake_embedder.reset()
            done = await index(client, sample_repo)
            assert done["status"] == "completed" and done["files_unchanged"] == 8
            assert done["chunks_to_embed"] == done["chunks_embedded"] > 0
            left = done["chunks_to_embed"]
            assert len(fake_embedder.inputs) == left  # nothing embedded twice
            full = await call(client, "search_code", query="computeChecksum")
            assert full["semantic_coverage"] == 1.0
            projects = await call(client, "list_projects")
            assert projects["projects"][0]["chunks"] == status["chunks_created"]
    finally:
        await state.stop()


async def test_a_project_without_any_vector_answers(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    fake_embedder.batch_delay = 30.0  # the first embedding batch never ends in time
    state = make_state(migrated_dsn, fake_embedder, embed_batch_size=2, heartbeat_interval=0.2)
    try:
        async with Client(create_server(state)) as client:
            started = await call(client, "start_indexing_background", repo_path=str(sample_repo))
            await wait_for(client, started["job_id"], lambda s: s["phase"] == "embedding")
            found = await call(client, "search_code", query="backoff_delay exponential retry")
            assert found["semantic_coverage"] == 0.0
            assert found["lexical"] == "ranked"
            assert top(found) == "src/config_loader.py"
            assert "RetryPolicy" in found["results"][0]["symbol"]
            await call(client, "cancel_indexing", job_id=started["job_id"])
    finally:
        await state.stop()


async def test_bm25_ranks_the_exact_identifier_first(state: ServerState, sample_repo: Path) -> None:
    async with Client(create_server(state)) as client:
        assert (await index(client, sample_repo))["status"] == "completed"
    pool = await state.pool()
    async with pool.acquire() as conn:
        for query, path, symbol in [
            ("parse_config_file", "src/config_loader.py", "parse_config_file"),
            ("increment_count", "lib/tokenizer.rs", "TokenCounter"),
            ("startHttpServer", "src/web/server.js", None),
        ]:
            found = await search(
                conn, "default", query, None, Filters(), 5, mode="lexical", ef_search=40,
                expected_model=state.embedder.model,
            )  # fmt: skip
            assert found.lexical == "ranked" and found.mode == "lexical"
            first = found.hits[0]
            assert first.rel_path == path, (query, [(h.rel_path, h.bm25) for h in found.hits])
            if symbol:
                assert symbol in (first.symbol or "")
            assert first.bm25 is not None and first.bm25 > 0
            scores = [h.bm25 or 0.0 for h in found.hits]
            assert scores == sorted(scores, reverse=True)
        # The statistics BM25 reads are the project's own and add up.
        stats = await db.get_project_stats(conn, "default")
        assert stats.lexical_ready and stats.lexical_docs > 0 and stats.chunks >= 8
        dfs = await conn.fetchval("SELECT sum(df) FROM lexical_terms WHERE project_id = 'default'")
        postings = await conn.fetchval(
            "SELECT count(*) FROM lexical_postings p JOIN lexical_terms t USING (term_id) "
            "WHERE t.project_id = 'default'"
        )
        assert dfs == postings


async def test_a_reindex_keeps_the_term_statistics_exact(
    state: ServerState, sample_repo: Path
) -> None:
    async with Client(create_server(state)) as client:
        await index(client, sample_repo)
        (sample_repo / "cmd" / "main.go").unlink()
        (sample_repo / "src" / "config_loader.py").write_text(
            "def load_yaml_settings():\n    pass\n"
        )
        done = await index(client, sample_repo)
        assert done["files_deleted"] == 1 and done["files_indexed"] == 1
        gone = await call(client, "search_code", query="computeChecksum")
        assert "cmd/main.go" not in [r["relative_path"] for r in gone["results"]]
    pool = await state.pool()
    async with pool.acquire() as conn:
        stats = await db.get_project_stats(conn, "default")
        chunks = await conn.fetchval("SELECT count(*) FROM chunks WHERE project_id = 'default'")
        assert stats.chunks == stats.embedded == chunks
        df = await conn.fetchval(
            "SELECT df FROM lexical_terms WHERE project_id = 'default' AND term = 'computechecksum'"
        )
        assert df == 0  # its only chunk went with the file
        dfs = await conn.fetchval("SELECT sum(df) FROM lexical_terms WHERE project_id = 'default'")
        postings = await conn.fetchval(
            "SELECT count(*) FROM lexical_postings p JOIN lexical_terms t USING (term_id) "
            "WHERE t.project_id = 'default'"
        )
        length = await conn.fetchval(
            "SELECT sum(dl) FROM (SELECT DISTINCT chunk_id, dl FROM lexical_postings p "
            "JOIN lexical_terms t USING (term_id) WHERE t.project_id = 'default') d"
        )
        assert dfs == postings and stats.lexical_length == length
    async with Client(create_server(state)) as client:
        await call(client, "delete_project", project_id="default")
    pool = await state.pool()  # the client's lifespan closed the one before
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM lexical_postings") == 0
        assert await conn.fetchval("SELECT count(*) FROM lexical_terms") == 0


async def test_a_slow_or_absent_embedder_gets_a_lexical_answer_that_says_so(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    state = make_state(migrated_dsn, fake_embedder, query_embed_timeout=0.3)
    try:
        async with Client(create_server(state)) as client:
            assert (await index(client, sample_repo))["status"] == "completed"
            fake_embedder.delay = 1.5  # every request now takes longer than the limit
            slow = await call(client, "search_code", query="increment_count")
            assert slow["lexical_only"] is True and slow["mode"] == "lexical"
            assert slow["fallback"].startswith("embedder_timeout: ")
            assert top(slow) == "lib/tokenizer.rs"
            fake_embedder.delay = 0.0
            await asyncio.sleep(2)  # the slow request still holds the fake embedder
            again = await call(client, "search_code", query="increment_count")
            assert again["lexical_only"] is False and "fallback" not in again
    finally:
        await state.stop()
    # No embedder at all (nothing listens on that port).
    down = make_state(migrated_dsn, fake_embedder, query_embed_timeout=10)
    # A client of its own: the endpoint pool keeps the URLs it was made with.
    down.embedder = OllamaEmbedder(f"http://127.0.0.1:{free_port()}", fake_embedder.model)
    try:
        async with Client(create_server(down)) as client:
            answer = await call(client, "search_code", query="parse config file")
            assert answer["lexical_only"] is True
            assert answer["fallback"].startswith("embedder_error: cannot reach the embedder")
            assert top(answer) == "src/config_loader.py"
    finally:
        await down.stop()


async def test_source_files_are_written_first_in_small_batches_then_searched(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    import asyncpg

    # The walk sees tests/ before zlib/; phase 1 writes zlib/ (source) first.
    repo = tmp_path / "repo"
    for i in range(40):
        path = repo / "tests" / f"test_case_{i:02}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def test_case_{i}():\n    assert helper_{i}() == {i}\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "guide.md").write_text("# Guide\n\nUse the widget factory.\n")
    (repo / "zlib").mkdir()
    (repo / "zlib" / "core.py").write_text(
        "class RareWidgetFactory:\n    def build_widget(self):\n        return 1\n"
    )
    fake_embedder.batch_delay = 8.0  # phase 2 stalls: what is searchable is phase 1's
    state = make_state(migrated_dsn, fake_embedder, write_batch_files=8, embed_batch_size=4)
    try:
        async with Client(create_server(state)) as client:
            started = await call(client, "start_indexing_background", repo_path=str(repo))
            job = started["job_id"]
            status = await wait_for(client, job, lambda s: s["phase"] == "embedding")
            assert status["files_indexed"] == 42
            found = await call(client, "search_code", query="RareWidgetFactory")
            assert found["semantic_coverage"] == 0.0
            assert top(found) == "zlib/core.py"
            await call(client, "cancel_indexing", job_id=job)
            fake_embedder.batch_delay = 0.0
            assert (await wait_done(client, job))["status"] == "cancelled"
    finally:
        await state.stop()

    conn = await asyncpg.connect(migrated_dsn)
    try:
        rows = await conn.fetch("SELECT rel_path FROM files ORDER BY id")
    finally:
        await conn.close()
    order = [r["rel_path"] for r in rows]
    assert order[:2] == ["zlib/core.py", "docs/guide.md"]
    assert order[2:] == sorted(order[2:]) and len(order) == 42
