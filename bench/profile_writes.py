#!/usr/bin/env python3
"""Where does writing chunks go? COPY the same rows into scratch tables with one
index set each, and time CREATE INDEX over them.

    .venv/bin/python bench/profile_writes.py --database-url URL [--project bench10k]
        [--out bench/results/search-write-profile.json]

Needs a database where bench/bench_search.py (with ``--database-url``) left its
projects. The rows are copied in batches of 300 in one transaction each, as the
indexer writes them; each variant starts from an empty table like ``chunks``.
Scratch tables are dropped afterwards.
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

from codebase_mcp.server import db

HNSW = "USING hnsw ((embedding::vector(384)) vector_ip_ops)"
BTREES = ["(file_id)", "(project_id)"]
# name -> (indexes, keep the generated tsvector column)
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "heap_only_no_tsvector": ([], False),
    "heap_with_generated_tsvector": ([], True),
    "+btrees_and_primary_key": ([*BTREES, "PRIMARY KEY"], True),
    "+gin_tsv": (["USING gin (tsv)"], True),
    "+gin_tsv_fastupdate_off": (["USING gin (tsv) WITH (fastupdate = off)"], True),
    "+hnsw": ([f"{HNSW} WHERE embedding_dim = 384"], True),
    "+hnsw_halfvec": (
        ["USING hnsw ((embedding::halfvec(384)) halfvec_ip_ops) WHERE embedding_dim = 384"],
        True,
    ),
    "+hnsw_ef_construction_32": (
        [f"{HNSW} WITH (ef_construction = 32) WHERE embedding_dim = 384"],
        True,
    ),
    "all_indexes_as_chunks": (
        [*BTREES, "PRIMARY KEY", "USING gin (tsv)", f"{HNSW} WHERE embedding_dim = 384"],
        True,
    ),
}


def index_sql(table: str, spec: str) -> str:
    if spec == "PRIMARY KEY":
        return f"ALTER TABLE {table} ADD PRIMARY KEY (id)"
    return f"CREATE INDEX ON {table} {spec}"


async def scratch_table(conn: Any, table: str, generated: bool) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {table}")
    if generated:
        await conn.execute(
            f"CREATE TABLE {table} (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED)"
        )
    else:
        await conn.execute(f"CREATE TABLE {table} (LIKE chunks INCLUDING DEFAULTS)")
        await conn.execute(f"ALTER TABLE {table} DROP COLUMN tsv")


async def run(database_url: str, project: str) -> dict[str, Any]:
    pool = await db.create_pool(database_url, max_size=1, command_timeout=None)
    result: dict[str, Any] = {"load_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {', '.join(db.CHUNK_COLUMNS)} FROM chunks "
                "WHERE project_id = $1 ORDER BY id",
                project,
            )
            records = [tuple(r) for r in rows]
            result["rows"] = len(records)
            copies: dict[str, Any] = {}
            for name, (indexes, generated) in VARIANTS.items():
                table = "profile_writes_scratch"
                await scratch_table(conn, table, generated)
                for spec in indexes:
                    await conn.execute(index_sql(table, spec))
                started = time.perf_counter()
                for i in range(0, len(records), 300):
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            table, columns=db.CHUNK_COLUMNS, records=records[i : i + 300]
                        )
                seconds = time.perf_counter() - started
                copies[name] = {
                    "copy_s": round(seconds, 2),
                    "rows_per_s": round(len(records) / seconds),
                    "ms_per_row": round(1000 * seconds / len(records), 3),
                }
                print(name, copies[name], file=sys.stderr, flush=True)
            result["copy_into_empty_table"] = copies
            builds: dict[str, Any] = {}
            for memory in ("64MB", "256MB"):
                await conn.execute(f"SET maintenance_work_mem = '{memory}'")
                await conn.execute("SET max_parallel_maintenance_workers = 0")
                await conn.execute("DROP INDEX IF EXISTS profile_writes_hnsw")
                started = time.perf_counter()
                await conn.execute(
                    f"CREATE INDEX profile_writes_hnsw ON {table} {HNSW} WHERE embedding_dim = 384"
                )
                seconds = time.perf_counter() - started
                builds[f"maintenance_work_mem_{memory}"] = {
                    "create_index_s": round(seconds, 2),
                    "ms_per_row": round(1000 * seconds / len(records), 3),
                }
                print(memory, builds[f"maintenance_work_mem_{memory}"], file=sys.stderr)
            result["hnsw_create_index_serial"] = builds
            await conn.execute(f"DROP TABLE {table}")
    finally:
        await pool.close()
    result["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="where the time of writing chunks goes")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--project", default="bench10k")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "search-write-profile.json"
    )
    args = parser.parse_args()
    report = asyncio.run(run(args.database_url, args.project))
    report["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
