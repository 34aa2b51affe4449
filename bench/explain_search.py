#!/usr/bin/env python3
"""EXPLAIN (ANALYZE, BUFFERS) the BM25 half of hybrid search, before and after.

    .venv/bin/python bench/explain_search.py --database-url URL [--project bench100k]
        [--symbol OnConflictClause] [--file-type py] [--out FILE]

Needs a database where bench/bench_search.py (with ``--database-url``) left its
projects. The query is the benchmark's ``where is SYMBOL implemented`` with its
vector; "before" is :func:`codebase_mcp.server.db.bm25_sql` (every posting of the
rarest terms within ``TEXT_SEARCH_MAX_COST`` selects, the others add by point
lookups), "after" :func:`codebase_mcp.server.db.bm25_capped_sql` (each term's
``TEXT_SEARCH_PER_TERM`` best postings from the impact index, the candidates
rescored exactly). With ``--file-type``: the filtered statements, "before" the
join of every posting to its chunk (``bm25_sql`` with ``filtered``), "after"
:func:`codebase_mcp.server.db.bm25_statement` (the filter tested on the best
candidates first). Each statement runs once to warm the cache, then is explained.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_search import DIM, HashEmbedder

from codebase_mcp.server import db
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.search import QueryTerm, plan_lexical, query_text


async def explain(
    database_url: str, project_id: str, symbol: str, file_type: str | None = None
) -> str:
    query = f"where is {symbol} implemented"
    vector = HashEmbedder().vector(symbol)
    settings = ServerSettings()
    pool = await db.create_pool(database_url, max_size=1, command_timeout=None)
    out = [f"query: {query!r}, project {project_id}, file_type {file_type}, load {os.getloadavg()}"]
    try:
        async with pool.acquire() as conn:
            stats = await db.lexical_stats(conn, project_id, query_text(query))
            if stats is None or not stats.docs:
                raise SystemExit(f"no lexical index for {project_id}")
            avgdl = max(stats.length / stats.docs, 1.0)
            found = [(t.term_id, t.df) for t in stats.terms]
            before = plan_lexical(found, stats.docs, settings.text_search_max_cost)
            after = plan_lexical(found, stats.docs, 0)
            if before is None or after is None:
                raise SystemExit("no word of the query is indexed")
            out.append(
                f"terms (df): {[t.df for t in after.select]}; before: {len(before.select)} "
                f"select ({before.cost} postings), {len(before.extra)} add; after: each "
                f"term's best {settings.text_search_per_term} postings"
            )

            def ids(terms: list[QueryTerm]) -> list[int]:
                return [t.term_id for t in terms]

            def idfs(terms: list[QueryTerm]) -> list[float]:
                return [t.idf for t in terms]

            runs = [
                (
                    "before",
                    db.bm25_sql(DIM, "", False),
                    (ids(before.select), idfs(before.select), 1.2, 0.4, avgdl, 100,
                     ids(before.extra), idfs(before.extra), vector, 30),
                ),
                (
                    "after",
                    db.bm25_capped_sql(DIM),
                    (ids(after.select), idfs(after.select), 1.2, 0.4, avgdl, 100,
                     settings.text_search_per_term, vector, 30),
                ),
            ]  # fmt: skip
            if file_type:
                filters = db.Filters(file_type=file_type)
                where, fparams = db.filter_sql(filters, 11, alias="c.")
                now, more = db.bm25_statement(DIM, filters, 100, project_id)
                common = runs[0][2]
                out.append(
                    f"file_type {file_type}: before, every posting of the {before.cost} joined "
                    "to its chunk; after, the filter tested on the best candidates first"
                )
                runs = [
                    ("before", db.bm25_sql(DIM, where, True), (*common, *fparams)),
                    ("after", now, (*common, *more)),
                ]
            for name, sql, args in runs:
                async with conn.transaction():
                    await db.set_lexical_settings(conn, 0)
                    await conn.fetch(sql, *args)  # warm the cache
                    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
                plan_text = "\n".join(r[0] for r in rows)
                out.append(f"--- {name}\n{sql}\n\n{plan_text}")
    finally:
        await pool.close()
    return "\n\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="EXPLAIN the BM25 statement, before and after")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--project", default="bench100k")
    parser.add_argument("--symbol", default="OnConflictClause")
    parser.add_argument("--file-type", help="explain the filtered statements instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = asyncio.run(explain(args.database_url, args.project, args.symbol, args.file_type))
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
