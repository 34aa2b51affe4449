#!/usr/bin/env python3
"""Benchmark the server's indexing pipeline and search latency against real Postgres.

    .venv/bin/python bench/bench_search.py [--database-url URL] [--big 100000]
        [--out bench/results/search.json]

Measures, in one run:

1. Indexing throughput EXCLUDING embedding time, on a real code base (the
   installed SQLAlchemy sources, about 10k chunks): walk + read + hash +
   tree-sitter chunking + COPY into Postgres with the HNSW index live.
   Embedding is done by an in-process hashed bag-of-words embedder (no model,
   no HTTP) and its time is subtracted, as the issue asks.
2. Re-index of the unchanged tree (the incremental path: hash and skip).
3. Search latency (SQL only, the query vector is computed beforehand) at ~10k
   chunks and at 100k chunks, vector and hybrid, with and without a file-type
   filter; p50/p95/max over N queries, plus HNSW recall@10 against an exact scan.

The 100k set is the 10k real chunks repeated with their vectors perturbed
(Gaussian noise, renormalised), so the neighbourhood structure stays code-like.
Numbers are from a shared 2-core VM: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import statistics
import sys
import time
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
from codebase_mcp.server.search import Filters, search, vector_search

DIM = 384


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


async def index_corpus(pool: Any, root: str, embedder: HashEmbedder) -> dict[str, Any]:
    settings = ServerSettings()
    indexer = Indexer(pool, embedder, settings)  # type: ignore[arg-type]
    first = await indexer.run(project_id="bench10k", root=root, force=True, report=noop)
    second = await indexer.run(project_id="bench10k", root=root, force=False, report=noop)

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

    return {"full": summary(first), "unchanged_reindex": summary(second)}


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
        # Bulk load the way one would: drop the HNSW index, COPY, build it again.
        await conn.execute(f"DROP INDEX IF EXISTS chunks_embedding_hnsw_{DIM}")
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
        # No parallel build: it needs shared memory beyond a container's 64 MB /dev/shm.
        await conn.execute("SET max_parallel_maintenance_workers = 0")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(db.hnsw_index_sql(DIM), timeout=None)
        await conn.execute("ANALYZE chunks", timeout=None)
        return {
            "copy_s": round(loaded - started, 1),
            "hnsw_build_s": round(time.perf_counter() - loaded, 1),
        }


async def latency(
    pool: Any,
    project: str,
    queries: list[tuple[str, np.ndarray]],
    mode: str,
    file_type: str | None,
    budget_ms: int = 0,
) -> dict[str, float]:
    times = []
    async with pool.acquire() as conn:
        for text, vector in queries:
            t = time.perf_counter()
            await search(
                conn, project, text, vector, Filters(file_type=file_type), 10,  # type: ignore[arg-type]
                mode=mode, ef_search=100, expected_model=HashEmbedder.model,  # type: ignore[arg-type]
                text_budget_ms=budget_ms,
            )  # fmt: skip
            times.append((time.perf_counter() - t) * 1000)
    return percentiles(times)


async def hnsw_recall(pool: Any, project: str, queries: list[tuple[str, np.ndarray]]) -> float:
    """recall@10 of the HNSW index against an exact scan (index scans off)."""
    hits = total = 0
    async with pool.acquire() as conn:
        proj = await db.get_project(conn, project)
        assert proj is not None
        for _, vector in queries[:50]:
            approx = await vector_search(conn, proj, vector, Filters(), 10, 100)  # type: ignore[arg-type]
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                exact = await vector_search(conn, proj, vector, Filters(), 10, 100)  # type: ignore[arg-type]
            truth = {h.id for h in exact}
            hits += len(truth & {h.id for h in approx})
            total += len(truth)
    return round(hits / total, 4)


async def run(database_url: str, corpus: Path, big: int, n_queries: int) -> dict[str, Any]:
    from codebase_mcp.migrate import upgrade_head

    await upgrade_head(database_url)
    pool = await db.create_pool(database_url, max_size=4, command_timeout=None)
    embedder = HashEmbedder()
    try:
        indexing = await index_corpus(pool, str(corpus), embedder)
        print(json.dumps(indexing, indent=2), file=sys.stderr, flush=True)
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
        queries = [(f"where is {w} implemented", embedder.vector(w)) for w in words]
        result: dict[str, Any] = {"indexing": indexing, "search": {}}
        build_seconds = await build_big(pool, big)
        for project in ("bench10k", "bench100k"):
            async with pool.acquire() as conn:
                count = await conn.fetchval(
                    "SELECT count(*) FROM chunks WHERE project_id = $1", project
                )
            entry: dict[str, Any] = {"chunks": count}
            for mode in ("vector", "hybrid"):
                await latency(pool, project, queries[:20], mode, None)  # warm up
                entry[mode] = await latency(pool, project, queries, mode, None)
                entry[f"{mode}_file_type_py"] = await latency(pool, project, queries, mode, "py")
            # The server's default: the full-text half gets 40 ms, then vector-only.
            entry["hybrid_budget_40ms"] = await latency(pool, project, queries, "hybrid", None, 40)
            entry["hnsw_recall@10_vs_exact"] = await hnsw_recall(pool, project, queries)
            result["search"][project] = entry
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
        report = asyncio.run(run(url, corpus, args.big, args.queries))
    import sqlalchemy as sa

    report["corpus"] = {"path": str(corpus), "package": f"sqlalchemy {sa.__version__}"}
    report["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": __import__("os").cpu_count(),
        "note": "shared VM, other jobs running; postgres in the project's image with "
        "fsync=off (test settings)",
    }
    report["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
