#!/usr/bin/env python3
"""Time to first answer: seconds from start_indexing_background until search_code
returns the right file, on the ~500-file repository of eval/repos.toml (role bench:
scrapy), before (main) and after, in one run.

    .venv/bin/python bench/bench_first_answer.py --database-url postgresql://.../ \\
        --before-tree /path/to/main/checkout [--rate 18] [--timeout 600] [--cpu-hogs 4]

Each side runs the server's real MCP tools in-process (FastMCP's in-memory
client, the real indexer, worker and Postgres: a database of its own on the same
server) against the Ollama-API stand-in of the integration tests, made as slow as
the real all-MiniLM-L6-v2 on this 2-core VM: ``--rate`` chunks per second (18,
measured through the MCP endpoint on three libraries, FIELD-NOTES), one request
at a time, a query waiting behind an indexing batch like it does today. Its
vectors are hashed words (not the model's), the same for both sides. Right after
queueing the job, every query of eval/queries/scrapy.json is asked again and
again (round robin) until its answer (10 results) holds one of its answer files;
the time of that answer is recorded. The side "before" runs this same script
with the old tree first on PYTHONPATH (its code, its migrations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO))  # tests.integration.server.fake_embedder (after PYTHONPATH)


async def measure(database_url: str, root: Path, rate: float, timeout: float) -> dict[str, Any]:
    from fastmcp import Client
    from tests.integration.server.fake_embedder import running_fake_embedder

    from codebase_mcp.migrate import upgrade_head
    from codebase_mcp.server.app import ServerState, create_server
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.embeddings import OllamaEmbedder
    from codebase_mcp.settings import DatabaseSettings

    queries = json.loads((REPO / "eval" / "queries" / "scrapy.json").read_text())["queries"]
    await upgrade_head(database_url)
    with running_fake_embedder(per_input_delay=1.0 / rate) as fake:
        settings = ServerSettings(poll_interval=0.2)
        embedder = OllamaEmbedder(fake.url, fake.model, batch_size=settings.embed_batch_size)
        state = ServerState(settings, DatabaseSettings(url=database_url), embedder)  # type: ignore[arg-type]
        found: dict[str, float] = {}
        answers: dict[str, dict[str, Any]] = {}
        searches = 0
        async with Client(create_server(state)) as client:
            started = time.perf_counter()
            job = (
                await client.call_tool("start_indexing_background", {"repo_path": str(root)})
            ).structured_content
            assert isinstance(job, dict)
            status: dict[str, Any] = {}
            while len(found) < len(queries) and time.perf_counter() - started < timeout:
                for q in queries:
                    if q["query"] in found:
                        continue
                    try:
                        result = await client.call_tool(
                            "search_code", {"query": q["query"], "limit": 10}
                        )
                    except Exception as exc:  # no project yet: "no project 'default'"
                        answers[q["query"]] = {"error": str(exc)[:120]}
                        await asyncio.sleep(0.2)
                        continue
                    searches += 1
                    answer = result.structured_content
                    assert isinstance(answer, dict)
                    files = [r["relative_path"] for r in answer["results"]]
                    if set(files) & set(q["files"]):
                        found[q["query"]] = round(time.perf_counter() - started, 2)
                        answers[q["query"]] = {
                            k: answer.get(k)
                            for k in ("mode", "lexical", "semantic_coverage", "fallback")
                            if k in answer
                        }
                status = (
                    await client.call_tool("get_indexing_status", {"job_id": job["job_id"]})
                ).structured_content or {}
            wall = round(time.perf_counter() - started, 2)
            await client.call_tool("cancel_indexing", {"job_id": job["job_id"]})
    times = list(found.values())
    return {
        "per_query_s": {q["query"]: found.get(q["query"]) for q in queries},
        "answers": answers,
        "found": f"{len(found)}/{len(queries)}",
        "first_right_answer_s": min(times) if times else None,
        "median_s": statistics.median(times) if len(times) == len(queries) else None,
        "all_found_s": max(times) if len(times) == len(queries) else None,
        "searches": searches,
        "wall_s": wall,
        "job_at_end": {
            k: status.get(k)
            for k in (
                "status",
                "phase",
                "files_total",
                "files_indexed",
                "chunks_created",
                "chunks_embedded",
                "chunks_to_embed",
                "lexical_progress",
                "semantic_progress",
                "progress",
            )
        },
    }


def side(args: argparse.Namespace, tree: Path | None, database: str) -> dict[str, Any]:
    """Run one side in a subprocess (its own code first on the path)."""
    url = args.database_url.rstrip("/") + "/" + database
    argv = [sys.executable, __file__, "--one", url, "--root", str(args.root),
            "--rate", str(args.rate), "--timeout", str(args.timeout)]  # fmt: skip
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree / "src")
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    if out.returncode:  # not CalledProcessError: its message would show the DSN's password
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"side {database} failed with exit code {out.returncode}")
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if tree is not None:
        report["tree"] = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    return report


HOG = "import os\nwhile True:\n    os.urandom(64)\n"  # a busy process, killed at the end


def start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` busy processes: a known load for both sides (``--cpu-hogs``)."""
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.kill()
        hog.wait()


def reset_databases(url: str, names: list[str]) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url.rstrip("/") + "/postgres")
        try:
            for name in names:
                await conn.execute(f"DROP DATABASE IF EXISTS {name}")
                await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(go())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="server URL without a database (ends in /)")
    parser.add_argument("--before-tree", type=Path, help="checkout of main")
    parser.add_argument("--root", type=Path, help="default: the scrapy checkout of eval/")
    parser.add_argument("--rate", type=float, default=18.0, help="embedder chunks per second")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--cpu-hogs",
        type=int,
        default=0,
        help="busy processes running during both sides: a known load on a shared machine",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "first-answer.json"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.root, args.rate, args.timeout))))
        return 0
    if args.root is None:
        from codebase_mcp.evaluation.repos import checkout, load_pins, select

        (pin,) = select(load_pins(REPO / "eval" / "repos.toml"), None, "bench")
        args.root = checkout(pin)
    reset_databases(args.database_url, ["ttfa_before", "ttfa_after"])
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repository": str(args.root),
        "embedder": f"Ollama-API stand-in at {args.rate:g} chunks/s, one request at a time",
        "cpu_hogs": args.cpu_hogs,
        "load_at_start": os.getloadavg(),
    }
    hogs = start_hogs(args.cpu_hogs)
    try:
        if args.before_tree:
            report["before"] = side(args, args.before_tree, "ttfa_before")
            print("before", json.dumps(report["before"]), file=sys.stderr, flush=True)
        report["after"] = side(args, None, "ttfa_after")
        report["load_at_end"] = os.getloadavg()
    finally:
        stop_hogs(hogs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
