#!/usr/bin/env python3
"""A second clone of a real repository: seconds and chunks embedded, with the
embedding cache off (before) and on (after), in one run (issue 15).

    .venv/bin/python bench/bench_second_clone.py [--database-url postgresql://.../]
        [--repo cobra] [--rate 18]

The repository is one of eval/repos.toml (default cobra 1.8.1: the whole Go
repository, code, tests and docs), fetched and verified by eval's pins. It is
copied to three paths, as three clones: the first is indexed as project
``first`` (filling the cache); the second as project ``before`` with the cache
off (``CODEBASE_MCP_EMBEDDING_CACHE=false``: what every index cost until now);
the third as project ``after`` with the cache on. Each job runs through the
server's real MCP tools in-process (FastMCP's in-memory client, the real indexer,
worker and Postgres) against the Ollama-API stand-in of the integration tests,
as slow as the real all-MiniLM-L6-v2 on this 2-core VM (``--rate`` chunks per
second, one request at a time) and reporting a weights digest. Without
``--database-url`` a throwaway Postgres container (the project's image, named
cache-bench-pg-*) is started and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO))  # tests.integration.server.fake_embedder, tests.support
sys.path.insert(1, str(REPO / "bench"))

from servers import create_database

DIGEST = "5ec0c1d0" * 8  # the stand-in's "weights"


async def index_once(
    database_url: str, fake: Any, root: Path, project: str, cache: bool
) -> dict[str, Any]:
    from fastmcp import Client

    from codebase_mcp.server.app import ServerState, create_server
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.embeddings import OllamaEmbedder
    from codebase_mcp.settings import DatabaseSettings

    settings = ServerSettings(poll_interval=0.2, embedding_cache=cache)
    embedder = OllamaEmbedder(fake.url, fake.model, batch_size=settings.embed_batch_size)
    state = ServerState(settings, DatabaseSettings(url=database_url), embedder)  # type: ignore[arg-type]
    fake.reset()
    try:
        async with Client(create_server(state)) as client:
            started = time.perf_counter()
            job = (
                await client.call_tool(
                    "start_indexing_background", {"repo_path": str(root), "project_id": project}
                )
            ).structured_content
            assert isinstance(job, dict)
            while True:
                status = (
                    await client.call_tool("get_indexing_status", {"job_id": job["job_id"]})
                ).structured_content
                assert isinstance(status, dict)
                if status["status"] not in ("pending", "running"):
                    break
                await asyncio.sleep(0.1)
            seconds = time.perf_counter() - started
            listed = (await client.call_tool("list_projects", {})).structured_content
            assert isinstance(listed, dict)
    finally:
        await state.stop()
    assert status["status"] == "completed", status
    space = {p["project_id"]: p["space_bytes"] for p in listed["projects"]}
    return {
        "project": project,
        "embedding_cache": cache,
        "seconds": round(seconds, 2),
        "files_indexed": status["files_indexed"],
        "chunks_created": status["chunks_created"],
        "chunks_embedded": status["chunks_embedded"],
        "chunks_reused": status["chunks_reused"],
        "embedder_requests": fake.requests,
        "embedder_inputs": len(fake.inputs),
        "timings": status["timings"],
        "project_space_bytes": space.get(project),
        "cache_entries": listed["embedding_cache"]["entries"],
        "cache_space_bytes": listed["embedding_cache"]["space_bytes"],
    }


async def measure(database_url: str, source: Path, rate: float, work: Path) -> dict[str, Any]:
    from tests.integration.server.fake_embedder import running_fake_embedder

    from codebase_mcp.migrate import upgrade_head

    await upgrade_head(database_url)
    clones = {}
    for name in ("first", "before", "after"):
        clones[name] = work / f"clone-{name}"
        shutil.copytree(source, clones[name], symlinks=True)
    with running_fake_embedder(per_input_delay=1.0 / rate, digest=DIGEST) as fake:
        first = await index_once(database_url, fake, clones["first"], "first", cache=True)
        print("first", json.dumps(first), file=sys.stderr, flush=True)
        before = await index_once(database_url, fake, clones["before"], "before", cache=False)
        print("before", json.dumps(before), file=sys.stderr, flush=True)
        after = await index_once(database_url, fake, clones["after"], "after", cache=True)
    return {"first_clone": first, "before": before, "after": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", help="server URL without a database (ends in /); default: a container"
    )
    parser.add_argument("--repo", default="cobra", help="a name in eval/repos.toml")
    parser.add_argument("--rate", type=float, default=18.0, help="embedder chunks per second")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "second-clone.json"
    )
    args = parser.parse_args()

    from codebase_mcp.evaluation.repos import checkout, load_pins, select

    (pin,) = select(load_pins(REPO / "eval" / "repos.toml"), [args.repo], None)
    source = checkout(pin)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repository": f"{pin.name} {pin.version} ({pin.subdirectory})",
        "embedder": f"Ollama-API stand-in at {args.rate:g} chunks/s, one request at a time",
        "load_at_start": os.getloadavg(),
    }
    database = "cache_bench"
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        if args.database_url:
            base = args.database_url.rstrip("/")
            asyncio.run(create_database(base + "/postgres", database))
            report.update(asyncio.run(measure(f"{base}/{database}", source, args.rate, Path(tmp))))
        else:
            from tests.support.postgres import start_postgres

            with start_postgres(name=f"cache-bench-pg-{secrets.token_hex(4)}") as server:
                asyncio.run(create_database(server.admin_dsn, database))
                dsn = server.dsn(database)
                report.update(asyncio.run(measure(dsn, source, args.rate, Path(tmp))))
    before, after = report["before"], report["after"]
    report["second_clone"] = {
        "seconds_before": before["seconds"],
        "seconds_after": after["seconds"],
        "speedup": round(before["seconds"] / after["seconds"], 1) if after["seconds"] else None,
        "chunks_embedded_before": before["chunks_embedded"],
        "chunks_embedded_after": after["chunks_embedded"],
        "chunks_reused_after": after["chunks_reused"],
    }
    report["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["second_clone"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
