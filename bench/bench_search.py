#!/usr/bin/env python3
"""Benchmark the server's indexing pipeline and search latency against real Postgres.

    .venv/bin/python bench/bench_search.py [--database-url URL] [--big 100000]
        [--queries 200] [--reuse] [--no-before] [--out bench/results/search.json]

Measures, in one run, the current code and what it replaced ("before"):

1. Indexing throughput EXCLUDING embedding time, on a real code base (the
   installed SQLAlchemy sources, about 11k chunks): walk + read + hash +
   tree-sitter chunking + COPY into Postgres. Twice on an empty table: with
   the HNSW index live during the load (before; ``defer_index_min_chunks=0``)
   and as the server now does it (index dropped after the first batch when
   writing is the bottleneck, built at the end). Embedding is done by an
   in-process hashed bag-of-words embedder (no model, no HTTP) and its time is
   subtracted, as the issue asks.
2. Re-index of the unchanged tree (the incremental path: hash and skip).
3. Search latency (SQL only, the query vector is computed beforehand) at ~10k
   chunks and at 100k chunks, vector and hybrid, with and without a file-type
   filter, with and without the full-text time budget; p50/p95/max over N
   queries. For hybrid: the previous full-text query (every match ranked and
   its similarity computed, the halves one after the other) against the
   current one, how often the budget fallback fires, and a known-item check
   (is a chunk of the queried symbol in the top 10?). HNSW recall@10 against
   an exact scan.

The 100k set is the 10k real chunks repeated with their vectors perturbed
(Gaussian noise, renormalised), so the neighbourhood structure stays code-like.
Both projects share the table (as projects do in the server), so the 10k
project's searches run in a table of ~111k chunks.

``--database-url`` uses an existing server; with ``--reuse`` the projects
already loaded there are searched again without re-indexing (for quick
experiments; the report then has no indexing section). Numbers are from a
shared 2-core VM: compare ratios within one run; load averages are recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codebase_mcp.server import db
from codebase_mcp.server.chunker import identifier_words
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.indexer import Indexer, Progress
from codebase_mcp.server.search import (
    Filters,
    Hit,
    TermStatsCache,
    _hit,
    fuse,
    search,
    text_search,
    tsquery_text,
    vector_search,
)

DIM = 384
QUERY_LIMIT = 10
TEXT_BUDGET_MS = 40  # the server's default CODEBASE_MCP_TEXT_SEARCH_BUDGET_MS


class HashEmbedder:
    """Hashed bag of identifier words -> 384-d unit vector (fast, deterministic)."""

    model = "bench-hash"

    def __init__(self) -> None:
        self._slots: dict[str, tuple[int, float]] = {}

    def vector(self, text: str) -> np.ndarray:
        v = np.zeros(DIM, dtype=np.float32)
        for word in identifier_words(text).split():
            slot = self._slots.get(word)
            if slot is None:
                d = hashlib.blake2b(word.encode(), digest_size=8).digest()
                slot = (int.from_bytes(d[:4], "little") % DIM, 1.0 if d[4] & 1 else -1.0)
                self._slots[word] = slot
            v[slot[0]] += slot[1]
        n = float(np.linalg.norm(v))
        if n == 0:
            v[0] = 1.0
            return v
        return v / n

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vector(t) for t in texts]  # type: ignore[misc]

    async def embed_query(self, text: str) -> list[float]:
        return self.vector(text)  # type: ignore[return-value]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
        "n": len(ordered),
    }


async def noop(progress: Progress) -> None:
    return None


def summary(progress: Progress) -> dict[str, Any]:
    t = progress.timings
    without = t["total_s"] - t.get("embed_s", 0.0)
    files = progress.counters["files_indexed"] + progress.counters["files_unchanged"]
    return {
        "files": files,
        "files_indexed": progress.counters["files_indexed"],
        "chunks": progress.counters["chunks_created"],
        "timings_s": t,
        "seconds_excluding_embedding": round(without, 2),
        "files_per_s": round(files / without, 1),
        "chunks_per_s": round(progress.counters["chunks_created"] / without, 1),
    }


async def index_corpus(pool: Any, root: str, embedder: HashEmbedder) -> dict[str, Any]:
    """Index the corpus on an empty table: live HNSW (before), then deferred (now)."""
    result: dict[str, Any] = {}
    for name, defer_min in (("full_before_live_hnsw", 0), ("full", 5000)):
        async with pool.acquire() as conn:
            # An empty table each time (bench100k is rebuilt from bench10k afterwards).
            await conn.execute("DELETE FROM projects WHERE id IN ('bench10k', 'bench100k')")
            await conn.execute("VACUUM ANALYZE chunks", timeout=None)
        settings = ServerSettings(defer_index_min_chunks=defer_min)
        indexer = Indexer(pool, embedder, settings)  # type: ignore[arg-type]
        started = load()
        progress = await indexer.run(project_id="bench10k", root=root, force=True, report=noop)
        result[name] = {**summary(progress), "load_before_after": [started, load()]}
        print(name, json.dumps(result[name]), file=sys.stderr, flush=True)
    indexer = Indexer(pool, embedder, ServerSettings())  # type: ignore[arg-type]
    again = await indexer.run(project_id="bench10k", root=root, force=False, report=noop)
    result["unchanged_reindex"] = summary(again)
    return result


async def build_big(pool: Any, target: int, seed: int = 7) -> dict[str, float]:
    """Project bench100k: the 10k chunks repeated with perturbed vectors, bulk loaded."""
    rng = np.random.default_rng(seed)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT file_id, path, rel_path, extension, language, start_line, end_line, symbol, "
            "content, search_text, embedding FROM chunks WHERE project_id = 'bench10k' ORDER BY id"
        )
        await conn.execute("DELETE FROM projects WHERE id = 'bench100k'")
        await db.ensure_project(conn, "bench100k", HashEmbedder.model, DIM, replace=True)
        # Chunks need file rows: one per source file, copied.
        files = await conn.fetch(
            "INSERT INTO files (project_id, repo_root, path, rel_path, content_hash, language, "
            "size_bytes, chunk_count) SELECT 'bench100k', repo_root, path, rel_path, content_hash, "
            "language, size_bytes, chunk_count FROM files WHERE project_id = 'bench10k' "
            "RETURNING id, path"
        )
        file_ids = {r["path"]: r["id"] for r in files}
        # Bulk load the way the server does a big first index: drop the HNSW
        # index, COPY, build it again.
        await conn.execute(f"DROP INDEX IF EXISTS {db.hnsw_index_name(DIM)}")
        base = np.stack([np.asarray(r["embedding"].to_numpy(), dtype=np.float32) for r in rows])
        started = time.perf_counter()
        copies = -(-target // len(rows))
        made = 0
        for copy in range(copies):
            take = min(len(rows), target - made)
            noise = rng.normal(0, 0.05, size=(take, DIM)).astype(np.float32)
            vectors = base[:take] + (noise if copy else 0)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            records = [
                ("bench100k", file_ids[r["path"]], r["path"], r["rel_path"], r["extension"],
                 r["language"], r["start_line"], r["end_line"], r["symbol"], r["content"],
                 r["search_text"], DIM, vectors[i])
                for i, r in enumerate(rows[:take])
            ]  # fmt: skip
            await conn.copy_records_to_table(
                "chunks", columns=db.CHUNK_COLUMNS, records=records, timeout=None
            )
            made += take
        loaded = time.perf_counter()
        await db.ensure_vector_index(conn, DIM, build_memory_mb=256)
        built = time.perf_counter()
        # Steady state before timing searches: otherwise autovacuum processes the
        # 100k new rows during the first series (seen: +50 % on every latency).
        await conn.execute("VACUUM ANALYZE chunks", timeout=None)
        return {
            "copy_s": round(loaded - started, 1),
            "hnsw_build_s": round(built - loaded, 1),
            "load_after": load(),
        }


# --- the full-text query and hybrid search as they were before -----------------------
async def before_text_search(
    conn: Any, project: db.Project, query: str, vector: Any, limit: int, budget_ms: int
) -> list[Hit] | None:
    """Every match ranked, its similarity computed (TOAST read) before the LIMIT."""
    tsquery = tsquery_text(query)
    if not tsquery:
        return []
    sql = (
        "SELECT id, path, rel_path, language, start_line, end_line, symbol, content, "
        f"-(embedding::vector({DIM}) <#> $1::vector({DIM})) AS similarity "
        "FROM chunks, to_tsquery('english', $4) q "
        f"WHERE project_id = $2 AND embedding_dim = {DIM} AND tsv @@ q "
        "ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT $3"
    )
    try:
        async with conn.transaction():
            if budget_ms:
                await conn.execute(f"SET LOCAL statement_timeout = {int(budget_ms)}")
            rows = await conn.fetch(sql, vector, project.id, limit, tsquery)
    except Exception as exc:
        if type(exc).__name__ == "QueryCanceledError":
            return None
        raise
    return [_hit(row) for row in rows]


async def before_hybrid(
    pool: Any, project_id: str, query: str, vector: Any, budget_ms: int
) -> tuple[list[Hit], str]:
    async with pool.acquire() as conn:
        project = await db.get_project(conn, project_id)
        assert project is not None
        depth = max(QUERY_LIMIT * 3, 30)
        semantic = await vector_search(conn, project, vector, Filters(), depth, 100)
        lexical = await before_text_search(conn, project, query, vector, depth, budget_ms)
    status = "over_budget" if lexical is None else "ranked"
    return fuse([semantic, lexical or []], QUERY_LIMIT), status


# --- latency ---------------------------------------------------------------------------
Query = tuple[str, str, np.ndarray]  # symbol, query text, vector


async def latency(
    pool: Any,
    project: str,
    queries: list[Query],
    mode: str,
    *,
    file_type: str | None = None,
    budget_ms: int = 0,
    before: bool = False,
    term_stats: TermStatsCache | None = None,
) -> dict[str, Any]:
    times = []
    statuses: Counter[str] = Counter()
    found = 0
    settings = ServerSettings()
    for symbol, text, vector in queries:
        t = time.perf_counter()
        if before:
            hits, status = await before_hybrid(pool, project, text, vector, budget_ms)
        else:
            async with pool.acquire() as conn:
                result = await search(
                    conn, project, text, vector, Filters(file_type=file_type), QUERY_LIMIT,  # type: ignore[arg-type]
                    mode=mode, ef_search=100, expected_model=HashEmbedder.model,  # type: ignore[arg-type]
                    text_budget_ms=budget_ms, text_max_cost=settings.text_search_max_cost,
                    term_stats=term_stats,
                )  # fmt: skip
            hits, status = result.hits, result.lexical or "-"
        times.append((time.perf_counter() - t) * 1000)
        statuses[status] += 1
        found += any(h.symbol == symbol for h in hits)
    out: dict[str, Any] = percentiles(times)
    if mode == "hybrid":
        out["lexical"] = dict(statuses)
    if file_type is None:
        out["known_item_top10"] = round(found / len(queries), 3)
    return out


async def text_plans(pool: Any, project: str, queries: list[Query]) -> dict[str, int]:
    """What the full-text planner chose for these queries."""
    kinds: Counter[str] = Counter()
    stats = TermStatsCache()
    async with pool.acquire() as conn:
        proj = await db.get_project(conn, project)
        assert proj is not None
        for _, text, vector in queries:
            result = await text_search(
                conn, proj, text, vector, Filters(), 30,  # type: ignore[arg-type]
                max_cost=ServerSettings().text_search_max_cost, term_stats=stats,
            )  # fmt: skip
            kinds[result.plan.kind if result.plan else result.status] += 1
    return dict(kinds)


async def hnsw_recall(pool: Any, project: str, queries: list[Query]) -> float:
    """recall@10 of the HNSW index against an exact scan (index scans off)."""
    hits = total = 0
    async with pool.acquire() as conn:
        proj = await db.get_project(conn, project)
        assert proj is not None
        for _, _, vector in queries[:50]:
            approx = await vector_search(conn, proj, vector, Filters(), 10, 100)  # type: ignore[arg-type]
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                exact = await vector_search(conn, proj, vector, Filters(), 10, 100)  # type: ignore[arg-type]
            truth = {h.id for h in exact}
            hits += len(truth & {h.id for h in approx})
            total += len(truth)
    return round(hits / total, 4)


async def project_sizes(pool: Any) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT project_id, count(*) AS n FROM chunks GROUP BY 1")
    return {r["project_id"]: int(r["n"]) for r in rows}


async def run(
    database_url: str, corpus: Path, big: int, n_queries: int, reuse: bool, with_before: bool
) -> dict[str, Any]:
    from codebase_mcp.migrate import upgrade_head

    await upgrade_head(database_url)
    pool = await db.create_pool(database_url, max_size=4, command_timeout=None)
    embedder = HashEmbedder()
    result: dict[str, Any] = {"load_at_start": load()}
    try:
        sizes = await project_sizes(pool)
        if not (reuse and sizes.get("bench10k") and sizes.get("bench100k") == big):
            result["indexing"] = await index_corpus(pool, str(corpus), embedder)
            build_seconds = await build_big(pool, big)
        else:
            build_seconds = None
        async with pool.acquire() as conn:
            words = [
                r["symbol"]
                for r in await conn.fetch(
                    "SELECT symbol FROM chunks WHERE project_id = 'bench10k' "
                    "AND symbol IS NOT NULL "
                    "ORDER BY md5(id::text) LIMIT $1",
                    n_queries,
                )
            ]
        queries = [(w, f"where is {w} implemented", embedder.vector(w)) for w in words]
        result["search"] = {}
        stats = TermStatsCache()
        for project in ("bench10k", "bench100k"):
            entry: dict[str, Any] = {"chunks": (await project_sizes(pool))[project]}
            # Warm up: one pass over every query (the first pass after a bulk load
            # reads the heap pages of the matches from disk), both code paths.
            await latency(pool, project, queries, "hybrid", term_stats=stats)
            if with_before:
                await latency(pool, project, queries, "hybrid", budget_ms=40, before=True)
            entry["load_at_start"] = load()
            for mode in ("vector", "hybrid"):
                entry[mode] = await latency(pool, project, queries, mode, term_stats=stats)
                entry[f"{mode}_file_type_py"] = await latency(
                    pool, project, queries, mode, file_type="py", term_stats=stats
                )
            # The server's default: the full-text half gets 40 ms, then vector-only.
            entry["hybrid_budget_40ms"] = await latency(
                pool, project, queries, "hybrid", budget_ms=TEXT_BUDGET_MS, term_stats=stats
            )
            entry["text_plans"] = await text_plans(pool, project, queries)
            if with_before:
                entry["before"] = {
                    "hybrid": await latency(pool, project, queries, "hybrid", before=True),
                    "hybrid_budget_40ms": await latency(
                        pool, project, queries, "hybrid", budget_ms=TEXT_BUDGET_MS, before=True
                    ),
                }
            entry["hnsw_recall@10_vs_exact"] = await hnsw_recall(pool, project, queries)
            entry["load_at_end"] = load()
            result["search"][project] = entry
            print(project, json.dumps(entry), file=sys.stderr, flush=True)
        if build_seconds:
            result["search"]["bench100k"]["bulk_load"] = build_seconds
        return result
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="indexing throughput and search latency")
    parser.add_argument("--database-url", help="default: start the project's postgres image")
    parser.add_argument("--corpus", type=Path, default=None, help="default: installed sqlalchemy")
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--reuse", action="store_true", help="search the projects already loaded (no indexing)"
    )
    parser.add_argument(
        "--no-before", action="store_true", help="skip the previous hybrid query (slow at 100k)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search.json")
    args = parser.parse_args()
    corpus = args.corpus
    if corpus is None:
        import sqlalchemy

        corpus = Path(sqlalchemy.__file__).parent
    with ExitStack() as stack:
        url = args.database_url
        if not url:
            from tests.support.postgres import start_postgres

            server = stack.enter_context(start_postgres())
            url = server.dsn("postgres")
        report = asyncio.run(
            run(url, corpus, args.big, args.queries, args.reuse, not args.no_before)
        )
    import sqlalchemy as sa

    report["load_at_end"] = load()
    report["corpus"] = {"path": str(corpus), "package": f"sqlalchemy {sa.__version__}"}
    report["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "note": "shared VM, other jobs running; postgres in the project's image with "
        "fsync=off (test settings)",
    }
    report["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
