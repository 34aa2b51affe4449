"""Micro-batching in two lanes: a query never waits behind an indexing batch.

Every request puts its token sequences in a lane and awaits a future:

- the **query** lane (requests marked ``X-Embed-Purpose: query``) has its own
  worker and its own inference threads (``query_threads``). It merges whatever
  queries are queued (whole requests, up to ``max_batch`` sequences) as soon as
  it is free, and splits them over its threads, which run at once (one core
  each: 16 queries took 139 ms on two threads, 270 ms on one, on an idle
  2-core host); no timer, no added latency when idle;
- the **index** lane (everything else: indexing batches, unmarked Ollama
  clients) merges queued requests the same way, then runs them in *slices* of
  at most ``index_slice_tokens`` padded tokens on a second thread. Before each
  slice it waits while queries are queued or running, for at most
  ``index_max_pause`` seconds (then it runs one slice anyway, so a stream of
  queries slows indexing down but cannot stop it). The index thread also runs
  at a lower OS priority (``index_nice``), so within a slice the query thread
  gets the core first when the cores are busy.

So a query shares the CPU with at most one index slice (~0.1-0.3 s of work),
instead of queueing behind a 64-chunk batch (measured ~3.5 s each under load:
bench/results/embedder_query_lane.json). Small slices cost little: one BLAS
thread runs small GEMMs as fast per row as large ones (bench/results/embedder.json).

Memory stays bounded whatever the load: at most one forward pass per thread (each
capped by the encoder's token budget), and at most ``max_pending`` requests
waiting in both lanes together; more answer 503 like Ollama's OLLAMA_MAX_QUEUE.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from codebase_mcp.embedder.bert import Float32Array
from codebase_mcp.embedder.encoder import plan_batches
from codebase_mcp.embedder.protocol import SERVER_BUSY, OllamaError

RunBatch = Callable[[Sequence[Sequence[int]]], Float32Array]
Purpose = Literal["query", "index"]

# The request header that marks a query. Ollama ignores headers it does not know,
# so a client that sends it works against upstream Ollama too.
PURPOSE_HEADER = "X-Embed-Purpose"
DEFAULT_INDEX_SLICE_TOKENS = 1024
DEFAULT_INDEX_MAX_PAUSE = 0.5
DEFAULT_INDEX_NICE = 10


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's niceness by ``nice`` (Linux: per thread); False if refused.

    Raising one's niceness needs no privilege. It orders the threads of this
    process (and of its session's autogroup) only: the query thread gets the core
    first, the index thread takes what is left. It does not slow indexing down
    against other containers or sessions, which the kernel weighs per cgroup or
    autogroup.
    """
    if nice <= 0:
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):
        return False
    return True


def purpose_of(header: str | None) -> Purpose:
    """The lane a request's ``X-Embed-Purpose`` header asks for (pure); unmarked: index."""
    return "query" if header is not None and header.strip().lower() == "query" else "index"


@dataclass
class _Job:
    sequences: Sequence[Sequence[int]]
    future: asyncio.Future[Float32Array] = field(repr=False)


def take_jobs(queue: deque[_Job], max_batch: int) -> list[_Job]:
    """Pop whole requests from the front until ``max_batch`` sequences (at least one request).

    Cancelled requests (their client went away) are popped and dropped (pure
    apart from the queue it pops from).
    """
    jobs: list[_Job] = []
    count = 0
    while queue and (not jobs or count + len(queue[0].sequences) <= max_batch):
        job = queue.popleft()
        if job.future.done():
            continue
        jobs.append(job)
        count += len(job.sequences)
    return jobs


def plan_slices(lengths: Sequence[int], *, max_rows: int, slice_tokens: int) -> list[list[int]]:
    """Index-lane slices: length-sorted groups of at most ``slice_tokens`` padded tokens (pure).

    A sequence longer than the budget is a slice of its own.
    """
    return plan_batches(lengths, max_batch=max_rows, max_batch_tokens=slice_tokens)


