"""What keeps search and indexing fast on big projects, against real Postgres:

- BM25 reads the postings of the rarest terms only and adds the common terms'
  part to the candidates they select (same score as reading everything), or
  each term's best postings (impact order) and rescores the candidates exactly;
- a filtered BM25 search tests its filter on the best candidates first, then on
  the rest if too few pass: the answers of joining every posting to its chunk;
- a big first index loads without the HNSW index and builds it at the end,
  coordinated by advisory locks so nobody rebuilds it meanwhile, and a bulk
  load that dies leaves no index missing for long.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from codebase_mcp.server import db, indexer
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.server.indexer import Indexer, Progress
from codebase_mcp.server.jobs import Worker
from codebase_mcp.server.search import (
    Filters,
    TermStatsCache,
    plan_lexical,
    query_text,
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


async def test_bm25_reads_only_the_rare_terms_postings_and_scores_the_common_ones(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    root = write_handlers(tmp_path / "repo", 120)
    pool = await db.create_pool(migrated_dsn)
    try:
        await index(pool, fake_embedder, root)
        async with pool.acquire() as conn:
            project = await db.get_project(conn, "default")
            stats = await db.get_project_stats(conn, "default")
            shared = await conn.fetchval(
                "SELECT df FROM lexical_terms WHERE project_id = 'default' AND term = 'share'"
            )
        assert project is not None
        assert stats.lexical_docs == stats.chunks == 120
        assert shared == 120  # in every chunk ("shared" stemmed)

        wanted = f"handler_{12}.py"
        query = f"shared helper for marker_{letters(12)}"
        vector = [1.0] + [0.0] * (DIMENSION - 1)

        async def lexical(q: str, max_cost: int) -> Any:
            async with pool.acquire() as conn:
                return await text_search(
                    conn, project, q, vector, Filters(), 30, max_cost=max_cost,
                    term_stats=TermStatsCache(ttl=0),
                )  # fmt: skip

        # The cap: only the rare terms' postings select; "share"/"helper" (in every
        # chunk) only add their part to the candidates.
        capped = await lexical(query, max_cost=20)
        assert capped.status == "ranked" and capped.plan.cost <= 20
        assert capped.plan.extra and all(t.df == 120 for t in capped.plan.extra)
        assert capped.hits[0].rel_path == wanted
        assert len(capped.hits) == 1  # only its chunk holds the rare terms

        # Without the cap every term selects: all 120 chunks are candidates.
        uncapped = await lexical(query, max_cost=0)
        assert not uncapped.plan.extra and len(uncapped.hits) == 30
        assert uncapped.hits[0].rel_path == wanted
        assert uncapped.hits[0].bm25 == pytest.approx(capped.hits[0].bm25)  # same score

        # Only common terms: the rarest still selects; hybrid fuses both halves.
        async with pool.acquire() as conn:
            result = await search(
                conn, "default", "shared helper handle request", vector, Filters(), 5,
                mode="hybrid", ef_search=40, expected_model=fake_embedder.model,
                text_budget_ms=40, text_max_cost=20,
            )  # fmt: skip
        assert result.lexical == "ranked" and len(result.hits) == 5
        assert result.semantic_coverage == 1.0
    finally:
        await pool.close()


async def test_bm25_per_term_cap_reads_each_terms_best_postings_and_scores_exactly(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    """TEXT_SEARCH_PER_TERM: each term's best postings (impact index) give the
    candidates; their scores are the exact BM25 of reading every posting."""
    root = write_handlers(tmp_path / "repo", 60)
    # One chunk says "helper" many times: the best "helper" posting by impact.
    (root / "helpers.py").write_text(
        "def helper_of_helpers(helper):\n    return helper(helper(helper(helper)))\n"
    )
    pool = await db.create_pool(migrated_dsn)
    try:
        await index(pool, fake_embedder, root)
        async with pool.acquire() as conn:
            project = await db.get_project(conn, "default")
            assert project is not None
            query = f"shared helper for marker_{letters(12)}"

            async def lexical(per_term: int, filters: Filters | None = None) -> Any:
                return await text_search(
                    conn, project, query, None, filters or Filters(), 30, max_cost=0,
                    per_term=per_term,
                )  # fmt: skip

            full = await lexical(0)
            capped = await lexical(3)  # "share"/"helper" are in 60-61 chunks: 3 of each
            assert full.status == capped.status == "ranked"
            assert len(full.hits) == 30
            # marker_<12> (1 chunk) is read whole, its chunk comes first either way;
            # the "helper" chunk is among the best postings of "helper".
            assert capped.hits[0].rel_path == full.hits[0].rel_path == f"handler_{12}.py"
            assert "helpers.py" in {h.rel_path for h in capped.hits}
            assert len(capped.hits) < len(full.hits)  # the cap left the rest unread
            exact = {h.id: h.bm25 for h in full.hits}
            for hit in capped.hits:
                if hit.id in exact:
                    assert hit.bm25 == pytest.approx(exact[hit.id])
            # A large cap reads everything: the same ranking and scores.
            whole = await lexical(1000)
            assert [(h.id, round(h.bm25 or 0, 9)) for h in whole.hits] == [
                (h.id, round(h.bm25 or 0, 9)) for h in full.hits
            ]
            # Filtered searches keep the plan without the cap.
            filtered = await lexical(3, Filters(file_type="py"))
            assert len(filtered.hits) == 30
            # The capped statement reads the impact index.
            rows = await conn.fetch(
                "EXPLAIN " + db.bm25_capped_sql(None),
                [1], [1.0], 1.2, 0.4, 10.0, 100, 3, None, 10,
            )  # fmt: skip
            text = "\n".join(r[0] for r in rows)
            assert "lexical_postings_impact" in text, text
    finally:
        await pool.close()


def write_filter_corpus(root: Path) -> None:
    """60 handlers, 8 more under ``sub/`` and 3 long ``.txt`` notes sharing their
    words: the notes' length ranks them last, below every handler."""
    write_handlers(root, 60)
    for i in range(8):
        (root / "sub").mkdir(exist_ok=True)
        (root / "sub" / f"extra_{i}.py").write_text(
            f"def shared_request_{letters(i)}(request):\n    return helper(request)\n"
        )
    for i in range(3):
        filler = " ".join(f"filler{letters(i)}{letters(j)}" for j in range(60))
        (root / f"notes_{i}.txt").write_text(f"shared helper request {filler}\n")


