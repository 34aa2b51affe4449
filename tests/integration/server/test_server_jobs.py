"""Jobs in Postgres: SKIP LOCKED claims, stale-job recovery, cancel, model mismatch."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest

from codebase_mcp.errors import EmbeddingModelMismatch
from codebase_mcp.server import db
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.server.indexer import DIMENSION_PROBE, Indexer, Progress
from codebase_mcp.server.jobs import Worker
from tests.integration.server.fake_embedder import FakeEmbedder, running_fake_embedder

pytestmark = pytest.mark.integration


async def _queue(pool: object, project: str, root: Path, model: str = "all-minilm") -> uuid.UUID:
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        return await db.create_job(
            conn,
            project_id=project,
            repo_path=str(root),
            root_path=str(root),
            force_reindex=False,
            embedding_model=model,
        )


async def test_two_workers_claim_different_jobs(migrated_dsn: str, sample_repo: Path) -> None:
    pool = await db.create_pool(migrated_dsn)
    try:
        a = await _queue(pool, "p1", sample_repo)
        b = await _queue(pool, "p2", sample_repo)
        c = await _queue(pool, "p1", sample_repo)  # same project as a: must wait for it

        async def claim(worker: str) -> dict[str, object] | None:
            async with pool.acquire() as conn:
                return await db.claim_job(conn, worker)

        first, second, third = await asyncio.gather(claim("w1"), claim("w2"), claim("w3"))
        claimed = {j["id"] for j in (first, second, third) if j}
        assert claimed == {a, b}
        assert c not in claimed
    finally:
        await pool.close()


async def test_stale_running_job_is_recovered_and_completed(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    pool = await db.create_pool(migrated_dsn)
    settings = ServerSettings(stale_after=1, heartbeat_interval=0.2, max_attempts=2)
    embedder = OllamaEmbedder(fake_embedder.url, fake_embedder.model)
    try:
        job_id = await _queue(pool, "default", sample_repo)
        async with pool.acquire() as conn:
            # A worker claimed it, then died: heartbeat ten minutes old.
            claimed = await db.claim_job(conn, "dead-worker")
            assert claimed is not None and claimed["id"] == job_id
            await conn.execute(
                "UPDATE jobs SET heartbeat_at = now() - interval '10 minutes' WHERE id = $1",
                job_id,
            )
        worker = Worker(pool, embedder, settings, worker_id="live-worker")
        assert await worker.run_once() is True
        async with pool.acquire() as conn:
            job = await db.get_job(conn, job_id)
        assert job is not None
        assert job["status"] == "completed"
        assert job["worker_id"] == "live-worker"
        assert job["attempts"] == 2

        # A job that keeps dying is failed after max_attempts, not retried forever.
        doomed = await _queue(pool, "other", sample_repo)
        async with pool.acquire() as conn:
            for attempt in range(2):
                claimed = await db.claim_job(conn, f"dies-{attempt}")
                assert claimed is not None and claimed["id"] == doomed
                await conn.execute(
                    "UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
                    doomed,
                )
                await db.recover_stale_jobs(conn, stale_after=1, max_attempts=2)
            job = await db.get_job(conn, doomed)
        assert job is not None
        assert job["status"] == "failed"
        assert "stopped responding 2 time(s)" in job["error"]
    finally:
        await embedder.aclose()
        await pool.close()


async def test_cancel_running_job(migrated_dsn: str, tmp_path: Path) -> None:
    repo = tmp_path / "many"
    repo.mkdir()
    for n in range(40):
        (repo / f"m{n}.py").write_text(f"def f{n}():\n    return {n}\n" * 3)
    pool = await db.create_pool(migrated_dsn)
    settings = ServerSettings(heartbeat_interval=0.1, write_batch_files=2, embed_batch_size=1)
    with running_fake_embedder(delay=0.05) as fake:
        embedder = OllamaEmbedder(fake.url, fake.model, batch_size=1)
        try:
            job_id = await _queue(pool, "default", repo)
            worker = Worker(pool, embedder, settings)
            task = asyncio.create_task(worker.run_once())
            for _ in range(200):  # wait until it has written something
                await asyncio.sleep(0.05)
                async with pool.acquire() as conn:
                    job = await db.get_job(conn, job_id)
                if job and job["files_indexed"] > 0:
                    break
            async with pool.acquire() as conn:
                assert await db.request_cancel(conn, job_id) == "running"
            await asyncio.wait_for(task, 30)
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
            assert job is not None
            assert job["status"] == "cancelled"
            assert 0 < job["files_indexed"] < 40
        finally:
            await embedder.aclose()
            await pool.close()


async def test_other_model_is_refused_without_force(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    pool = await db.create_pool(migrated_dsn)
    settings = ServerSettings()

    async def report(progress: Progress) -> None:
        return None

    first = OllamaEmbedder(fake_embedder.url, fake_embedder.model)
    try:
        await Indexer(pool, first, settings).run(
            project_id="p", root=str(sample_repo), force=False, report=report
        )
        with running_fake_embedder(model="nomic-embed-text", dimension=768) as other:
            second = OllamaEmbedder(other.url, other.model)
            with pytest.raises(EmbeddingModelMismatch, match="indexed with all-minilm") as err:
                await Indexer(pool, second, settings).run(
                    project_id="p", root=str(sample_repo), force=False, report=report
                )
            assert "force_reindex=true" in (err.value.hint or "")
            done = await Indexer(pool, second, settings).run(
                project_id="p", root=str(sample_repo), force=True, report=report
            )
            assert done.counters["files_indexed"] == 8
            # nomic-embed-text gets its document prefix.
            assert all(t.startswith("search_document: ") for t in other.inputs)
            await second.aclose()
        async with pool.acquire() as conn:
            project = await db.get_project(conn, "p")
            dims = await conn.fetch("SELECT DISTINCT embedding_dim FROM chunks")
        assert project == db.Project("p", "nomic-embed-text", 768)
        assert [r["embedding_dim"] for r in dims] == [768]
    finally:
        await first.aclose()
        await pool.close()


async def test_too_long_input_is_split_and_retried(migrated_dsn: str, sample_repo: Path) -> None:
    pool = await db.create_pool(migrated_dsn)

    async def report(progress: Progress) -> None:
        return None

    with running_fake_embedder(max_input_chars=300) as fake:
        embedder = OllamaEmbedder(fake.url, fake.model, batch_size=64)
        try:
            done = await Indexer(pool, embedder, ServerSettings()).run(
                project_id="p", root=str(sample_repo), force=False, report=report
            )
        finally:
            await embedder.aclose()
    assert done.counters["chunks_created"] >= 8
    assert all(len(t) <= 300 for t in fake.inputs)
    # Every chunk once, plus the probe that gives a new project its vector length.
    assert fake.inputs[0] == DIMENSION_PROBE
    assert len(fake.inputs) == done.counters["chunks_created"] + 1
    await pool.close()


async def test_shutdown_hands_the_running_job_back(migrated_dsn: str, tmp_path: Path) -> None:
    repo = tmp_path / "many"
    repo.mkdir()
    for n in range(20):
        (repo / f"m{n}.py").write_text(f"def f{n}():\n    return {n}\n" * 3)
    pool = await db.create_pool(migrated_dsn)
    settings = ServerSettings(write_batch_files=2, embed_batch_size=1)
    with running_fake_embedder(delay=0.05) as fake:
        embedder = OllamaEmbedder(fake.url, fake.model, batch_size=1)
        try:
            job_id = await _queue(pool, "default", repo)
            task = asyncio.create_task(Worker(pool, embedder, settings).run_once())
            for _ in range(200):
                await asyncio.sleep(0.05)
                async with pool.acquire() as conn:
                    job = await db.get_job(conn, job_id)
                if job and job["status"] == "running":
                    break
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
            assert job is not None
            assert job["status"] == "pending" and job["worker_id"] is None
            # The next worker finishes it.
            assert await Worker(pool, embedder, settings).run_once() is True
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
            assert job is not None and job["status"] == "completed"
            assert job["files_indexed"] + job["files_unchanged"] == 20
        finally:
            await embedder.aclose()
            await pool.close()


async def test_a_worker_whose_pool_is_not_there_yet_retries_then_runs_the_job(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    from codebase_mcp.errors import CodebaseMcpError

    pool = await db.create_pool(migrated_dsn)
    asked: list[bool] = []

    async def pools() -> object:
        # The server's provider while Postgres is still starting: an error, twice.
        asked.append(True)
        if len(asked) <= 2:
            raise CodebaseMcpError("cannot connect to the database (not up yet)")
        return pool

    settings = ServerSettings(poll_interval=0.1, heartbeat_interval=0.2)
    embedder = OllamaEmbedder(fake_embedder.url, fake_embedder.model)
    worker = Worker(pools, embedder, settings)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run_forever())
    try:
        job_id = await _queue(pool, "default", sample_repo)
        for _ in range(300):
            async with pool.acquire() as conn:
                job = await db.get_job(conn, job_id)
            if job is not None and job["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert job is not None and job["status"] == "completed", job
        assert len(asked) > 2  # it asked again after each failure, then got the pool
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await embedder.aclose()
        await pool.close()
