#!/usr/bin/env python3
"""Search under load through MCP: N concurrent MCP clients search while a job embeds
(issue 12), before and after, in one run.

    .venv/bin/python bench/bench_search_load.py [--database-url postgresql://.../]
        [--before-commit 6e9836d | --before-tree DIR] [--clients 16] [--queries 25]
        [--unique] [--rounds 1] [--searched click] [--background scrapy]

Everything is real and reached as a user reaches it: Postgres (``--database-url``,
or a throwaway container of the project's image named ``searchload-pg-*``), the
project's own ``embedder serve`` (all-MiniLM-L6-v2, over HTTP), and
``codebase-mcp serve --transport http`` as a process; the clients are
``fastmcp.Client`` sessions over streamable HTTP.

Each side is a whole tree (``src/`` and ``migrations/``): **before** is
``--before-tree`` or ``--before-commit`` (unpacked with ``git archive``), **after**
this checkout (with ``--after-env`` settings); ``--variant`` adds sides of this
checkout with other settings. Per side, in a database of its own (migrated by that
side's migrations), with that side's embedder and server:

1. The ``--searched`` repository of eval/repos.toml is indexed (project ``load``)
   until completed, then the database is vacuumed and analysed (so autovacuum does
   not land in a phase of one side only).
2. ``--clients`` sessions each run ``--queries`` ``search_code`` calls one after
   the other with no job running ("alone": the floor on this machine), then again
   while a second job indexes ``--background`` (project ``bg-SIDE-ROUND``, embedding
   cache off so it really embeds). Queries: those of eval/queries/SEARCHED.json,
   each client starting at its own offset (so texts repeat across clients), or with
   ``--unique`` the queries of every eval set, each text searched once in the run
   (nothing a cache of query vectors could reuse; both phases need 2 x clients x
   queries x rounds different texts).
   With ``--rounds N`` the two phases run N times (a new background job each
   time, cancelled and waited for after its phase); each round's figures are
   recorded, and ``alone`` / ``under_indexing`` pool every round's searches.
   Recorded: latency p50/p95/max, errors, searches/s, lexical fallbacks, the
   server's own split (``embedding_ms``: waiting for the query's vector;
   ``search_ms``: pool and SQL; the rest: MCP and HTTP), the job's chunks embedded
   meanwhile, and where the cores went (bench/cpu_account.py: core-ms per search
   for server, embedder, Postgres, the benchmark's own clients, and the rest).

Load averages at start and end of each phase are recorded. Noisy on a shared
machine: compare the sides within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from cpu_account import core_seconds, per_search_ms, snapshot
from servers import archive_tree, database_dsn, embedder, mcp_server, postgres

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


def query_for(queries: list[str], client: int, n: int, per_client: int, unique: bool) -> str:
    """The ``n``-th query of ``client``: every client at its own offset of the set
    (texts repeat across clients), or with ``unique`` each text once in all."""
    if unique:
        return queries[client * per_client + n]
    return queries[(client * 7 + n) % len(queries)]


async def run_clients(
    url: str, queries: list[str], clients: int, per_client: int, unique: bool = False
) -> Any:
    from fastmcp import Client

    calls: list[dict[str, Any]] = []

    async def one(index: int) -> None:
        async with Client(url, timeout=60) as client:
            for n in range(per_client):
                query = query_for(queries, index, n, per_client, unique)
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

    before = snapshot()
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return calls, time.perf_counter() - started, core_seconds(before, snapshot())


def with_cpu(result: dict[str, Any], cpu: dict[str, float], wall: float) -> dict[str, Any]:
    """The phase's summary plus where the cores went (bench/cpu_account.py)."""
    kinds = ("server", "embedder", "postgres", "bench_clients", "other")
    result["cpu_core_s"] = cpu
    result["cpu_ms_per_search"] = per_search_ms(cpu, result["searches"] - result["errors"], kinds)
    capacity = wall * (os.cpu_count() or 1)
    result["cpu_busy_share"] = round(sum(cpu.values()) / capacity, 3) if capacity else None
    return result


