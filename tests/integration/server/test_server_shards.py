"""Scale-out: one job's embedding shards claimed by the workers of two replicas that
share one Postgres, each with its own embedder.

Every vector write is counted by a trigger (test-only table ``test_vector_writes``):
a chunk written twice, by two workers or by one that lost its shard, shows there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from codebase_mcp.server import db, service
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.server.indexer import DIMENSION_PROBE
from codebase_mcp.server.jobs import Worker
from codebase_mcp.server.paths import PathMapper
from tests.integration.server.fake_embedder import FakeEmbedder, free_port, running_fake_embedder
from tests.integration.server.serve_process import Served, serving
from tests.support.workers import stop_workers

pytestmark = pytest.mark.integration

COUNT_WRITES = """
CREATE TABLE test_vector_writes (chunk_id bigint NOT NULL);
CREATE FUNCTION test_count_vector_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO test_vector_writes (chunk_id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER test_vector_writes AFTER UPDATE OF embedding ON chunks FOR EACH ROW
WHEN (NEW.embedding IS NOT NULL) EXECUTE FUNCTION test_count_vector_write();
"""


def many_files_repo(root: Path, files: int = 40, functions: int = 6) -> Path:
    """Files of small functions with distinct words: one chunk per function or so,
    every chunk's text unique (so embedder inputs count chunks)."""
    for f in range(files):
        body = "\n\n".join(
            f"def handler_{f}_{n}(value_{f}_{n}):\n"
            f'    """Step {n} of module {f}: scale out shard work {f * 100 + n}."""\n'
            f"    return value_{f}_{n} * {f * 31 + n}\n"
            + "\n".join(
                f"    # note {f}-{n}-{k}: distinct words zeta{f}x{n}y{k}" for k in range(30)
            )
            for n in range(functions)
        )
        path = root / f"pkg{f % 4}" / f"mod_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body + "\n")
    return root


@pytest.fixture
async def counted_dsn(migrated_dsn: str) -> str:
    conn = await asyncpg.connect(migrated_dsn)
    try:
        await conn.execute(COUNT_WRITES)
    finally:
        await conn.close()
    return migrated_dsn


async def queue(dsn: str, root: Path, project: str = "default") -> uuid.UUID:
    conn = await asyncpg.connect(dsn)
    try:
        return await db.create_job(
            conn,
            project_id=project,
            repo_path=str(root),
            root_path=str(root),
            force_reindex=False,
            embedding_model="all-minilm",
        )
    finally:
        await conn.close()


async def wait_for(dsn: str, job_id: uuid.UUID, predicate: Any, timeout: float) -> Any:
    """Poll the job and its shards until ``predicate(job, summary)`` holds."""
    pool = await db.create_pool(dsn, max_size=2)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
                summary = await db.shard_summary(conn, job_id)
            assert job is not None
            if predicate(job, summary):
                return job, summary
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: job {job['status']}, shards {summary}")
            await asyncio.sleep(0.1)
    finally:
        await pool.close()


async def vector_writes(dsn: str, project: str = "default") -> tuple[Counter[int], int, int]:
    """(writes per chunk, chunks of the project, chunks still without a vector)."""
    conn = await asyncpg.connect(dsn)
    try:
        writes = Counter(
            int(r["chunk_id"]) for r in await conn.fetch("SELECT chunk_id FROM test_vector_writes")
        )
        chunks = await conn.fetchval("SELECT count(*) FROM chunks WHERE project_id = $1", project)
        waiting = await conn.fetchval(
            "SELECT count(*) FROM chunks WHERE project_id = $1 AND embedding IS NULL", project
        )
    finally:
        await conn.close()
    return writes, int(chunks), int(waiting)


def assert_each_chunk_written_once(writes: Counter[int], chunks: int, waiting: int) -> None:
    assert waiting == 0
    assert len(writes) == chunks
    assert max(writes.values()) == 1, [c for c, n in writes.items() if n > 1][:10]


# --- two workers in one process, two pools (as two replicas), two embedders -----------
async def test_two_workers_embed_one_job_together(counted_dsn: str, tmp_path: Path) -> None:
    repo = many_files_repo(tmp_path / "repo")
    settings = ServerSettings(
        poll_interval=0.1,
        heartbeat_interval=0.3,
        stale_after=5,
        embed_batch_size=4,
        shard_chunks=12,
        write_batch_files=10,
    )
    with (
        running_fake_embedder(per_input_delay=0.01) as fake_a,
        running_fake_embedder(per_input_delay=0.01) as fake_b,
    ):
        pools = [await db.create_pool(counted_dsn, max_size=4) for _ in range(2)]
        embedders = [
            OllamaEmbedder(f.url, f.model, batch_size=settings.embed_batch_size)
            for f in (fake_a, fake_b)
        ]
        workers = [
            Worker(pool, embedder, settings, worker_id=name)
            for pool, embedder, name in zip(
                pools, embedders, ("replica-a", "replica-b"), strict=True
            )
        ]
        tasks: list[asyncio.Task[None]] = []
        try:
            job_id = await queue(counted_dsn, repo)
            tasks = [asyncio.create_task(w.run_forever()) for w in workers]
            job, summary = await wait_for(
                counted_dsn, job_id, lambda j, s: j["status"] not in ("pending", "running"), 120
            )
        finally:
            await stop_workers(tasks, embedders, pools)
    assert job["status"] == "completed", job["error"]
    writes, chunks, waiting = await vector_writes(counted_dsn)
    assert chunks > 200
    assert_each_chunk_written_once(writes, chunks, waiting)
    # Both embedders worked, and no text went to both (or twice to one).
    texts_a, texts_b = (
        [t for t in f.inputs if t != DIMENSION_PROBE] for f in (fake_a, fake_b)
    )  # the owner asked its embedder once for the vector length of the new project
    inputs = texts_a + texts_b
    assert texts_a and texts_b
    assert len(inputs) == len(set(inputs)) == chunks
    # The shards: all done, split between the two workers, summing to the job's counters.
    assert summary.total == summary.done == -(-chunks // 12)
    split = {w.worker_id: w for w in summary.workers}
    assert set(split) == {"replica-a", "replica-b"}
    assert all(w.shards_done > 0 and w.shards_running == 0 for w in split.values())
    assert sum(w.chunks_embedded for w in split.values()) == chunks
    assert split["replica-a"].chunks_embedded == len(texts_a)
    assert split["replica-b"].chunks_embedded == len(texts_b)
    assert (job["chunks_to_embed"], job["chunks_embedded"]) == (chunks, chunks)
    status = service.job_status(job, PathMapper([]), shards=summary).model_dump(mode="json")
    assert (status["shards_total"], status["shards_done"]) == (summary.total, summary.total)
    assert {w["worker_id"] for w in status["shard_workers"]} == {"replica-a", "replica-b"}
    assert status["semantic_progress"] == 1.0


async def test_a_rerun_keeps_done_shards_and_embeds_only_the_rest(
    counted_dsn: str, tmp_path: Path
) -> None:
    """The owner died after some shards: the job's next run reuses the done shards,
    shards what is left, and embeds nothing twice."""
    repo = many_files_repo(tmp_path / "repo", files=12)
    settings = ServerSettings(
        poll_interval=0.1, heartbeat_interval=0.2, stale_after=1, embed_batch_size=4, shard_chunks=8
    )
    with running_fake_embedder(per_input_delay=0.02) as fake:
        pool = await db.create_pool(counted_dsn, max_size=4)
        embedder = OllamaEmbedder(fake.url, fake.model, batch_size=4)
        try:
            job_id = await queue(counted_dsn, repo)
            first = asyncio.create_task(
                Worker(pool, embedder, settings, worker_id="dies").run_once()
            )
            await wait_for(counted_dsn, job_id, lambda j, s: s.done >= 3, 60)
            # Simulate death: the task stops where it is, and its claims look abandoned.
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE jobs SET status = 'running', worker_id = 'dies', "
                    "heartbeat_at = now() - interval '1 hour' WHERE id = $1",
                    job_id,
                )
                before = await db.shard_summary(conn, job_id)
            done_before = before.done
            assert 3 <= done_before < before.total
            assert await Worker(pool, embedder, settings, worker_id="lives").run_once() is True
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
                after = await db.shard_summary(conn, job_id)
        finally:
            await embedder.aclose()
            await pool.close()
    assert job is not None and job["status"] == "completed", job and job["error"]
    assert job["attempts"] == 2
    writes, chunks, waiting = await vector_writes(counted_dsn)
    assert_each_chunk_written_once(writes, chunks, waiting)
    assert after.done == after.total >= before.total
    assert {w.worker_id for w in after.workers} == {"dies", "lives"}
    assert job["chunks_embedded"] == chunks  # the sums over shards, both runs


async def test_a_helper_whose_vectors_do_not_fit_writes_nothing(
    counted_dsn: str, tmp_path: Path
) -> None:
    """A replica whose embedder answers another vector length under the same model
    name fails every shard it claims (handed back at once); the owner embeds them."""
    repo = many_files_repo(tmp_path / "repo", files=10)
    settings = ServerSettings(
        poll_interval=0.1, heartbeat_interval=0.3, embed_batch_size=4, shard_chunks=8,
        max_attempts=50,
    )  # fmt: skip
    with (
        running_fake_embedder(per_input_delay=0.02) as good,
        running_fake_embedder(dimension=768) as bad,
    ):
        pool = await db.create_pool(counted_dsn, max_size=6)
        embedders = [OllamaEmbedder(f.url, f.model, batch_size=4) for f in (good, bad)]
        job_id = await queue(counted_dsn, repo)
        owner = asyncio.create_task(
            Worker(pool, embedders[0], settings, worker_id="good").run_once()
        )
        helper = asyncio.create_task(
            Worker(pool, embedders[1], settings, worker_id="bad").run_forever()
        )
        try:
            await asyncio.wait_for(owner, 120)
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
                summary = await db.shard_summary(conn, job_id)
                dims = await conn.fetchval(
                    "SELECT array_agg(DISTINCT vector_dims(embedding)) FROM chunks"
                )
                retried = await conn.fetchval(
                    "SELECT count(*) FROM job_shards WHERE job_id = $1 AND attempts > 1", job_id
                )
        finally:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
            for embedder in embedders:
                await embedder.aclose()
            await pool.close()
    assert job is not None and job["status"] == "completed", job and job["error"]
    writes, chunks, waiting = await vector_writes(counted_dsn)
    assert_each_chunk_written_once(writes, chunks, waiting)
    assert dims == [384]
    assert bad.inputs, "the helper never claimed a shard: the test proves nothing"
    assert retried >= 1  # what the helper claimed went back to pending and was redone
    assert [w.worker_id for w in summary.workers] == ["good"]
    assert summary.done == summary.total


# --- two real `serve` processes; one is killed (SIGKILL) mid-job -------------------------
def serve_env(dsn: str, fake: FakeEmbedder, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "EMBEDDER_URL": fake.url,
        "EMBEDDER_MODEL": fake.model,
        "CODEBASE_MCP_HOST": "127.0.0.1",
        "CODEBASE_MCP_PORT": str(port),
        "CODEBASE_MCP_POLL_INTERVAL": "0.2",
        "CODEBASE_MCP_HEARTBEAT_INTERVAL": "0.3",
        "CODEBASE_MCP_STALE_AFTER": "3",
        "CODEBASE_MCP_EMBED_BATCH_SIZE": "4",
        "CODEBASE_MCP_SHARD_CHUNKS": "8",
    }


@contextlib.contextmanager
def two_replicas(dsn: str, base: Path) -> Iterator[tuple[list[Served], list[FakeEmbedder]]]:
    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(running_fake_embedder(per_input_delay=0.04)) for _ in "ab"]
        servers = []
        for name, fake in zip("ab", fakes, strict=True):
            port = free_port()
            servers.append(
                stack.enter_context(
                    serving([], serve_env(dsn, fake, port), base / f"serve-{name}.log", port)
                )
            )
        yield servers, fakes


