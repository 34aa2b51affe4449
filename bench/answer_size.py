#!/usr/bin/env python3
"""How much a search_code answer costs an agent, before and after the compact answers.

    .venv/bin/python bench/answer_size.py [--repos starlette cobra fd] [--limit 10]
        [--before COMMIT] [--mcp-eval ../shared/tools/mcp_eval.py]
        [--out bench/results/answer_size.json]

One run, one index, two servers:

- one Postgres (the project's image), one real embedder (``codebase-mcp embedder
  serve``: all-MiniLM-L6-v2), the eval repositories indexed once;
- "before": ``codebase-mcp serve`` from the source tree of COMMIT (default: the
  merge base with main), exported with ``git archive`` and put first on PYTHONPATH,
  workers 0 (it only answers searches);
- "after": ``serve`` from this checkout, which also indexes.

Both read the same tables with the same search code, so the hits are the same and
only the answer's shape differs. For every eval query (limit 10) it records the
characters of the answer's text block (the JSON an agent reads; the same JSON is
also in ``structuredContent``), before (the old, only shape), after compact (the
default) and after full (``detail="full"``), and checks that the compact answer
names the same files in the same order as the full one. Tokens are approximated
as characters / 4. The lexical half runs without its time budget so that both
servers rank exactly alike on a busy machine.

With ``--mcp-eval`` the shared MCP evaluation client is also run against both
servers (``--no-index``), to show that it still reads a hit's file from the
compact answer and scores the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.server.fake_embedder import free_port
from tests.integration.server.serve_process import serving

from codebase_mcp.evaluation.queries import QuerySet, load_query_set
from codebase_mcp.evaluation.repos import checkout, load_pins, select
from codebase_mcp.proc import run

CLI = str(Path(sys.executable).parent / "codebase-mcp")


def approx_tokens(chars: float) -> int:
    return math.ceil(chars / 4)


def summary(sizes: list[int]) -> dict[str, Any]:
    ordered = sorted(sizes)
    return {
        "chars_mean": round(statistics.mean(sizes)),
        "chars_p50": round(statistics.median(sizes)),
        "chars_p95": ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)],
        "chars_max": ordered[-1],
        "approx_tokens_mean": approx_tokens(statistics.mean(sizes)),
        "approx_tokens_max": approx_tokens(ordered[-1]),
    }


def files_of(answer: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(h["relative_path"] for h in answer["results"]))


# --- processes ------------------------------------------------------------------------


def export_tree(commit: str, into: Path) -> Path:
    """The source tree (src/) of a commit, unpacked into a directory."""
    into.mkdir(parents=True)
    tar_path = into / "src.tar"
    run(["git", "-C", str(REPO), "archive", "-o", str(tar_path), commit, "src"])
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


@contextmanager
def real_embedder(log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("w") as handle:
        process = subprocess.Popen(
            [CLI, "embedder", "serve", "--port", str(port), "--threads", "2",
             "--log-level", "warning"],
            stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/api/tags", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the embedder did not start:\n{log.read_text()}")
                time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the measurement ------------------------------------------------------------------


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def index_all(url: str, work: list[tuple[str, Path, QuerySet]]) -> dict[str, Any]:
    from fastmcp import Client

    jobs = {}
    async with Client(url, timeout=600) as client:
        for name, root, _ in work:
            started = await client.call_tool(
                "start_indexing_background",
                {"repo_path": str(root), "project_id": f"answers-{name}"},
            )
            jobs[name] = started.structured_content["job_id"]  # type: ignore[index]
        done: dict[str, Any] = {}
        t0 = time.monotonic()
        while len(done) < len(jobs):
            for name, job in jobs.items():
                if name in done:
                    continue
                status = (
                    await client.call_tool("get_indexing_status", {"job_id": job})
                ).structured_content
                assert status is not None
                if status["status"] in ("completed", "failed", "cancelled"):
                    if status["status"] != "completed":
                        raise RuntimeError(f"indexing {name} ended {status['status']}: {status}")
                    done[name] = {
                        "files_indexed": status["files_indexed"],
                        "chunks": status["chunks_created"],
                    }
            if time.monotonic() - t0 > 3600:
                raise RuntimeError("indexing took more than an hour")
            await asyncio.sleep(1)
    return done


async def measure(
    before_url: str, after_url: str, work: list[tuple[str, Path, QuerySet]], limit: int
) -> dict[str, Any]:
    from fastmcp import Client

    per_repo: dict[str, Any] = {}
    every: dict[str, list[int]] = {"before": [], "after_compact": [], "after_full": []}
    mismatches: list[dict[str, Any]] = []
    async with Client(before_url, timeout=120) as old, Client(after_url, timeout=120) as new:
        for name, _, query_set in work:
            sizes: dict[str, list[int]] = {key: [] for key in every}
            same_as_full = same_as_before = 0
            for query in query_set.queries:
                arguments = {"query": query.query, "project_id": f"answers-{name}", "limit": limit}
                b = await old.call_tool("search_code", arguments)
                c = await new.call_tool("search_code", arguments)
                f = await new.call_tool("search_code", {**arguments, "detail": "full"})
                for key, result in (("before", b), ("after_compact", c), ("after_full", f)):
                    sizes[key].append(len(text_of(result)))
                fb, fc, ff = (files_of(r.structured_content) for r in (b, c, f))  # type: ignore[arg-type]
                same_as_full += fc == ff
                same_as_before += fc == fb
                if fc != ff or fc != fb:
                    mismatches.append({"repo": name, "query": query.query, "before": fb,
                                       "compact": fc, "full": ff})  # fmt: skip
            per_repo[name] = {
                "queries": len(query_set.queries),
                **{key: summary(values) for key, values in sizes.items()},
                "compact_same_files_as_full": same_as_full,
                "compact_same_files_as_before": same_as_before,
            }
            for key, values in sizes.items():
                every[key] += values
    overall = {key: summary(values) for key, values in every.items()}
    ratio = overall["after_compact"]["chars_mean"] / overall["before"]["chars_mean"]
    return {
        "overall": {
            "queries": len(every["before"]),
            **overall,
            "compact_over_before": round(ratio, 3),
            "compact_at_most_6000_chars": sum(1 for s in every["after_compact"] if s <= 6000),
        },
        "per_repo": per_repo,
        "file_order_mismatches": mismatches,
    }


def mcp_eval(script: Path, url: str, root: Path, name: str, query_file: Path) -> dict[str, Any]:
    """The shared evaluation client against a server, on the already indexed project."""
    out = run(
        [sys.executable, str(script), "--queries", str(query_file), "--repo", str(root),
         "--url", url, "--project", f"answers-{name}", "--no-index"],
        capture=True,
    )  # fmt: skip
    report = json.loads(out.stdout)
    keys = ("recall@1", "recall@5", "recall@10", "mrr@10", "answer_chars_mean")
    return {k: report[k] for k in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", nargs="+", default=["starlette", "cobra", "fd"])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--before", default=None, help="commit (default: merge base with main)")
    parser.add_argument("--mcp-eval", type=Path, default=None)
    parser.add_argument(
        "--embedder",
        choices=["real", "fake"],
        default="real",
        help="real: all-MiniLM-L6-v2 (codebase-mcp embedder serve); fake: the tests' "
        "hashed bag-of-words embedder (fast; the sizes depend on the chunks, not the model)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answer_size.json")
    args = parser.parse_args()
    # a timeout's SIGTERM still stops the servers and removes the container
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def git(*argv: str) -> str:
        return run(["git", "-C", str(REPO), *argv], capture=True).stdout.strip()

    before = git("rev-parse", args.before or git("merge-base", "HEAD", "main"))
    after = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "src"))
    work = []
    for pin in select(load_pins(REPO / "eval" / "repos.toml"), args.repos, None):
        work.append(
            (pin.name, checkout(pin), load_query_set(REPO / "eval/queries" / f"{pin.name}.json"))
        )

    started = time.monotonic()
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="answer-size-")))
        old_src = export_tree(before, base / "before")
        from tests.support.postgres import start_postgres

        pg = stack.enter_context(
            start_postgres(name=f"codebase-mcp-answers-pg-{secrets.token_hex(4)}")
        )
        dsn = pg.dsn("postgres")
        from codebase_mcp.migrate import upgrade_head

        asyncio.run(upgrade_head(dsn))
        if args.embedder == "real":
            embedder_url = stack.enter_context(real_embedder(base / "embedder.log"))
            model = "all-minilm"
        else:
            from tests.integration.server.fake_embedder import running_fake_embedder

            fake = stack.enter_context(running_fake_embedder())
            embedder_url, model = fake.url, fake.model
        common = {
            "DATABASE_URL": dsn,
            "EMBEDDER_URL": embedder_url,
            "EMBEDDER_MODEL": model,
            "CODEBASE_MCP_HOST": "127.0.0.1",
            "CODEBASE_MCP_TEXT_SEARCH_BUDGET_MS": "0",
            "CODEBASE_MCP_POLL_INTERVAL": "0.5",
            # small batches and a long timeout: the embedder shares 2 busy cores
            "CODEBASE_MCP_EMBED_BATCH_SIZE": "16",
            "CODEBASE_MCP_EMBED_TIMEOUT": "600",
        }
        servers = {}
        for label, extra in (
            ("after", {"CODEBASE_MCP_WORKERS": "1"}),
            ("before", {"CODEBASE_MCP_WORKERS": "0", "PYTHONPATH": str(old_src)}),
        ):
            port = free_port()
            env = {**common, **extra, "CODEBASE_MCP_PORT": str(port)}
            served = stack.enter_context(
                serving([], env, base / f"{label}.log", port, startup_timeout=300)
            )
            servers[label] = f"{served.url}/mcp"
        indexed = asyncio.run(index_all(servers["after"], work))
        index_s = round(time.monotonic() - started, 1)
        report = asyncio.run(measure(servers["before"], servers["after"], work, args.limit))
        if args.mcp_eval:
            report["mcp_eval"] = {
                name: {
                    label: mcp_eval(args.mcp_eval, servers[label], root, name,
                                    REPO / "eval/queries" / f"{name}.json")
                    for label in ("before", "after")
                }
                for name, root, _ in work
            }  # fmt: skip
    body = {
        "what": "characters of one search_code answer (its JSON text block), limit "
        f"{args.limit}, every eval query; tokens approximated as characters / 4",
        "before": before,
        "after": after + (" (+ uncommitted changes in src/)" if dirty else ""),
        "embedder": "all-MiniLM-L6-v2 (codebase-mcp embedder serve)"
        if args.embedder == "real"
        else "the tests' fake embedder (hashed bag of words)",
        "indexed": indexed,
        "setup_s": index_s,
        "seconds": round(time.monotonic() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        **report,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(body, indent=1) + "\n")
    o = report["overall"]
    before_mean, compact_mean = o["before"]["chars_mean"], o["after_compact"]["chars_mean"]
    print(
        f"{o['queries']} queries: before {before_mean} chars, compact {compact_mean}, "
        f"full {o['after_full']['chars_mean']} (compact/before {o['compact_over_before']}); "
        f"file-order mismatches: {len(report['file_order_mismatches'])}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
