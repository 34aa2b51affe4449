#!/usr/bin/env python3
"""Search under load through MCP: N concurrent MCP clients search while a job embeds
(issue 12), before and after, in one run.

    .venv/bin/python bench/bench_search_load.py [--database-url postgresql://.../]
        [--before-src /tmp/before/src | --before-commit eddd6cd]
        [--clients 16] [--queries 25] [--searched click] [--background scrapy]

Everything is real and reached as a user reaches it: Postgres (``--database-url``,
or a throwaway container of the project's image named ``searchload-pg-*``), the
project's own ``embedder serve`` (all-MiniLM-L6-v2, over HTTP), and
``codebase-mcp serve --transport http`` as a process; the clients are
``fastmcp.Client`` sessions over streamable HTTP.

1. The ``--searched`` repository of eval/repos.toml is indexed once (project
   ``load``), with this checkout's embedder, until completed.
2. Per side, a fresh embedder and server: a second job indexes ``--background``
   (project ``bg-SIDE``, embedding cache off so it really embeds); once it embeds,
   ``--clients`` sessions each run ``--queries`` ``search_code`` calls one after the
   other (the queries of eval/queries/SEARCHED.json, each client starting at its
   own offset): latency p50/p95/max, errors, searches/s, how many answers were a
   lexical fallback, the server's own split (``embedding_ms``: waiting for the
   query's vector; ``search_ms``: pool and SQL; the rest: MCP and HTTP), and the
   job's chunks embedded meanwhile. Then the job is cancelled. The same clients
   also run once with no job ("alone": the floor on this machine).

Sides: **before**: the embedder's code from ``--before-src`` (default: ``src/`` of
``--before-commit`` eddd6cd, main before the query lane: one queue, one inference
thread, a query waits behind the index batch running) with this server; **after**:
this checkout (query lane, index slices that yield to queries) and its server
settings. Load averages at start and end of each phase are recorded. Noisy on a
shared machine: compare the sides within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from servers import archive_src, database_dsn, embedder, mcp_server, postgres

MODEL = "all-minilm"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 1)


def summary(calls: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    ok = [c for c in calls if "error" not in c]
    ms = [c["ms"] for c in ok]
    emb = [c["embedding_ms"] for c in ok if c.get("embedding_ms") is not None]
    sql = [c["search_ms"] for c in ok if c.get("search_ms") is not None]
    rest = [
        c["ms"] - c["embedding_ms"] - c["search_ms"]
        for c in ok
        if c.get("embedding_ms") is not None and c.get("search_ms") is not None
    ]
    return {
        "searches": len(calls),
        "errors": len(calls) - len(ok),
        "error_samples": sorted({c["error"] for c in calls if "error" in c})[:3],
        "p50_ms": percentile(ms, 0.5),
        "p95_ms": percentile(ms, 0.95),
        "max_ms": round(max(ms), 1) if ms else None,
        "searches_per_s": round(len(ok) / wall, 2) if wall else None,
        "lexical_fallback": sum(1 for c in ok if c.get("fallback")),
        "fallback_reasons": sorted({c["fallback"].split(":")[0] for c in ok if c.get("fallback")}),
        "modes": {m: sum(1 for c in ok if c.get("mode") == m) for m in {c.get("mode") for c in ok}},
        "server_embedding_ms": {"p50": percentile(emb, 0.5), "p95": percentile(emb, 0.95)},
        "server_search_ms": {"p50": percentile(sql, 0.5), "p95": percentile(sql, 0.95)},
        "mcp_overhead_ms": {"p50": percentile(rest, 0.5), "p95": percentile(rest, 0.95)},
        "wall_s": round(wall, 2),
    }


async def call(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    answer = result.structured_content
    assert isinstance(answer, dict), answer
    return answer


async def wait_job(client: Any, job_id: str, until: str, timeout: float) -> dict[str, Any]:
    """Poll the job until it has ended (``until="done"``) or embeds (``"embedding"``)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await call(client, "get_indexing_status", {"job_id": job_id})
        if status["status"] not in ("pending", "running"):
            return status
        if until == "embedding" and (status.get("chunks_embedded") or 0) > 0:
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} not {until} after {timeout:g} s: {status}")
        await asyncio.sleep(0.3)