def pid_of(worker_id: str) -> int:
    return int(worker_id.split(":")[-2])  # host:pid:random (indexer.new_worker_id)


@pytest.mark.parametrize("victim", ["owner", "helper"])
async def test_a_killed_replicas_shards_are_finished_by_the_other(
    counted_dsn: str, tmp_path: Path, victim: str
) -> None:
    repo = many_files_repo(tmp_path / "repo", files=40)
    with two_replicas(counted_dsn, tmp_path) as (servers, _fakes):
        pids = {s.process.pid for s in servers}
        job_id = await queue(counted_dsn, repo)

        def both_working(job: dict[str, Any], summary: db.ShardSummary) -> bool:
            return len([w for w in summary.workers if w.shards_done]) == 2

        job, summary = await wait_for(counted_dsn, job_id, both_working, 120)
        owner = pid_of(job["worker_id"])
        assert {pid_of(w.worker_id) for w in summary.workers} == pids
        target = owner if victim == "owner" else next(iter(pids - {owner}))
        os.kill(target, signal.SIGKILL)
        killed_at = time.monotonic()
        left = summary.total - summary.done
        assert left > 2, "the job ended before the kill: make the embedder slower"
        job, summary = await wait_for(
            counted_dsn, job_id, lambda j, s: j["status"] not in ("pending", "running"), 180
        )
        survivor = next(s for s in servers if s.process.pid != target)
        log = survivor.log_text()
        assert survivor.process.poll() is None, log[-3000:]
    assert job["status"] == "completed", job["error"]
    writes, chunks, waiting = await vector_writes(counted_dsn)
    assert_each_chunk_written_once(writes, chunks, waiting)
    assert summary.done == summary.total
    by_pid = {pid_of(w.worker_id): w for w in summary.workers}
    assert by_pid[target].shards_running == 0
    assert by_pid[pid_of(job["worker_id"])].shards_done >= 1
    # The survivor finished what the dead one left: well over its share before the kill.
    assert sum(w.shards_done for p, w in by_pid.items() if p != target) >= left
    if victim == "owner":  # the job itself was recovered and re-run by the survivor
        assert job["attempts"] == 2 and pid_of(job["worker_id"]) != target
        assert "had a dead worker: now pending" in log
    assert time.monotonic() - killed_at < 120


