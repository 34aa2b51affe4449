#!/usr/bin/env python3
"""Benchmark the CPU embedder: chunks/s, query latency, the fast path before/after, image size.

    .venv/bin/python bench/bench_embedder.py [--chunks 256] [--out bench/results/embedder.json]

Measures, in ONE run on this machine:

- throughput of typical code chunks (20-line windows of real Python source,
  truncated to 256 tokens like the server does) at batch 1, 16 and 64;
- latency of a single short query: in-process and over HTTP (a real
  ``codebase-mcp embedder serve`` on a loopback port, so JSON and uvicorn count);
- the fast path, before/after: input-order batches vs length-sorted batches
  under a token budget, and 1 BLAS thread vs all CPUs;
- 32 concurrent HTTP clients (micro-batching on) in chunks/s;
- the embedder image's size, when ``codebase-mcp image build embedder`` has built it.

Numbers are noisy on shared machines: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from servers import free_port

from codebase_mcp.embedder.encoder import SentenceEncoder
from codebase_mcp.embedder.model_files import load_model_files
from codebase_mcp.embedder.threads import available_cpus, blas_threads, get_blas_threads

QUERY = "how do I open a database connection pool with retries"


def code_chunks(count: int, lines_per_chunk: int = 20) -> list[str]:
    """Deterministic 'typical code chunks': 20-line windows of click's source (click is locked)."""
    import click

    files = sorted(Path(click.__file__).parent.rglob("*.py"))
    chunks: list[str] = []
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for start in range(0, len(lines), lines_per_chunk):
            chunk = "\n".join(lines[start : start + lines_per_chunk]).strip()
            if len(chunk) > 80:
                chunks.append(chunk)
            if len(chunks) == count:
                return chunks
    return chunks


def rate(run: Callable[[], object], items: int, repeats: int = 2) -> float:
    """Items/s of ``run`` (``items`` per call): the best of ``repeats`` timed calls after a warm-up.

    Best-of, not mean: on a shared machine other jobs only ever slow a run down.
    """
    run()
    best = min(_timed(run) for _ in range(repeats))
    return round(items / best, 1)


def _timed(run: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def compare(
    before: Callable[[], object], after: Callable[[], object], items: int, rounds: int = 2
) -> dict[str, float]:
    """Before/after in chunks/s, interleaved (A B A B ...) so both see the same machine load."""
    before()
    after()
    t_before, t_after = [], []
    for _ in range(rounds):
        t_before.append(_timed(before))
        t_after.append(_timed(after))
    b, a = items / min(t_before), items / min(t_after)
    return {"before": round(b, 1), "after": round(a, 1), "speedup": round(a / b, 2)}


def batched(
    encoder: SentenceEncoder, sequences: Sequence[Sequence[int]], batch: int
) -> Callable[[], None]:
    def run() -> None:
        for i in range(0, len(sequences), batch):
            encoder.embed_ids(sequences[i : i + batch])

    return run


def latency_ms(run: Callable[[], object], repeats: int = 30) -> dict[str, float]:
    run()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50": round(statistics.median(samples), 2),
        "p95": round(samples[int(0.95 * len(samples)) - 1], 2),
        "min": round(samples[0], 2),
    }