async def index_searched(url: str, root: Path) -> dict[str, Any]:
    from fastmcp import Client

    async with Client(url, timeout=600) as client:
        started = time.perf_counter()
        job = await call(
            client, "start_indexing_background", {"repo_path": str(root), "project_id": "load"}
        )
        status = await wait_job(client, job["job_id"], "done", 1800)
    assert status["status"] == "completed", status
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "files": status["files_indexed"],
        "chunks": status["chunks_created"],
    }


async def run_clients(url: str, queries: list[str], clients: int, per_client: int) -> Any:
    from fastmcp import Client

    calls: list[dict[str, Any]] = []

    async def one(index: int) -> None:
        async with Client(url, timeout=60) as client:
            for n in range(per_client):
                query = queries[(index * 7 + n) % len(queries)]
                started = time.perf_counter()
                try:
                    answer = await call(
                        client, "search_code", {"query": query, "project_id": "load", "limit": 10}
                    )
                except Exception as exc:  # recorded: the benchmark counts errors
                    calls.append({"ms": 0.0, "error": f"{type(exc).__name__}: {exc}"[:160]})
                    continue
                calls.append(
                    {
                        "ms": (time.perf_counter() - started) * 1000,
                        "embedding_ms": answer.get("embedding_ms"),
                        "search_ms": answer.get("search_ms"),
                        "fallback": answer.get("fallback"),
                        "mode": answer.get("mode"),
                    }
                )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return calls, time.perf_counter() - started


