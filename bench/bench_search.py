#!/usr/bin/env python3
"""Benchmark the server's indexing pipeline and search latency against real Postgres.

    .venv/bin/python bench/bench_search.py [--database-url URL] [--big 100000]
        [--queries 200] [--reuse] [--before-tree DIR] [--out bench/results/search.json]

Measures, in one run, the current code and (``--before-tree``, a checkout of
main with its own bench/bench_search.py) the code it replaces, against the same
Postgres server (separate databases):

1. Indexing EXCLUDING embedding time, on a real code base (the installed
   SQLAlchemy sources, about 11k chunks): walk + read + hash + tree-sitter
   chunking + COPY + the lexical index (postings, document frequencies), then
   the vectors written by batches. ``lexical_ready_s`` is when the project
   became searchable. Embedding is done by an in-process hashed bag-of-words
   embedder (no model, no HTTP) and its time is subtracted.
2. Re-index of the unchanged tree (the incremental path: hash and skip).
3. Search latency (SQL only, the query vector is computed beforehand) at ~10k
   chunks and at 100k chunks: vector, lexical (BM25) and hybrid, with and
   without a file-type filter and the lexical time budget; p50/p95/max over N
   queries "where is SYMBOL implemented", a known-item check (is a chunk of
   SYMBOL in the top 10?) and HNSW recall@10 against an exact scan.

The 100k set is the 10k real chunks repeated with their vectors perturbed
(Gaussian noise, renormalised), so the neighbourhood structure stays code-like;
its lexical index is built from the copies' text like any project's. Both
projects share the tables (as projects do in the server). Numbers are from a
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
    TermStatsCache,
    search,
    text_search,
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
        "lexical_ready_s": t.get("lexical_ready_s"),
        "seconds_excluding_embedding": round(without, 2),
        "files_per_s": round(files / without, 1),
        "chunks_per_s": round(progress.counters["chunks_created"] / without, 1),
    }


async def index_corpus(pool: Any, root: str, embedder: HashEmbedder) -> dict[str, Any]:
    """Index the corpus on an empty table, then again unchanged."""
    result: dict[str, Any] = {}
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM projects WHERE id IN ('bench10k', 'bench100k')")
        await db.delete_lexical_terms(conn, "bench10k")
        await db.delete_lexical_terms(conn, "bench100k")
        await conn.execute("VACUUM ANALYZE chunks", timeout=None)
    indexer = Indexer(pool, embedder, ServerSettings())  # type: ignore[arg-type]
    started = load()
    progress = await indexer.run(project_id="bench10k", root=root, force=True, report=noop)
    result["full"] = {**summary(progress), "load_before_after": [started, load()]}
    print("full", json.dumps(result["full"]), file=sys.stderr, flush=True)
    again = await indexer.run(project_id="bench10k", root=root, force=False, report=noop)
    result["unchanged_reindex"] = summary(again)
    return result


async def build_big(pool: Any, target: int, seed: int = 7) -> dict[str, Any]:
    """Project bench100k: the 10k chunks repeated with perturbed vectors, bulk loaded."""
    rng = np.random.default_rng(seed)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT file_id, path, rel_path, extension, language, start_line, end_line, symbol, "
            "content, search_text, text_sha256, embedding FROM chunks "
            "WHERE project_id = 'bench10k' "
            "ORDER BY id"
        )
        await db.delete_lexical_terms(conn, "bench100k")
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
                 r["search_text"], DIM, 0, r["text_sha256"], vectors[i])
                for i, r in enumerate(rows[:take])
            ]  # fmt: skip
            await conn.copy_records_to_table(
                "chunks", columns=(*db.CHUNK_COLUMNS, "embedding"), records=records, timeout=None
            )
            made += take
        loaded = time.perf_counter()
        await db.ensure_vector_index(conn, DIM, build_memory_mb=256)
        built = time.perf_counter()
        await conn.execute(
            "UPDATE project_stats SET chunks = $1, embedded = $1, lexical_ready = false "
            "WHERE project_id = 'bench100k'",
            made,
        )
        await db.rebuild_lexical(conn, "bench100k")
        lexical = time.perf_counter()
        postings = await conn.fetchval(
            "SELECT count(*) FROM lexical_postings WHERE term_id IN "
            "(SELECT term_id FROM lexical_terms WHERE project_id = 'bench100k')"
        )
        # Steady state before timing searches: otherwise autovacuum processes the
        # 100k new rows during the first series (seen: +50 % on every latency).
        await conn.execute("VACUUM ANALYZE chunks, lexical_postings, lexical_terms", timeout=None)
        return {
            "copy_s": round(loaded - started, 1),
            "hnsw_build_s": round(built - loaded, 1),
            "lexical_index_s": round(lexical - built, 1),
            "postings": int(postings),
            "load_after": load(),
        }


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
    term_stats: TermStatsCache | None = None,
    settings: ServerSettings | None = None,
) -> dict[str, Any]:
    times = []
    statuses: Counter[str] = Counter()
    found = 0
    settings = settings or ServerSettings()
    for symbol, text, vector in queries:
        t = time.perf_counter()
        async with pool.acquire() as conn:
            result = await search(
                conn, project, text, vector, Filters(file_type=file_type), QUERY_LIMIT,  # type: ignore[arg-type]
                mode=mode, ef_search=100, expected_model=HashEmbedder.model,  # type: ignore[arg-type]
                text_budget_ms=budget_ms, text_max_cost=settings.text_search_max_cost,
                term_stats=term_stats, settings=settings,
            )  # fmt: skip
        hits, status = result.hits, result.lexical or "-"
        times.append((time.perf_counter() - t) * 1000)
        statuses[status] += 1
        found += any(h.symbol == symbol for h in hits)
    out: dict[str, Any] = percentiles(times)
    if mode != "vector":
        out["lexical"] = dict(statuses)
    if file_type is None:
        out["known_item_top10"] = round(found / len(queries), 3)
    return out


async def text_plans(pool: Any, project: str, queries: list[Query]) -> dict[str, Any]:
    """What the lexical planner chose: terms selecting / only adding, postings read."""
    selecting: Counter[int] = Counter()
    adding: Counter[int] = Counter()
    costs: list[float] = []
    async with pool.acquire() as conn:
        proj = await db.get_project(conn, project)
        assert proj is not None
        for _, text, vector in queries:
            result = await text_search(
                conn, proj, text, vector, Filters(), 30,  # type: ignore[arg-type]
                max_cost=ServerSettings().text_search_max_cost,
            )  # fmt: skip
            if result.plan:
                selecting[len(result.plan.select)] += 1
                adding[len(result.plan.extra)] += 1
                costs.append(result.plan.cost)
    return {
        "terms_selecting": dict(sorted(selecting.items())),
        "terms_only_adding": dict(sorted(adding.items())),
        "postings_read": percentiles(costs) if costs else {},
    }


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


async def query_symbols(conn: Any, n: int) -> list[str]:
    """``n`` symbols of the 10k set, the words of its queries. Chosen by content,
    not id: the same queries whatever order the indexer wrote the chunks in (ids
    differ between trees)."""
    return [
        r["symbol"]
        for r in await conn.fetch(
            "SELECT symbol FROM chunks WHERE project_id = 'bench10k' AND symbol IS NOT NULL "
            "ORDER BY md5(rel_path || ':' || start_line || ':' || symbol) LIMIT $1",
            n,
        )
    ]


async def run(
    database_url: str, corpus: Path, big: int, n_queries: int, reuse: bool
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
            words = await query_symbols(conn, n_queries)
        queries = [(w, f"where is {w} implemented", embedder.vector(w)) for w in words]
        result["search"] = {}
        stats = TermStatsCache()
        before = ServerSettings(text_search_per_term=0)
        result["before_settings"] = {"text_search_per_term": 0}
        result["after_settings"] = {"text_search_per_term": ServerSettings().text_search_per_term}
        for project in ("bench10k", "bench100k"):
            entry: dict[str, Any] = {"chunks": (await project_sizes(pool))[project]}
            # Warm up: one pass over every query (the first pass after a bulk load
            # reads the heap pages of the matches from disk), both code paths.
            await latency(pool, project, queries, "hybrid", term_stats=stats)
            await latency(pool, project, queries, "hybrid", term_stats=stats, settings=before)
            entry["load_at_start"] = load()
            for mode in ("vector", "lexical", "hybrid"):
                entry[mode] = await latency(pool, project, queries, mode, term_stats=stats)
                if mode != "vector":
                    # Before, in the same run on the same data: every posting of the
                    # rarest terms (TEXT_SEARCH_PER_TERM=0, the plan until now).
                    entry[f"{mode}_before"] = await latency(
                        pool, project, queries, mode, term_stats=stats, settings=before
                    )
                entry[f"{mode}_file_type_py"] = await latency(
                    pool, project, queries, mode, file_type="py", term_stats=stats
                )
            # The server's default: the full-text half gets 40 ms, then vector-only.
            entry["hybrid_budget_40ms"] = await latency(
                pool, project, queries, "hybrid", budget_ms=TEXT_BUDGET_MS, term_stats=stats
            )
            entry["hybrid_budget_40ms_before"] = await latency(
                pool, project, queries, "hybrid", budget_ms=TEXT_BUDGET_MS, term_stats=stats,
                settings=before,
            )  # fmt: skip
            entry["text_plans"] = await text_plans(pool, project, queries)
            entry["hnsw_recall@10_vs_exact"] = await hnsw_recall(pool, project, queries)
            entry["load_at_end"] = load()
            result["search"][project] = entry
            print(project, json.dumps(entry), file=sys.stderr, flush=True)
        if build_seconds:
            result["search"]["bench100k"]["bulk_load"] = build_seconds
        return result
    finally:
        await pool.close()


def fresh_database(url: str, name: str) -> str:
    """A new, empty database ``name`` on ``url``'s server (dropped first if there):
    a side that re-indexes into the tables of an earlier run reads their bloat."""
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return url.rsplit("/", 1)[0] + "/" + name


def run_before(tree: Path, url: str, corpus: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The old code's own benchmark, in a database of its own on the same server."""
    import subprocess

    before_url = fresh_database(url, "bench_before")
    out = Path(f"/tmp/bench-search-before-{os.getpid()}.json")
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    argv = [sys.executable, str(tree / "bench" / "bench_search.py"), "--database-url", before_url,
            "--corpus", str(corpus), "--big", str(args.big), "--queries", str(args.queries),
            "--out", str(out)]  # fmt: skip
    print("before:", " ".join(argv[1:3]), file=sys.stderr, flush=True)
    done = subprocess.run(argv, env=env, cwd=tree, stdout=subprocess.DEVNULL)
    if done.returncode:  # not CalledProcessError: its message would show the DSN's password
        raise SystemExit(f"the before side ({argv[1]}) failed with exit code {done.returncode}")
    report: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    report["tree"] = {"path": str(tree), "commit": commit}
    return report


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
        "--before-tree",
        type=Path,
        help="a checkout of the code before (main): its bench/bench_search.py runs first, "
        "in the same Postgres server (database bench_before), and its report goes under 'before'",
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
        before = None
        if args.before_tree:
            before = run_before(args.before_tree, url, corpus, args)
            if not args.reuse:  # both sides start from an empty database
                url = fresh_database(url, "bench_after")
        report = asyncio.run(run(url, corpus, args.big, args.queries, args.reuse))
        if before is not None:
            report = {"after": report, "before": before}
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