@pytest.mark.parametrize(
    ("digest_b", "b_helps"),
    [("a1" * 32, True), ("b2" * 32, False)],
    ids=["same-weights", "other-weights"],
)
async def test_only_a_replica_serving_the_same_weights_takes_shards(
    counted_dsn: str, tmp_path: Path, digest_b: str, b_helps: bool
) -> None:
    # Both embedders answer to the same model name; the owner's shards carry the
    # digest of its weights, and a replica whose weights differ claims none.
    repo = many_files_repo(tmp_path / "repo", files=16)
    settings = ServerSettings(
        poll_interval=0.1, heartbeat_interval=0.3, stale_after=5, embed_batch_size=4,
        shard_chunks=8, write_batch_files=10,
    )  # fmt: skip
    with (
        running_fake_embedder(per_input_delay=0.05, digest="a1" * 32) as fake_a,
        running_fake_embedder(per_input_delay=0.05, digest=digest_b) as fake_b,
    ):
        pool = await db.create_pool(counted_dsn, max_size=6)
        embedders = [
            OllamaEmbedder(f.url, f.model, batch_size=settings.embed_batch_size)
            for f in (fake_a, fake_b)
        ]
        owner = Worker(pool, embedders[0], settings, worker_id="owner")
        helper = Worker(pool, embedders[1], settings, worker_id="helper")
        tasks: list[asyncio.Task[Any]] = []
        try:
            job_id = await queue(counted_dsn, repo)
            tasks.append(asyncio.create_task(owner.run_once()))  # takes the job, runs it
            await wait_for(counted_dsn, job_id, lambda j, s: j["status"] == "running", 30)
            tasks.append(asyncio.create_task(helper.run_forever()))
            job, summary = await wait_for(
                counted_dsn, job_id, lambda j, s: j["status"] not in ("pending", "running"), 120
            )
        finally:
            await stop_workers(tasks, embedders, [pool])
    assert job["status"] == "completed", job["error"]
    split = {w.worker_id: w for w in summary.workers}
    helped = [t for t in fake_b.inputs if t != DIMENSION_PROBE]
    if b_helps:
        assert "helper" in split and split["helper"].chunks_embedded == len(helped) > 0
    else:
        assert set(split) == {"owner"} and helped == []
