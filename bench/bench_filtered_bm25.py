#!/usr/bin/env python3
"""The filtered BM25 statement against the join it replaced, on the same data, per filter.

    .venv/bin/python bench/bench_filtered_bm25.py --database-url URL
        [--project bench100k] [--queries 200] [--out bench/results/FILE.json]

Needs a database where bench/bench_search.py (with ``--database-url``) left its
projects. For each filter (file types and directories from common to rare) and
each of bench_search's queries ("where is SYMBOL implemented", the same choice),
it runs the join (:func:`codebase_mcp.server.db.bm25_sql` with ``filtered``: every
posting joined to its chunk) and the statement searches run now
(:func:`codebase_mcp.server.db.bm25_statement`), one after the other on one
connection, 100 candidates, limit 10, and records p50/p95 of each and how their
answers compare: the same ids in the same order with the same scores (to 1e-9),
or differing only among hits whose scores are equal to 1e-9 (the join may add a
chunk's terms in another order, which moves the last bit of a sum), or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_search import DIM, HashEmbedder, load, percentiles, query_symbols

from codebase_mcp.server import db
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.db import Filters
from codebase_mcp.server.search import plan_lexical, query_text

FILTERS = {
    "file_type=py": Filters(file_type="py"),
    "directory=orm": Filters(rel_prefix="orm"),
    "directory=engine": Filters(rel_prefix="engine"),
    "directory=pool": Filters(rel_prefix="pool"),
    "file_type=txt": Filters(file_type="txt"),
}


def compare(want: list[tuple[int, float]], got: list[tuple[int, float]]) -> str:
    if [i for i, _ in want] == [i for i, _ in got] and all(
        abs(a - b) <= 1e-9 * abs(a) for (_, a), (_, b) in zip(want, got, strict=True)
    ):
        return "same"
    if [round(s, 9) for _, s in want] == [round(s, 9) for _, s in got]:
        return "ties_swapped"
    return "different"


async def run(url: str, project: str, n_queries: int) -> dict[str, Any]:
    pool = await db.create_pool(url, max_size=1, command_timeout=None)
    embedder = HashEmbedder()
    max_cost = ServerSettings().text_search_max_cost
    out: dict[str, Any] = {"project": project, "load_at_start": load(), "filters": {}}
    try:
        async with pool.acquire() as conn:
            words = await query_symbols(conn, n_queries)
            out["chunks"] = await conn.fetchval(
                "SELECT count(*) FROM chunks WHERE project_id = $1", project
            )
            for name, filters in FILTERS.items():
                where, fparams = db.filter_sql(filters, 11, alias="c.")
                joined = db.bm25_sql(DIM, where, True)
                counted, cparams = db.filter_sql(filters, 2, alias="c.")
                passing = await conn.fetchval(
                    f"SELECT count(*) FROM chunks c WHERE project_id = $1{counted}",
                    project,
                    *cparams,
                )
                times: dict[str, list[float]] = {"join": [], "now": []}
                answers: dict[str, int] = {"same": 0, "ties_swapped": 0, "different": 0}
                for word in words:
                    text = f"where is {word} implemented"
                    stats = await db.lexical_stats(conn, project, query_text(text))
                    if stats is None or not stats.docs:
                        raise SystemExit(f"no lexical index for {project}")
                    plan = plan_lexical(
                        [(t.term_id, t.df) for t in stats.terms], stats.docs, max_cost
                    )
                    if plan is None:
                        continue
                    args = (
                        [t.term_id for t in plan.select], [t.idf for t in plan.select], 1.2, 0.4,
                        max(stats.length / stats.docs, 1.0), 100,
                        [t.term_id for t in plan.extra], [t.idf for t in plan.extra],
                        embedder.vector(word), 10,
                    )  # fmt: skip
                    now_sql, more = db.bm25_statement(DIM, filters, 100, project)
                    rows: dict[str, list[tuple[int, float]]] = {}
                    for side, sql, extra in (("join", joined, fparams), ("now", now_sql, more)):
                        async with conn.transaction():
                            await db.set_lexical_settings(conn, 0)
                            started = time.perf_counter()
                            found = await conn.fetch(sql, *args, *extra)
                            times[side].append((time.perf_counter() - started) * 1000)
                        rows[side] = [(r["id"], float(r["bm25"])) for r in found]
                    answers[compare(rows["join"], rows["now"])] += 1
                out["filters"][name] = {
                    "chunks_passing": int(passing),
                    "join": percentiles(times["join"]),
                    "now": percentiles(times["now"]),
                    "answers": answers,
                    "load_after": load(),
                }
                print(name, json.dumps(out["filters"][name]), file=sys.stderr, flush=True)
    finally:
        await pool.close()
    out["load_at_end"] = load()
    out["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out["machine"] = {"cpus": os.cpu_count(), "note": "shared VM, other jobs running"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="filtered BM25: the join against now")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--project", default="bench100k")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args.database_url, args.project, args.queries))
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
