"""Micro-batching: concurrent requests share forward passes on ONE inference thread.

Every request puts its token sequences on a queue and awaits a future. A single
worker takes what is queued (up to ``max_batch`` sequences, whole requests
only), runs the encoder once in a dedicated thread, and hands each request its
rows. While one batch runs, the next requests queue up and ride together in the
next one: no timer, no added latency when idle.

Memory stays bounded whatever the load: one forward pass at a time (its size
capped by the encoder's token budget), and at most ``max_pending`` requests
waiting; more answer 503 like Ollama's OLLAMA_MAX_QUEUE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from codebase_mcp.embedder.bert import Float32Array
from codebase_mcp.embedder.protocol import SERVER_BUSY, OllamaError

RunBatch = Callable[[Sequence[Sequence[int]]], Float32Array]


@dataclass
class _Job:
    sequences: Sequence[Sequence[int]]
    future: asyncio.Future[Float32Array] = field(repr=False)


class MicroBatcher:
    def __init__(self, run: RunBatch, *, max_batch: int = 64, max_pending: int = 512) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.pending = 0
        self.batches_run = 0
        self.largest_batch = 0

    async def start(self) -> None:
        if self._worker is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-infer")
        self._worker = asyncio.create_task(self._work(), name="embedder-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def embed(self, sequences: Sequence[Sequence[int]]) -> Float32Array:
        """Pooled (not normalised) vectors for ``sequences``, in order."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        if not sequences:
            return np.zeros((0, 0), dtype=np.float32)
        if self.pending >= self.max_pending:
            raise OllamaError(503, SERVER_BUSY)
        self.pending += 1
        try:
            future: asyncio.Future[Float32Array] = asyncio.get_running_loop().create_future()
            self._queue.put_nowait(_Job(sequences, future))
            return await future
        finally:
            self.pending -= 1

    def _take_jobs(self, first: _Job) -> list[_Job]:
        assert self._queue is not None
        jobs = [first]
        count = len(first.sequences)
        while count < self.max_batch and not self._queue.empty():
            job = self._queue.get_nowait()
            jobs.append(job)
            count += len(job.sequences)
        return [job for job in jobs if not job.future.done()]  # drop cancelled requests

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = self._take_jobs(await self._queue.get())
            if not jobs:
                continue
            merged = [seq for job in jobs for seq in job.sequences]
            self.batches_run += 1
            self.largest_batch = max(self.largest_batch, len(merged))
            try:
                vectors = await loop.run_in_executor(self._executor, self._run, merged)
            except Exception as exc:  # hand the failure to every waiting request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            offset = 0
            for job in jobs:
                rows = vectors[offset : offset + len(job.sequences)]
                offset += len(job.sequences)
                if not job.future.done():
                    job.future.set_result(rows)
