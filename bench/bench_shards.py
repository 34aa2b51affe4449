#!/usr/bin/env python3
"""Scale-out: one repository indexed by 1 replica vs 2 replicas sharing one Postgres,
each replica with its own embedder, in one run (issue 15, "scale-out").

    .venv/bin/python bench/bench_shards.py [--repo cobra] [--rate 18] [--shard-chunks 256]

A throwaway Postgres container (the project's image, named shards-bench-pg-*)
holds one database per side. Each replica is a job ``Worker`` with a pool of
its own (as a separate server process would have) and its own Ollama-API
stand-in at ``--rate`` chunks/s, one request at a time (the embedders are
separate machines: their time is a sleep in their own thread, not this host's
CPU). The job is queued in the database like ``start_indexing_background``
does; the side ends when the job is completed. Recorded per side: wall time,
the job's timings, and the shard split per worker (shards, chunks embedded)
with what each embedder received; the host's load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO))
sys.path.insert(1, str(REPO / "bench"))

from servers import create_database


async def index_with(dsn: str, source: Path, replicas: int, rate: float, shard_chunks: int) -> Any:
    from tests.integration.server.fake_embedder import running_fake_embedder
    from tests.support.workers import stop_workers

    from codebase_mcp.migrate import upgrade_head
    from codebase_mcp.server import db
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.embeddings import OllamaEmbedder
    from codebase_mcp.server.indexer import DIMENSION_PROBE
    from codebase_mcp.server.jobs import Worker

    await upgrade_head(dsn)
    settings = ServerSettings(poll_interval=0.5, shard_chunks=shard_chunks)
    with contextlib.ExitStack() as stack:
        fakes = [
            stack.enter_context(running_fake_embedder(per_input_delay=1.0 / rate))
            for _ in range(replicas)
        ]
        pools = [await db.create_pool(dsn, max_size=4) for _ in range(replicas)]
        embedders = [
            OllamaEmbedder(f.url, f.model, batch_size=settings.embed_batch_size) for f in fakes
        ]
        names = [f"replica-{n + 1}" for n in range(replicas)]
        workers = [
            Worker(pool, embedder, settings, worker_id=name)
            for pool, embedder, name in zip(pools, embedders, names, strict=True)
        ]
        async with pools[0].acquire() as conn:
            job_id = await db.create_job(
                conn,
                project_id="bench",
                repo_path=str(source),
                root_path=str(source),
                force_reindex=False,
                embedding_model=fakes[0].model,
            )
        started = time.perf_counter()
        tasks = [asyncio.create_task(w.run_forever()) for w in workers]
        try:
            while True:
                await asyncio.sleep(0.2)
                async with pools[0].acquire() as conn:
                    job = await db.get_job(conn, job_id)
                assert job is not None
                if job["status"] not in ("pending", "running"):
                    break
            wall = time.perf_counter() - started
            async with pools[0].acquire() as conn:
                summary = await db.shard_summary(conn, job_id)
        finally:
            await stop_workers(tasks, embedders, pools)
        received = {
            name: len([t for t in fake.inputs if t != DIMENSION_PROBE])
            for name, fake in zip(names, fakes, strict=True)
        }
    return {
        "replicas": replicas,
        "status": job["status"],
        "error": job["error"],
        "wall_s": round(wall, 2),
        "chunks_created": job["chunks_created"],
        "chunks_embedded": job["chunks_embedded"],
        "timings": job["timings"],
        "shards_total": summary.total,
        "shards_done": summary.done,
        "per_replica": {
            w.worker_id: {
                "shards_done": w.shards_done,
                "chunks_embedded": w.chunks_embedded,
                "embedder_received": received.get(w.worker_id, 0),
                "owner": w.worker_id == job["worker_id"],
            }
            for w in summary.workers
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", default="cobra", help="a name in eval/repos.toml")
    parser.add_argument("--rate", type=float, default=18.0, help="chunks/s of each embedder")
    parser.add_argument("--shard-chunks", type=int, default=128)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "shards.json")
    args = parser.parse_args()

    from tests.support.postgres import start_postgres

    from codebase_mcp.evaluation.repos import checkout, load_pins, select

    (pin,) = select(load_pins(REPO / "eval" / "repos.toml"), [args.repo], None)
    source = checkout(pin)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repository": f"{pin.name} {pin.version} ({pin.subdirectory})",
        "embedder": f"Ollama-API stand-in at {args.rate:g} chunks/s per replica, "
        "one request at a time",
        "shard_chunks": args.shard_chunks,
        "cpu_count": os.cpu_count(),
        "load_at_start": os.getloadavg(),
    }
    with start_postgres(name=f"shards-bench-pg-{secrets.token_hex(4)}") as server:
        for replicas in (1, 2):
            name = f"replicas_{replicas}"
            asyncio.run(create_database(server.admin_dsn, name))
            side = asyncio.run(
                index_with(server.dsn(name), source, replicas, args.rate, args.shard_chunks)
            )
            side["load_after"] = os.getloadavg()
            report[f"{replicas}_replica" + ("s" if replicas > 1 else "")] = side
            print(json.dumps(side), file=sys.stderr, flush=True)
    one, two = report["1_replica"], report["2_replicas"]
    report["summary"] = {
        "wall_s_1_replica": one["wall_s"],
        "wall_s_2_replicas": two["wall_s"],
        "speedup": round(one["wall_s"] / two["wall_s"], 2) if two["wall_s"] else None,
        "embed_s_1_replica": one["timings"].get("embed_s"),
        "split_2_replicas": {
            k: (v["shards_done"], v["chunks_embedded"]) for k, v in two["per_replica"].items()
        },
    }
    report["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
