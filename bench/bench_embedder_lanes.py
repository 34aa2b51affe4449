#!/usr/bin/env python3
"""Load benchmark: query embeddings while an indexing stream embeds (issue 12), before/after.

    git archive eddd6cd src | tar -x -C /tmp/before     # the embedder before the query lane
    .venv/bin/python bench/bench_embedder_lanes.py --before-src /tmp/before/src
        [--clients 16] [--queries 25] [--rounds 2] [--out bench/results/embedder_query_lane.json]

Each variant is a real ``embedder serve`` process on a loopback port, reached over
real HTTP through the server's own client (:class:`OllamaEmbedder`, which marks
queries with ``X-Embed-Purpose: query``; an embedder that does not know the header
ignores it):

- **before**: the embedder's code from ``--before-src`` (main before the lanes): one queue,
  one inference thread, a query waits behind whatever index batch is running;
- **after**: this checkout: a query lane with its own thread, index batches cut into
  slices that yield to queries.

Per variant and round, on the same machine, interleaved (before, after, before, after)
so both see the same load:

1. index alone: the indexing stream (64-chunk ``/api/embed`` requests of typical code
   chunks, one after the other, as the indexer sends them) for ``--index-seconds``:
   chunks/s;
2. queries alone: ``--clients`` x ``--queries`` with no indexing (the floor: what the
   machine's CPU share gives the query path itself);
3. under load: the same stream, and ``--clients`` concurrent clients each embedding
   ``--queries`` search queries one after the other: per-query latency p50/p95/max,
   errors, queries/s, and the stream's chunks/s meanwhile.

Numbers are noisy on shared machines: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from bench_embedder import code_chunks
from servers import start_embedder, stop_embedder

from codebase_mcp.server.embeddings import OllamaEmbedder

QUERIES = [
    "open a database connection pool with retries",
    "parse command line options into a config object",
    "where are environment variables read",
    "format help text for a command",
    "handle keyboard interrupt gracefully",
    "validate that a path exists and is a file",
    "prompt the user for a password without echo",
    "progress bar that updates in place",
    "convert a string option to an integer",
    "group of subcommands registered by decorator",
    "shell completion for bash and zsh",
    "read a file lazily and close it at exit",
    "echo styled text with colours",
    "exception raised when a parameter is missing",
    "default value taken from a callback",
    "split arguments like a posix shell",
    "test runner that invokes a command in isolation",
    "detect whether the terminal is interactive",
    "choose one of several allowed values",
    "pass context object to nested commands",
    "wrap long lines at the terminal width",
    "edit text in the user's editor",
    "flag that can be given many times to count",
    "version option printing the package version",
    "open a url in the web browser",
]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class IndexStream:
    """Embeds chunks in a loop like the indexer: 64-chunk requests, one after the other."""

    def __init__(self, embedder: OllamaEmbedder, chunks: list[str]) -> None:
        self.embedder = embedder
        self.chunks = chunks
        self.done = 0
        self.errors = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        position = 0
        while not self._stop.is_set():
            part = self.chunks[position : position + 64] or self.chunks[:64]
            position = (position + 64) % len(self.chunks)
            try:
                vectors = await self.embedder.embed_documents(part)
                self.done += len(vectors)
            except Exception:
                self.errors += 1
                await asyncio.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()


async def index_alone(url: str, chunks: list[str], seconds: float) -> dict[str, Any]:
    embedder = OllamaEmbedder(url, "all-minilm", batch_size=64, timeout=300)
    stream = IndexStream(embedder, chunks)
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(3)  # first requests in flight
    start_done, t0 = stream.done, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (stream.done - start_done) / (time.perf_counter() - t0)
    stream.stop()
    await task
    await embedder.aclose()
    return {
        "index_chunks_per_s": round(rate, 2),
        "index_chunks_done": stream.done - start_done,
        "index_errors": stream.errors,
    }


async def under_load(
    url: str, chunks: list[str], clients: int, queries: int, *, indexing: bool = True
) -> dict[str, Any]:
    # One client object for the stream and the queries, as in the server process.
    embedder = OllamaEmbedder(url, "all-minilm", batch_size=64, timeout=300)
    stream = IndexStream(embedder, chunks)
    task = asyncio.create_task(stream.run() if indexing else asyncio.sleep(0))
    if indexing:
        await asyncio.sleep(3)  # the stream is embedding before the first query
    latencies: list[float] = []
    errors: list[str] = []

    async def client(number: int) -> None:
        for i in range(queries):
            text = f"{QUERIES[(number + i) % len(QUERIES)]} (client {number})"
            t0 = time.perf_counter()
            try:
                vector = await embedder.embed_query(text)
                assert len(vector) == 384
                latencies.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:
                errors.append(repr(exc)[:200])

    start_done, t0 = stream.done, time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - t0
    done_meanwhile = stream.done - start_done
    index_rate = done_meanwhile / wall
    stream.stop()
    await task
    await embedder.aclose()
    return {
        "queries": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "queries_per_s": round(len(latencies) / wall, 2),
        "wall_s": round(wall, 1),
        "index_chunks_per_s_meanwhile": round(index_rate, 2),
        "index_chunks_done_meanwhile": done_meanwhile,
        "index_errors": stream.errors,
        "_latencies": latencies,
    }


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for r in rounds for x in r["under_load"].pop("_latencies")]
    return {
        "queries_alone_p95_ms_per_round": [r["queries_alone"]["p95_ms"] for r in rounds],
        "queries": sum(r["under_load"]["queries"] for r in rounds),
        "errors": sum(r["under_load"]["errors"] for r in rounds),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "queries_per_s": round(
            statistics.mean(r["under_load"]["queries_per_s"] for r in rounds), 2
        ),
        "index_chunks_per_s_alone": round(
            statistics.mean(r["index_alone"]["index_chunks_per_s"] for r in rounds), 2
        ),
        "index_chunks_per_s_under_query_load": round(
            statistics.mean(r["under_load"]["index_chunks_per_s_meanwhile"] for r in rounds), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--queries", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--index-seconds", type=float, default=45.0)
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument(
        "--before-src", type=Path, default=None, help="src/ of the code to compare against"
    )
    parser.add_argument("--only", choices=["before", "after"], default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/embedder_query_lane.json")
    args = parser.parse_args()

    chunks = code_chunks(args.chunks)
    if args.before_src is None and args.only != "after":
        parser.error("--before-src is needed for the 'before' variant (or give --only after)")
    variants = {"before": args.before_src, "after": REPO / "src"}
    if args.only:
        variants = {args.only: variants[args.only]}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    loads: list[float] = []
    for round_number in range(args.rounds):
        for name, src in variants.items():
            proc, url = start_embedder(src)
            try:
                loads.append(os.getloadavg()[0])
                alone = asyncio.run(index_alone(url, chunks, args.index_seconds))
                alone_q = asyncio.run(
                    under_load(url, chunks, args.clients, args.queries, indexing=False)
                )
                loaded = asyncio.run(under_load(url, chunks, args.clients, args.queries))
                loads.append(os.getloadavg()[0])
            finally:
                stop_embedder(proc)
            queries_alone = {
                k: v
                for k, v in alone_q.items()
                if k in ("queries", "errors", "p50_ms", "p95_ms", "max_ms", "queries_per_s")
            }
            entry = {
                "round": round_number,
                "index_alone": alone,
                "queries_alone": queries_alone,
                "under_load": loaded,
            }
            results[name].append(entry)
            shown = {k: v for k, v in loaded.items() if not k.startswith("_")}
            print(name, round_number, alone, shown, flush=True)

    summary = {name: summarise(rounds) for name, rounds in results.items()}
    out = {
        "benchmark": "bench/bench_embedder_lanes.py",
        "what": f"{args.clients} concurrent clients x {args.queries} query embeddings each, "
        "while one stream embeds 64-chunk index requests, against a real `embedder serve` "
        "over HTTP through the server's OllamaEmbedder",
        "before": f"embedder code from {args.before_src} (main at eddd6cd, before the lanes): "
        "one queue, one thread",
        "after": "this branch: query lane + index slices of EMBEDDER_INDEX_SLICE_TOKENS "
        "(default 1024) yielding to queries for up to EMBEDDER_INDEX_MAX_PAUSE (0.5 s)",
        "goal": "p95 < 300 ms, 0 errors",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_seen": [round(x, 2) for x in loads],
        },
        "summary": summary,
        "rounds": results,
    }
    if "before" in summary and "after" in summary:
        b, a = summary["before"], summary["after"]
        if b["p95_ms"] and a["p95_ms"]:
            out["p95_ratio_before_over_after"] = round(b["p95_ms"] / a["p95_ms"], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