async def join_hits(
    conn: asyncpg.Connection,
    plan: Any,
    avgdl: float,
    candidates: int,
    filters: Filters,
) -> list[tuple[int, float]]:
    """The filtered answer as it was computed before: each posting joined to its chunk."""
    where, params = db.filter_sql(filters, 11, alias="c.")
    rows = await conn.fetch(
        db.bm25_sql(None, where, True),
        [t.term_id for t in plan.select], [t.idf for t in plan.select], 1.2, 0.4, avgdl,
        candidates, [t.term_id for t in plan.extra], [t.idf for t in plan.extra], None,
        candidates, *params,
    )  # fmt: skip
    return [(r["id"], float(r["bm25"])) for r in rows]


async def test_filtered_bm25_tests_the_best_candidates_first_and_equals_the_join(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    """A filtered search tests the filter on the best unfiltered candidates (the
    head, ``POSTFILTER_FACTOR`` x candidates) and, if too few pass, on the rest in
    order: the same hits, order and scores as joining every posting to its chunk."""
    root = tmp_path / "repo"
    write_filter_corpus(root)
    pool = await db.create_pool(migrated_dsn)
    try:
        await index(pool, fake_embedder, root)
        async with pool.acquire() as conn:
            stats = await db.lexical_stats(conn, "default", query_text("shared helper request"))
            assert stats is not None and stats.docs == 71
            avgdl = stats.length / stats.docs
            found = [(t.term_id, t.df) for t in stats.terms]

            async def new_hits(plan: Any, candidates: int, filters: Filters) -> list[Any]:
                return await db.bm25_hits(
                    conn, project_id="default",
                    select=[db.WeightedTerm(t.term_id, t.idf) for t in plan.select],
                    extra=[db.WeightedTerm(t.term_id, t.idf) for t in plan.extra], k1=1.2,
                    b=0.4, avgdl=avgdl, candidates=candidates, vector=None, dim=None,
                    filters=filters, limit=candidates,
                )  # fmt: skip

            everything = plan_lexical(found, stats.docs, 0)
            assert everything is not None
            ranked = await new_hits(everything, 1000, Filters())
            assert len(ranked) == 71
            rank = {h.id: i for i, h in enumerate(ranked)}
            assert {h.rel_path for h in ranked[-3:]} == {f"notes_{i}.txt" for i in range(3)}

            filters = [
                Filters(file_type="py"),
                Filters(file_type="txt"),
                Filters(file_type="text"),  # the language
                Filters(rel_prefix="sub"),
                Filters(file_type="py", rel_prefix="sub"),
                Filters(file_type="go"),  # nothing passes
            ]
            paths = {"head": 0, "rest": 0}
            # max_cost 0: every term selects; 65: the rarest selects, the others add.
            for max_cost in (0, 65):
                plan = plan_lexical(found, stats.docs, max_cost)
                assert plan is not None and bool(plan.extra) == bool(max_cost)
                for candidates in (1, 3, 5, 10, 100):
                    head = db.postfilter_head(candidates)
                    for f in filters:
                        got = await new_hits(plan, candidates, f)
                        want = await join_hits(conn, plan, avgdl, candidates, f)
                        assert [h.id for h in got] == [i for i, _ in want], (f, candidates)
                        for hit, (_, score) in zip(got, want, strict=True):
                            assert hit.bm25 == pytest.approx(score, rel=1e-12)
                        if max_cost or not got:
                            continue  # ranks are those of every term selecting
                        if max(rank[h.id] for h in got) >= head:
                            paths["rest"] += 1  # fewer than the candidates passed in the head
                        elif len(got) == candidates:
                            paths["head"] += 1  # enough passed in the head
            # Both paths were taken: e.g. "txt" with 3 candidates (a head of 30 of
            # the 71 ranked chunks, the notes last) is answered from the rest.
            assert paths["head"] and paths["rest"], paths
            txt = await new_hits(everything, 3, Filters(file_type="txt"))
            assert min(rank[h.id] for h in txt) >= db.postfilter_head(3)
    finally:
        await pool.close()


async def index_exists(conn: asyncpg.Connection) -> bool:
    return await db.vector_index_exists(conn, DIMENSION)


async def test_big_first_index_loads_without_the_hnsw_index_then_builds_it(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path, monkeypatch: Any
) -> None:
    root = write_handlers(tmp_path / "repo", 60)
    decisions: list[dict[str, Any]] = []

    def decide(**facts: Any) -> bool:
        # The real rule also needs writes slower than embedding, which depends on
        # this machine's speed: record its inputs, and say yes.
        decisions.append(facts)
        return True

    monkeypatch.setattr(indexer, "should_defer_index", decide)
    during: list[tuple[bool, bool]] = []  # (index present, another job could rebuild it)
    write_embeddings = db.write_embeddings
    pool = await db.create_pool(migrated_dsn)

    async def observed_write(conn: asyncpg.Connection, *args: Any, **kwargs: Any) -> int:
        present = await index_exists(conn)
        rebuilt = False
        if not present:
            # Another job's batch (ensure_project) must not rebuild it under us.
            async with pool.acquire() as other:
                rebuilt = await db.ensure_vector_index(other, DIMENSION)
        during.append((present, rebuilt))
        return await write_embeddings(conn, *args, **kwargs)

    monkeypatch.setattr(db, "write_embeddings", observed_write)
    try:
        # 2 vectors per write: the first write (index live) measures the insert
        # cost, the decision comes at the second.
        progress = await index(
            pool, fake_embedder, root, embed_batch_size=2, defer_index_min_chunks=1
        )
        assert progress.counters["chunks_created"] == 60
        assert len(decisions) == 1
        facts = decisions[0]
        assert facts["first_index"] is True and facts["min_chunks"] == 1
        assert facts["other_rows"] == 0
        assert facts["remaining_chunks"] == 58  # exact: 60 to embed, 2 written
        assert during[0] == (True, False)
        assert during[1:] and all(d == (False, False) for d in during[1:])
        assert "vector_index_s" in progress.timings
        async with pool.acquire() as conn:
            assert await index_exists(conn)
            valid = await conn.fetchval(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = $1::regclass",
                db.hnsw_index_name(DIMENSION),
            )
            assert valid is True
            # Indexing again changes nothing, so it does not touch the index.
            assert await db.missing_vector_indexes(conn) == []
        again = await index(pool, fake_embedder, root, defer_index_min_chunks=1)
        assert again.counters["files_unchanged"] == 60 and len(decisions) == 1
        assert "vector_index_s" not in again.timings
    finally:
        await pool.close()


async def test_a_dead_bulk_load_leaves_no_index_missing(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    pool = await db.create_pool(migrated_dsn)
    settings = ServerSettings(stale_after=1, heartbeat_interval=0.2)
    embedder = OllamaEmbedder(fake_embedder.url, fake_embedder.model)
    try:
        async with pool.acquire() as conn:
            await db.ensure_project(conn, "default", fake_embedder.model, DIMENSION, replace=False)
            # While an index is being (re)built, a bulk load does not drop it.
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)", db.VECTOR_INDEX_LOCK, DIMENSION
                )
                loader = await asyncpg.connect(migrated_dsn)
                assert await db.defer_vector_index(loader, DIMENSION) is False
            assert await index_exists(conn)

            assert await db.defer_vector_index(loader, DIMENSION) is True
            assert not await index_exists(conn)
            assert await db.ensure_vector_index(conn, DIMENSION) is False  # held back
            await loader.close()  # the loader dies without building the index
            assert await db.missing_vector_indexes(conn) == [DIMENSION]

            # Its job is still "running" with an old heartbeat.
            job_id = await db.create_job(
                conn, project_id="default", repo_path=str(sample_repo),
                root_path=str(sample_repo), force_reindex=False,
                embedding_model=fake_embedder.model,
            )  # fmt: skip
            assert (await db.claim_job(conn, "dead-worker"))["id"] == job_id  # type: ignore[index]
            await conn.execute(
                "UPDATE jobs SET heartbeat_at = now() - interval '10 minutes' WHERE id = $1",
                job_id,
            )
        # The worker that recovers the job builds the index before anything else.
        worker = Worker(pool, embedder, settings, worker_id=f"live-{uuid.uuid4().hex[:4]}")
        assert await worker.run_once() is True
        async with pool.acquire() as conn:
            assert await index_exists(conn)
            assert (await db.get_job(conn, job_id))["status"] == "completed"  # type: ignore[index]
    finally:
        await embedder.aclose()
        await pool.close()
