"""The batcher's two lanes: the scheduling logic, with a scripted forward pass.

The ``run`` function stands in for the encoder: it returns, per sequence,
``[first token, length]`` (so order and ownership are checkable) and can be held
on a threading.Event to keep a forward pass "in flight".
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Sequence

import numpy as np
import pytest

from codebase_mcp.embedder.batcher import (
    MicroBatcher,
    _Job,
    lower_thread_priority,
    plan_slices,
    purpose_of,
    split_even,
    take_jobs,
)
from codebase_mcp.embedder.bert import Float32Array
from codebase_mcp.embedder.protocol import OllamaError


class ScriptedRun:
    """A forward pass whose calls are recorded per lane and can be held."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # (lane, rows)
        self.together: threading.Barrier | None = None  # calls of >1 row must meet here
        self.hold = {"query": threading.Event(), "index": threading.Event()}
        self.entered = {"query": threading.Event(), "index": threading.Event()}
        self.fail_next: Exception | None = None
        for event in self.hold.values():
            event.set()

    def __call__(self, sequences: Sequence[Sequence[int]]) -> Float32Array:
        lane = "index" if threading.current_thread().name.startswith("embedder-index") else "query"
        self.calls.append((lane, len(sequences)))
        if self.together is not None and len(sequences) > 1:
            self.together.wait(timeout=5)  # BrokenBarrierError unless run at the same time
        self.entered[lane].set()
        assert self.hold[lane].wait(timeout=10), "a held forward pass was never released"
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return np.array([[s[0], len(s)] for s in sequences], dtype=np.float32)


def seqs(first: int, count: int, length: int) -> list[list[int]]:
    return [[first + i] * length for i in range(count)]


async def wait_for(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("event never set")


# --- pure parts ----------------------------------------------------------------
def test_purpose_header_marks_queries_only() -> None:
    assert purpose_of("query") == "query"
    assert purpose_of(" Query ") == "query"
    assert purpose_of("index") == "index"
    assert purpose_of("document") == "index"
    assert purpose_of(None) == "index"  # plain Ollama clients: the index lane


async def test_take_jobs_takes_whole_requests_up_to_max_batch_and_drops_cancelled() -> None:
    loop = asyncio.get_running_loop()
    jobs = [_Job(seqs(0, n, 3), loop.create_future()) for n in (30, 30, 10, 40)]
    jobs[1].future.cancel()
    queue = deque(jobs)
    taken = take_jobs(queue, 64)
    # 30 + (cancelled, dropped) + 10 = 40; the next 40 would pass 64.
    assert taken == [jobs[0], jobs[2]]
    assert list(queue) == [jobs[3]]
    big = deque([_Job(seqs(0, 100, 3), loop.create_future())])
    assert len(take_jobs(big, 64)) == 1  # one request larger than max_batch still goes
    assert take_jobs(deque(), 64) == []


def test_plan_slices_bounds_padded_tokens() -> None:
    lengths = [100] * 20 + [300, 40]
    slices = plan_slices(lengths, max_rows=64, slice_tokens=512)
    assert sorted(i for s in slices for i in s) == list(range(len(lengths)))
    for rows in slices:
        longest = max(lengths[i] for i in rows)
        assert len(rows) * longest <= 512 or len(rows) == 1
    assert [20] in slices  # longer than the budget: a slice of its own
    assert max(len(s) for s in plan_slices([10] * 200, max_rows=64, slice_tokens=10_000)) == 64


def test_split_even() -> None:
    assert split_even(7, 2) == [range(0, 4), range(4, 7)]
    assert split_even(1, 2) == [range(0, 1)]
    assert split_even(6, 3) == [range(0, 2), range(2, 4), range(4, 6)]
    assert split_even(5, 1) == [range(0, 5)]


# --- scheduling ------------------------------------------------------------------
async def test_a_batch_of_queries_splits_over_the_query_threads() -> None:
    run = ScriptedRun()
    run.together = threading.Barrier(2)
    batcher = MicroBatcher(run, max_batch=64, query_threads=2)
    await batcher.start()
    try:
        run.hold["query"].clear()
        first = asyncio.create_task(batcher.embed(seqs(0, 1, 3), "query"))
        await wait_for(run.entered["query"])
        rest = [asyncio.create_task(batcher.embed(seqs(10 + i, 1, 3), "query")) for i in range(5)]
        await asyncio.sleep(0.05)
        run.hold["query"].set()
        answers = await asyncio.wait_for(asyncio.gather(first, *rest), 5)
    finally:
        await batcher.stop()
    assert [a.tolist() for a in answers] == [[[0.0, 3.0]]] + [[[10.0 + i, 3.0]] for i in range(5)]
    # 1, then 5 = 3 + 2 on two threads at once (they met at the barrier).
    assert sorted(run.calls) == [("query", 1), ("query", 2), ("query", 3)]


async def test_a_query_is_answered_while_an_index_slice_is_in_flight() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=64, index_slice_tokens=256, index_max_pause=5)
    await batcher.start()
    try:
        run.hold["index"].clear()
        index = asyncio.create_task(batcher.embed(seqs(100, 16, 64), "index"))
        await wait_for(run.entered["index"])  # the first slice is running, and held
        query = await asyncio.wait_for(batcher.embed(seqs(7, 1, 5), "query"), 5)
        assert query.tolist() == [[7.0, 5.0]]
        assert not index.done()
        run.hold["index"].set()
        vectors = await asyncio.wait_for(index, 5)
    finally:
        await batcher.stop()
    # Slices of 256 padded tokens: 4 rows of 64; the rows come back in request order.
    assert vectors[:, 0].tolist() == [float(100 + i) for i in range(16)]
    assert [rows for lane, rows in run.calls if lane == "index"] == [4, 4, 4, 4]
    assert batcher.stats.index_slices == 4 and batcher.stats.query_batches == 1