async def vectors_of(dsn: str, project_id: str) -> int:
    """Chunks of ``project_id`` with a vector (the job's status counts them per
    finished shard: too coarse for a phase of a few seconds)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM chunks WHERE project_id = $1 AND embedding IS NOT NULL",
                project_id,
            )
        )
    finally:
        await conn.close()


@dataclass
class Pooled:
    """One phase's searches over every round: the calls, the wall time and the cores."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, calls: list[dict[str, Any]], wall: float, cpu: dict[str, float]) -> None:
        self.calls.extend(calls)
        self.wall += wall
        for kind, seconds in cpu.items():
            self.cpu[kind] = self.cpu.get(kind, 0.0) + seconds

    def result(self) -> dict[str, Any]:
        return with_cpu(summary(self.calls, self.wall), self.cpu, self.wall)


def round_figures(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("p50_ms", "p95_ms", "max_ms", "errors", "searches_per_s", "lexical_fallback")
    return {k: result[k] for k in keys}


async def job_phase(
    url: str, dsn: str, background: Path, project: str, texts: list[str], args: argparse.Namespace
) -> tuple[list[dict[str, Any]], float, dict[str, float], dict[str, Any]]:
    """The clients search while a job of ``background`` (project ``project``) embeds;
    the job is cancelled after, and waited for (so the next phase runs alone)."""
    from fastmcp import Client

    async with Client(url, timeout=120) as client:
        job = await call(
            client,
            "start_indexing_background",
            {"repo_path": str(background), "project_id": project},
        )
        await wait_job(client, job["job_id"], "embedding", 900)
        vectors_before = await vectors_of(dsn, project)
        calls, wall, cpu = await run_clients(url, texts, args.clients, args.queries, args.unique)
        last = await call(client, "get_indexing_status", {"job_id": job["job_id"]})
        embedded = await vectors_of(dsn, project) - vectors_before
        await call(client, "cancel_indexing", {"job_id": job["job_id"]})
        await wait_job(client, job["job_id"], "done", 300)
    job_facts = {"embedded": embedded, "status_at_end": last["status"]}
    return calls, wall, cpu, job_facts


async def side_phases(
    url: str,
    dsn: str,
    background: Path,
    name: str,
    queries: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``--rounds`` times: a phase alone, then one while a job embeds. Each round is
    recorded; ``alone`` and ``under_indexing`` pool the searches of every round."""
    out: dict[str, Any] = {"load_at_start": os.getloadavg(), "rounds": []}
    # --unique: each phase its own texts (no phase may find another's vectors).
    per_phase = args.clients * args.queries
    pooled = {"alone": Pooled(), "under_indexing": Pooled()}
    embedded, statuses = 0, []
    for number in range(args.rounds):
        texts = {
            phase: (
                queries[(2 * number + k) * per_phase : (2 * number + k + 1) * per_phase]
                if args.unique
                else queries
            )
            for k, phase in enumerate(("alone", "under_indexing"))
        }
        record: dict[str, Any] = {"load_before": os.getloadavg()}
        calls, wall, cpu = await run_clients(
            url, texts["alone"], args.clients, args.queries, args.unique
        )
        record["alone"] = round_figures(summary(calls, wall))
        pooled["alone"].add(calls, wall, cpu)
        calls, wall, cpu, job = await job_phase(
            url, dsn, background, f"bg-{name}-{number}", texts["under_indexing"], args
        )
        record["under_indexing"] = {**round_figures(summary(calls, wall)), "job": job}
        pooled["under_indexing"].add(calls, wall, cpu)
        embedded += job["embedded"]
        statuses.append(job["status_at_end"])
        out["rounds"].append(record)
    for phase, pool in pooled.items():
        out[phase] = pool.result()
    out["under_indexing"]["job_chunks_embedded_meanwhile"] = embedded
    wall = pooled["under_indexing"].wall
    out["under_indexing"]["job_chunks_per_s"] = round(embedded / wall, 2) if wall else None
    out["under_indexing"]["job_status_at_end"] = statuses
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


def eval_queries(searched: str, unique: bool) -> list[str]:
    files = (
        sorted((REPO / "eval" / "queries").glob("*.json"))
        if unique
        else [REPO / "eval" / "queries" / f"{searched}.json"]
    )
    texts = [q["query"] for f in files for q in json.loads(f.read_text())["queries"]]
    return list(dict.fromkeys(texts))


async def settle(dsn: str) -> None:
    """VACUUM ANALYZE after indexing: otherwise autovacuum (the vectors' update
    left a dead row per chunk) lands in a phase of one side or the other."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


def run_side(
    server_url: str,
    name: str,
    tree: Path,
    extra: dict[str, str],
    roots: tuple[Path, Path],
    queries: list[str],
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One side, in a database of its own: index the searched repository, then the
    phases (see the module's docstring)."""
    from codebase_mcp.migrate import upgrade_head

    dsn = database_dsn(server_url, f"searchload_{name}")
    asyncio.run(upgrade_head(dsn, script_location=tree / "migrations"))
    embedder_env = {k: v for k, v in extra.items() if k.startswith("EMBEDDER_")}
    server_env = {k: v for k, v in extra.items() if not k.startswith("EMBEDDER_")}
    out: dict[str, Any] = {"tree": str(tree), "env": extra}
    with (
        embedder(tree / "src", embedder_env) as emb,
        mcp_server(
            {**serve_env(dsn, emb, server_env), "PYTHONPATH": str(tree / "src")},
            work / f"{name}.log",
        ) as url,
    ):
        out["searched"] = asyncio.run(index_searched(url, roots[0]))
        asyncio.run(settle(dsn))
        out.update(asyncio.run(side_phases(url, dsn, roots[1], name, queries, args)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="server URL without a database; default: container")
    parser.add_argument("--before-tree", type=Path, help="a checkout (src/, migrations/) before")
    parser.add_argument("--before-commit", default="6e9836d", help="used without --before-tree")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--queries", type=int, default=25, help="searches per client")
    parser.add_argument(
        "--unique", action="store_true",
        help="every search a different text (all eval sets): no query vector can be reused",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="alone + under-indexing phase pairs per side (pooled, and each recorded)",
    )  # fmt: skip
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
    roots = (checkout(searched), checkout(background))
    queries = eval_queries(args.searched, args.unique)
    needed = 2 * args.rounds * args.clients * args.queries
    if args.unique and len(queries) < needed:
        raise SystemExit(
            f"--unique: {2 * args.rounds} phases of {args.clients} clients x {args.queries} "
            f"searches need {needed} different queries; the eval sets hold "
            f"{len(queries)}. Lower --queries or --clients."
        )
    report: dict[str, Any] = {
        "benchmark": "bench/bench_search_load.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "what": f"{args.clients} fastmcp.Client sessions x {args.queries} search_code over HTTP "
        f"(codebase-mcp serve, real Postgres, real embedder serve all-MiniLM-L6-v2) on "
        f"{searched.name} {searched.version}, while a job indexes {background.name} "
        f"{background.version}",
        "queries": (
            f"{needed} of {len(queries)} different texts, each searched once in the run (--unique)"
            if args.unique
            else f"the {len(queries)} of eval/queries/{args.searched}.json, repeated"
        ),
        "goal": "p95 < 300 ms, 0 errors with 16 clients",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "load_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="searchload-") as tmp:
        work = Path(tmp)
        before = args.before_tree or archive_tree(args.before_commit, work / "before")
        sides: list[tuple[str, Path, dict[str, str]]] = [
            (name, before if name == "before" else REPO,
             parse_env(args.after_env) if name == "after" else {})
            for name in args.sides.split(",")
        ]  # fmt: skip
        for variant in args.variant:
            name, _, pairs = variant.partition(":")
            sides.append((name, REPO, parse_env(pairs.split(",") if pairs else [])))
        with postgres(args.database_url, "searchload") as server:
            for name, tree, extra in sides:
                report[name] = run_side(server, name, tree, extra, roots, queries, work, args)
                if name == "before" and not args.before_tree:
                    report[name]["tree"] = f"git archive {args.before_commit}"
                print(name, json.dumps(report[name]), file=sys.stderr, flush=True)
    report["summary"] = {
        name: {
            phase: {
                k: report[name][phase][k]
                for k in ("p50_ms", "p95_ms", "errors", "searches_per_s", "cpu_ms_per_search")
            }
            for phase in ("alone", "under_indexing")
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