def http_bench(chunks: list[str]) -> dict[str, Any]:
    """Start a real server, measure query latency and concurrent throughput over HTTP."""
    import httpx

    port = free_port()
    exe = Path(sys.executable).with_name("codebase-mcp")
    server = subprocess.Popen(
        [str(exe), "embedder", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, timeout=120) as http:
            while True:
                try:
                    if http.get("/").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("embedder did not start")
                time.sleep(0.2)

            def one_query() -> None:
                http.post(
                    "/api/embed", json={"model": "all-minilm", "input": QUERY}
                ).raise_for_status()

            query = latency_ms(one_query)

            def batch_of_16() -> None:
                http.post(
                    "/api/embed", json={"model": "all-minilm", "input": chunks[:16]}
                ).raise_for_status()

            batch16 = rate(batch_of_16, 16)

        async def concurrent(clients: int) -> float:
            async with httpx.AsyncClient(base_url=base, timeout=300) as http_async:

                async def worker(items: list[str]) -> None:
                    for text in items:
                        r = await http_async.post(
                            "/api/embed", json={"model": "all-minilm", "input": text}
                        )
                        r.raise_for_status()

                shards = [chunks[i::clients] for i in range(clients)]
                t0 = time.perf_counter()
                await asyncio.gather(*(worker(s) for s in shards))
                return len(chunks) / (time.perf_counter() - t0)

        conc = asyncio.run(concurrent(32))
        return {
            "query_latency_ms": query,
            "batch16_request_chunks_per_s": batch16,
            "concurrent_32_clients_one_chunk_per_request_chunks_per_s": round(conc, 1),
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def image_size() -> dict[str, Any]:
    podman = shutil.which("podman")
    if podman is None:
        return {"built": False, "reason": "podman not installed"}
    refs = subprocess.run(
        [podman, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}} {{.ID}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    matches = [line for line in refs if "embedder" in line.split(" ", 1)[0]]
    if not matches:
        return {"built": False, "reason": "no embedder image (codebase-mcp image build embedder)"}
    ref = matches[0].split(" ", 1)[0]
    inspect = subprocess.run(
        [podman, "image", "inspect", ref, "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    size = int(inspect.stdout.strip() or 0)
    return {"built": True, "ref": ref, "size_bytes": size, "size_mb": round(size / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/embedder.json")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()

    files = load_model_files()
    fast = SentenceEncoder(files)  # length-sorted batches, token budget, blocked elementwise
    unsorted = SentenceEncoder(files, sort_by_length=False)
    plain = SentenceEncoder(files, blocked=False)
    chunks = code_chunks(args.chunks)
    tokenized = fast.tokenize(chunks)
    sequences = [t.ids for t in tokenized]
    lengths = [len(s) for s in sequences]
    cpus = available_cpus()
    print(f"{len(chunks)} chunks, tokens mean {np.mean(lengths):.0f}, cpus {cpus}", file=sys.stderr)

    results: dict[str, Any] = {
        "machine": {
            "cpus": cpus,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas_threads_default": get_blas_threads(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "model": {"name": "all-MiniLM-L6-v2", "dimension": fast.dimension, "max_tokens": 256},
        "chunks": {
            "count": len(chunks),
            "source": "20-line windows of click's source (click pinned in the lock)",
            "tokens_mean": round(float(np.mean(lengths)), 1),
            "tokens_median": float(np.median(lengths)),
            "truncated_to_256": sum(t.truncated for t in tokenized),
        },
        "model_load_seconds": round(fast.load_seconds, 3),
    }

    t0 = time.perf_counter()
    fast.tokenize(chunks)
    results["tokenize_chunks_per_s"] = round(len(chunks) / (time.perf_counter() - t0), 1)

    print("throughput at batch 1, 16, 64 ...", file=sys.stderr)
    results["chunks_per_s"] = {
        f"batch_{b}": rate(batched(fast, sequences, b), len(sequences)) for b in (1, 16, 64)
    }
    results["query_latency_ms_in_process"] = latency_ms(lambda: fast.embed([QUERY]))

    print("fast path before/after (interleaved) ...", file=sys.stderr)

    def one_thread() -> None:
        with blas_threads(1):
            batched(fast, sequences, 64)()

    results["fast_path_batch64_chunks_per_s"] = {
        "elementwise_plain_vs_blocked_inplace": compare(
            batched(plain, sequences, 64), batched(fast, sequences, 64), len(sequences)
        ),
        "batches_input_order_vs_length_sorted": compare(
            batched(unsorted, sequences, 64), batched(fast, sequences, 64), len(sequences)
        ),
        f"blas_threads_1_vs_{cpus}": compare(
            one_thread, batched(fast, sequences, 64), len(sequences)
        ),
    }
    if not args.skip_http:
        print("over HTTP ...", file=sys.stderr)
        results["http"] = http_bench(chunks)
    results["image"] = image_size()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