async def test_index_waits_between_slices_while_queries_run() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=64, index_slice_tokens=256, index_max_pause=30)
    await batcher.start()
    try:
        run.hold["query"].clear()
        query = asyncio.create_task(batcher.embed(seqs(1, 1, 5), "query"))
        await wait_for(run.entered["query"])  # a query pass is running (held)
        index = asyncio.create_task(batcher.embed(seqs(100, 8, 64), "index"))
        await asyncio.sleep(0.3)
        assert batcher.stats.index_slices == 0  # no slice starts while the query runs
        assert batcher.stats.index_pauses == 1
        run.hold["query"].set()
        await asyncio.wait_for(asyncio.gather(query, index), 5)
    finally:
        await batcher.stop()
    assert batcher.stats.index_slices == 2 and batcher.stats.index_forced == 0


async def test_a_flood_of_queries_cannot_stop_indexing() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=64, index_slice_tokens=256, index_max_pause=0.05)
    await batcher.start()
    try:
        run.hold["query"].clear()  # the query lane stays busy the whole time
        query = asyncio.create_task(batcher.embed(seqs(1, 1, 5), "query"))
        await wait_for(run.entered["query"])
        vectors = await asyncio.wait_for(batcher.embed(seqs(100, 8, 64), "index"), 5)
        assert len(vectors) == 8
        assert batcher.stats.index_forced == 2  # each slice waited its max pause, then ran
        run.hold["query"].set()
        await asyncio.wait_for(query, 5)
    finally:
        await batcher.stop()


async def test_queued_queries_merge_into_one_pass() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=64)
    await batcher.start()
    try:
        run.hold["query"].clear()
        first = asyncio.create_task(batcher.embed(seqs(0, 1, 3), "query"))
        await wait_for(run.entered["query"])
        rest = [asyncio.create_task(batcher.embed(seqs(10 + i, 1, 3), "query")) for i in range(5)]
        await asyncio.sleep(0.05)
        run.hold["query"].set()
        answers = await asyncio.wait_for(asyncio.gather(first, *rest), 5)
    finally:
        await batcher.stop()
    assert [a.tolist() for a in answers] == [[[0.0, 3.0]]] + [[[10.0 + i, 3.0]] for i in range(5)]
    assert run.calls == [("query", 1), ("query", 5)]


async def test_an_index_request_whose_client_left_stops_spending_slices() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=64, index_slice_tokens=256, index_max_pause=0)
    await batcher.start()
    try:
        run.hold["index"].clear()
        index = asyncio.create_task(batcher.embed(seqs(0, 32, 64), "index"))  # 8 slices
        await wait_for(run.entered["index"])
        index.cancel()
        await asyncio.sleep(0.05)
        run.hold["index"].set()
        await asyncio.sleep(0.2)
        # The lane still answers the next request.
        after = await asyncio.wait_for(batcher.embed(seqs(5, 1, 3), "index"), 5)
    finally:
        await batcher.stop()
    assert after.tolist() == [[5.0, 3.0]]
    assert batcher.stats.index_slices == 2  # the held slice, then the next request's
    assert batcher.pending == 0


async def test_a_failed_pass_fails_its_requests_and_the_lane_goes_on() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=64, index_slice_tokens=256)
    await batcher.start()
    try:
        run.fail_next = RuntimeError("out of memory")
        with pytest.raises(RuntimeError, match="out of memory"):
            await asyncio.wait_for(batcher.embed(seqs(0, 8, 64), "index"), 5)
        assert len(await asyncio.wait_for(batcher.embed(seqs(0, 8, 64), "index"), 5)) == 8
        run.fail_next = RuntimeError("boom")
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(batcher.embed(seqs(0, 1, 3), "query"), 5)
        assert len(await asyncio.wait_for(batcher.embed(seqs(0, 1, 3), "query"), 5)) == 1
    finally:
        await batcher.stop()


async def test_both_lanes_share_the_pending_limit() -> None:
    run = ScriptedRun()
    batcher = MicroBatcher(run, max_batch=1, max_pending=2)
    await batcher.start()
    try:
        run.hold["index"].clear()
        run.hold["query"].clear()
        held = [
            asyncio.create_task(batcher.embed(seqs(0, 1, 3), "index")),
            asyncio.create_task(batcher.embed(seqs(0, 1, 3), "query")),
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(OllamaError) as info:
            await batcher.embed(seqs(0, 1, 3), "query")
        assert info.value.status == 503
        run.hold["index"].set()
        run.hold["query"].set()
        await asyncio.wait_for(asyncio.gather(*held), 5)
    finally:
        await batcher.stop()
    assert batcher.pending == 0


async def test_embed_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        await MicroBatcher(ScriptedRun()).embed(seqs(0, 1, 3))


def test_the_index_thread_runs_nicer() -> None:
    seen: dict[str, int] = {}

    def body() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        assert lower_thread_priority(5)
        seen["before"], seen["after"] = before, os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen["after"] == min(19, seen["before"] + 5)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == seen["before"]
    assert lower_thread_priority(0) is False