async def side_phases(
    url: str, background: Path, name: str, queries: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    from fastmcp import Client

    out: dict[str, Any] = {"load_at_start": os.getloadavg()}
    calls, wall = await run_clients(url, queries, args.clients, args.queries)
    out["alone"] = summary(calls, wall)
    async with Client(url, timeout=120) as client:
        job = await call(
            client,
            "start_indexing_background",
            {"repo_path": str(background), "project_id": f"bg-{name}"},
        )
        first = await wait_job(client, job["job_id"], "embedding", 900)
        out["load_before_searches"] = os.getloadavg()
        calls, wall = await run_clients(url, queries, args.clients, args.queries)
        last = await call(client, "get_indexing_status", {"job_id": job["job_id"]})
        out["under_indexing"] = summary(calls, wall)
        embedded = (last.get("chunks_embedded") or 0) - (first.get("chunks_embedded") or 0)
        out["under_indexing"]["job_chunks_embedded_meanwhile"] = embedded
        out["under_indexing"]["job_chunks_per_s"] = round(embedded / wall, 2) if wall else None
        out["under_indexing"]["job_status_at_end"] = last["status"]
        await call(client, "cancel_indexing", {"job_id": job["job_id"]})
    out["load_at_end"] = os.getloadavg()
    return out


def serve_env(dsn: str, embedder_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "EMBEDDER_URL": embedder_url,
        "EMBEDDER_MODEL": MODEL,
        "CODEBASE_MCP_POLL_INTERVAL": "0.2",
        "CODEBASE_MCP_EMBEDDING_CACHE": "false",
        **extra,
    }


def parse_env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"setting {pair!r}: expected NAME=VALUE")
        out[key] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="server URL without a database; default: container")
    parser.add_argument("--before-src", type=Path, help="src/ of the embedder before the lanes")
    parser.add_argument("--before-commit", default="eddd6cd", help="used without --before-src")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--queries", type=int, default=25, help="searches per client")
    parser.add_argument("--searched", default="click", help="eval repository searched")
    parser.add_argument("--background", default="scrapy", help="eval repository indexed meanwhile")
    parser.add_argument(
        "--after-env", action="append", default=[], metavar="NAME=VALUE",
        help="a server or embedder setting of the after side only, e.g. "
        "CODEBASE_MCP_QUERY_EMBED_TIMEOUT=0.25",
    )  # fmt: skip
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME:NAME=VALUE,...",
        help="one more side with this checkout and these settings, e.g. "
        "fallback250:CODEBASE_MCP_QUERY_EMBED_TIMEOUT=0.25",
    )  # fmt: skip
    parser.add_argument("--sides", default="before,after", help="which of before,after to run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "search-load.json")
    args = parser.parse_args()

    from codebase_mcp.evaluation.repos import checkout, load_pins, select

    pins = load_pins(REPO / "eval" / "repos.toml")
    (searched,) = select(pins, [args.searched], None)
    (background,) = select(pins, [args.background], None)
    searched_root, background_root = checkout(searched), checkout(background)
    queries = [
        q["query"]
        for q in json.loads((REPO / "eval" / "queries" / f"{args.searched}.json").read_text())[
            "queries"
        ]
    ]
    after_env = parse_env(args.after_env)
    report: dict[str, Any] = {
        "benchmark": "bench/bench_search_load.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "what": f"{args.clients} fastmcp.Client sessions x {args.queries} search_code over HTTP "
        f"(codebase-mcp serve, real Postgres, real embedder serve all-MiniLM-L6-v2) on "
        f"{searched.name} {searched.version}, while a job indexes {background.name} "
        f"{background.version}",
        "goal": "p95 < 300 ms, 0 errors with 16 clients",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "load_at_start": os.getloadavg(),
        "after_env": after_env,
    }
    with tempfile.TemporaryDirectory(prefix="searchload-") as tmp:
        work = Path(tmp)
        before_src = args.before_src or archive_src(args.before_commit, work / "before")
        report["before"] = {"embedder_src": f"{before_src} ({args.before_commit})"}
        report["after"] = {"embedder_src": "this checkout"}
        with postgres(args.database_url, "searchload") as server:
            from codebase_mcp.migrate import upgrade_head

            dsn = database_dsn(server, "searchload_bench")
            asyncio.run(upgrade_head(dsn))
            with (
                embedder(REPO / "src") as emb,
                mcp_server(serve_env(dsn, emb, {}), work / "index.log") as url,
            ):
                report["searched"] = asyncio.run(index_searched(url, searched_root))
            print("indexed", json.dumps(report["searched"]), file=sys.stderr, flush=True)
            sides: list[tuple[str, Path, dict[str, str]]] = [
                (name, before_src if name == "before" else REPO / "src",
                 after_env if name == "after" else {})
                for name in args.sides.split(",")
            ]  # fmt: skip
            for variant in args.variant:
                name, _, pairs = variant.partition(":")
                sides.append((name, REPO / "src", parse_env(pairs.split(",") if pairs else [])))
                report[name] = {"embedder_src": "this checkout", "env": sides[-1][2]}
            for name, src, extra in sides:
                embedder_env = {k: v for k, v in extra.items() if k.startswith("EMBEDDER_")}
                server_env = {k: v for k, v in extra.items() if not k.startswith("EMBEDDER_")}
                with (
                    embedder(src, embedder_env) as emb,
                    mcp_server(serve_env(dsn, emb, server_env), work / f"{name}.log") as url,
                ):
                    report[name].update(
                        asyncio.run(side_phases(url, background_root, name, queries, args))
                    )
                print(name, json.dumps(report[name]), file=sys.stderr, flush=True)
    report["summary"] = {
        name: {
            k: report[name]["under_indexing"][k]
            for k in ("p50_ms", "p95_ms", "max_ms", "errors", "searches_per_s", "lexical_fallback")
        }
        for name, _, _ in sides
    }
    report["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