def split_even(rows: int, parts: int) -> list[range]:
    """``rows`` cut into at most ``parts`` contiguous, non-empty, near-equal ranges (pure)."""
    parts = max(1, min(parts, rows))
    size, extra = divmod(rows, parts)
    out: list[range] = []
    start = 0
    for index in range(parts):
        stop = start + size + (1 if index < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


def split_rows(vectors: Float32Array, jobs: Sequence[_Job]) -> list[Float32Array]:
    """Each request's rows of a merged result, in order (pure)."""
    out: list[Float32Array] = []
    offset = 0
    for job in jobs:
        out.append(vectors[offset : offset + len(job.sequences)])
        offset += len(job.sequences)
    return out


@dataclass
class LaneStats:
    """Counters for tests, the benchmark and the log."""

    query_batches: int = 0
    index_batches: int = 0
    index_slices: int = 0
    index_pauses: int = 0  # slices that waited for queries first
    index_forced: int = 0  # slices run although queries were still busy (max pause reached)
    largest_batch: int = 0


class MicroBatcher:
    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int = 64,
        max_pending: int = 512,
        index_slice_tokens: int = DEFAULT_INDEX_SLICE_TOKENS,
        index_max_pause: float = DEFAULT_INDEX_MAX_PAUSE,
        index_nice: int = DEFAULT_INDEX_NICE,
        query_threads: int = 1,
    ) -> None:
        self._run = run
        self.query_threads = max(1, query_threads)
        self.index_nice = index_nice
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.index_slice_tokens = index_slice_tokens
        self.index_max_pause = index_max_pause
        self.stats = LaneStats()
        self.pending = 0
        self._lanes: dict[Purpose, deque[_Job]] = {"query": deque(), "index": deque()}
        self._ready: dict[Purpose, asyncio.Event] = {}
        self._queries_idle: asyncio.Event | None = None
        self._query_running = False
        self._workers: list[asyncio.Task[None]] = []
        self._executors: dict[Purpose, ThreadPoolExecutor] = {}

    # Kept for callers of the one-lane batcher (the benchmark, older tests).
    @property
    def batches_run(self) -> int:
        return self.stats.query_batches + self.stats.index_slices

    @property
    def largest_batch(self) -> int:
        return self.stats.largest_batch

    async def start(self) -> None:
        if self._workers:
            return
        self._ready = {"query": asyncio.Event(), "index": asyncio.Event()}
        self._queries_idle = asyncio.Event()
        self._queries_idle.set()
        self._executors["query"] = ThreadPoolExecutor(
            max_workers=self.query_threads, thread_name_prefix="embedder-query"
        )
        self._executors["index"] = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="embedder-index",
            initializer=lower_thread_priority,
            initargs=(self.index_nice,),
        )
        self._workers = [
            asyncio.create_task(self._query_worker(), name="embedder-query-lane"),
            asyncio.create_task(self._index_worker(), name="embedder-index-lane"),
        ]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        for executor in self._executors.values():
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors = {}

    async def embed(
        self, sequences: Sequence[Sequence[int]], purpose: Purpose = "index"
    ) -> Float32Array:
        """Pooled (not normalised) vectors for ``sequences``, in order."""
        if not self._workers:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        if not sequences:
            return np.zeros((0, 0), dtype=np.float32)
        if self.pending >= self.max_pending:
            raise OllamaError(503, SERVER_BUSY)
        self.pending += 1
        try:
            future: asyncio.Future[Float32Array] = asyncio.get_running_loop().create_future()
            self._lanes[purpose].append(_Job(sequences, future))
            if purpose == "query":
                self._update_idle()
            self._ready[purpose].set()
            return await future
        finally:
            self.pending -= 1

    def _update_idle(self) -> None:
        assert self._queries_idle is not None
        if self._query_running or self._lanes["query"]:
            self._queries_idle.clear()
        else:
            self._queries_idle.set()

    async def _next_jobs(self, lane: Purpose) -> list[_Job]:
        queue, ready = self._lanes[lane], self._ready[lane]
        while True:
            if not queue:
                ready.clear()
                await ready.wait()
            jobs = take_jobs(queue, self.max_batch)
            if jobs:
                return jobs

    async def _run_in(self, lane: Purpose, sequences: Sequence[Sequence[int]]) -> Float32Array:
        loop = asyncio.get_running_loop()
        self.stats.largest_batch = max(self.stats.largest_batch, len(sequences))
        return await loop.run_in_executor(self._executors[lane], self._run, sequences)

    async def _query_worker(self) -> None:
        while True:
            jobs = await self._next_jobs("query")
            self._query_running = True
            self._update_idle()
            try:
                self.stats.query_batches += 1
                merged = [seq for job in jobs for seq in job.sequences]
                parts = split_even(len(merged), self.query_threads)
                try:
                    # Parts run on the query threads at once: one core each, when free.
                    outs = await asyncio.gather(
                        *(self._run_in("query", merged[part.start : part.stop]) for part in parts)
                    )
                    vectors = outs[0] if len(outs) == 1 else np.concatenate(outs)
                except Exception as exc:  # hand the failure to every waiting request
                    _fail(jobs, exc)
                    continue
                _answer(jobs, split_rows(vectors, jobs))
            finally:
                self._query_running = False
                self._update_idle()

    async def _yield_to_queries(self) -> None:
        """Before an index slice: wait while queries are queued or running, up to the max pause."""
        assert self._queries_idle is not None
        if self._queries_idle.is_set():
            return
        self.stats.index_pauses += 1
        try:
            await asyncio.wait_for(self._queries_idle.wait(), self.index_max_pause)
        except TimeoutError:
            self.stats.index_forced += 1

    async def _index_worker(self) -> None:
        while True:
            jobs = await self._next_jobs("index")
            self.stats.index_batches += 1
            merged = [seq for job in jobs for seq in job.sequences]
            slices = plan_slices(
                [len(s) for s in merged],
                max_rows=self.max_batch,
                slice_tokens=self.index_slice_tokens,
            )
            out: Float32Array | None = None
            try:
                for rows in slices:
                    if all(job.future.done() for job in jobs):
                        break  # every client went away: stop spending CPU on them
                    await self._yield_to_queries()
                    self.stats.index_slices += 1
                    vectors = await self._run_in("index", [merged[i] for i in rows])
                    if out is None:
                        out = np.zeros((len(merged), vectors.shape[1]), dtype=np.float32)
                    out[rows] = vectors
            except Exception as exc:
                _fail(jobs, exc)
                continue
            if out is not None:
                _answer(jobs, split_rows(out, jobs))


def _fail(jobs: Sequence[_Job], exc: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(exc)


def _answer(jobs: Sequence[_Job], rows: Sequence[Float32Array]) -> None:
    for job, vectors in zip(jobs, rows, strict=True):
        if not job.future.done():
            job.future.set_result(vectors)
