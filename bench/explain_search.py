#!/usr/bin/env python3
"""EXPLAIN (ANALYZE, BUFFERS) the full-text half of hybrid search, before and now.

    .venv/bin/python bench/explain_search.py --database-url URL [--project bench100k]
        [--symbol OnConflictClause] [--out FILE]

Needs a database where bench/bench_search.py (with ``--database-url``) left its
projects. The query is the benchmark's ``where is SYMBOL implemented``; "before"
is the previous statement (every match ranked, its similarity computed), "now"
the planned one (the rarest words select, ids ranked, then content and
similarity for the rows kept). Each runs once to warm the cache, then is
explained.
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
from codebase_mcp.server.search import (
    _COLUMNS,
    fetch_term_stats,
    plan_text_query,
    query_words,
    tsquery_text,
)

BEFORE = (
    f"SELECT {_COLUMNS}, -(embedding::vector({DIM}) <#> $1::vector({DIM})) AS similarity "
    "FROM chunks, to_tsquery('english', $4) q "
    f"WHERE project_id = $2 AND embedding_dim = {DIM} AND tsv @@ q "
    "ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT $3"
)
NOW = (
    "WITH top AS (SELECT id, ts_rank_cd(tsv, $5::text::tsquery) AS rank FROM chunks "
    f"WHERE project_id = $2 AND embedding_dim = {DIM} AND tsv @@ $4::text::tsquery "
    "ORDER BY rank DESC, id LIMIT $3) "
    f"SELECT {_COLUMNS}, -(embedding::vector({DIM}) <#> $1::vector({DIM})) AS similarity "
    "FROM top JOIN chunks USING (id) ORDER BY top.rank DESC, id"
)


async def explain(database_url: str, project: str, symbol: str) -> str:
    query = f"where is {symbol} implemented"
    vector = HashEmbedder().vector(symbol)
    pool = await db.create_pool(database_url, max_size=1, command_timeout=None)
    out = [f"query: {query!r}, project {project}, load {os.getloadavg()}"]
    try:
        async with pool.acquire() as conn:
            lexemes = await conn.fetchval(
                "SELECT array_agg(lexeme) FROM unnest(to_tsvector('english', $1))",
                " ".join(query_words(query)),
            )
            stats = await fetch_term_stats(conn)
            plan = plan_text_query(lexemes, stats, project, ServerSettings().text_search_max_cost)
            assert plan is not None, "the words are too common for this demonstration"
            out.append(
                f"word estimates: { {x: round(stats.estimate(x)) for x in lexemes} }\n"
                f"plan: {plan.kind}, match {plan.match!r}, rank {plan.rank!r}, "
                f"cost {plan.cost:.0f}"
            )
            runs = [
                ("before", BEFORE, (vector, project, 30, tsquery_text(query))),
                ("now", NOW, (vector, project, 30, plan.match, plan.rank)),
            ]
            for name, sql, args in runs:
                await conn.fetch(sql, *args)  # warm the cache
                async with conn.transaction():
                    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
                plan_text = "\n".join(r[0] for r in rows)
                out.append(f"--- {name}\n{sql}\n\n{plan_text}")
    finally:
        await pool.close()
    return "\n\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="EXPLAIN the full-text query, before and now")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--project", default="bench100k")
    parser.add_argument("--symbol", default="OnConflictClause")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = asyncio.run(explain(args.database_url, args.project, args.symbol))
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
