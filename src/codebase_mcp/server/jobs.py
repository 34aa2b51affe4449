"""The job worker: claims pending jobs from Postgres and runs them.

Several replicas can run workers against one database: a job is claimed with
``FOR UPDATE SKIP LOCKED``, the worker refreshes ``heartbeat_at`` while it
works, and every worker periodically sends jobs whose heartbeat is older than
``stale_after`` back to ``pending`` (or to ``failed`` after ``max_attempts``).
Indexing is idempotent (files are compared by hash), so a retried job simply
continues where the dead one stopped. A worker gets plain values (job id,
paths), never a request's Context: jobs outlive the request that started them.

A worker that finds no job to claim helps a running one: it claims a pending
embedding shard of it (:mod:`shards`), so every replica embeds one repository
together; shards whose worker died go back to pending the same way as jobs.

A git job (``source_url`` set) first fetches the commit it was pinned to when it
was queued into the git cache (every replica gets the same bytes), indexes that
checkout under the URL, and on success records the commit on the job and the
project; the next job passes it as ``since`` and unchanged files keep their hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import asyncpg

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.server import db
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import Embedder
from codebase_mcp.server.gitsource import Checkout, GitSources
from codebase_mcp.server.indexer import (
    Indexer,
    JobStopped,
    Progress,
    describe_error,
    new_worker_id,
)
from codebase_mcp.server.shards import OwnedJob, ShardRunner, ShardStopped, weights_digest

log = logging.getLogger("codebase_mcp.server.jobs")


class Worker:
    def __init__(
        self,
        pool: asyncpg.Pool | db.PoolProvider,
        embedder: Embedder,
        settings: ServerSettings,
        *,
        worker_id: str | None = None,
    ) -> None:
        """``pool``: a pool, or where to get one (the server's is created on first
        need: a worker started while Postgres is down retries at its next poll)."""
        self.pools = db.pool_provider(pool)
        self.settings = settings
        self.indexer = Indexer(self.pools, embedder, settings)
        self.git = GitSources(settings.git_config())
        self.worker_id = worker_id or new_worker_id()
        self.wakeup = asyncio.Event()
        self.current_job: uuid.UUID | None = None

    def notify(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self.wakeup.set()

    async def run_forever(self) -> None:
        while True:
            try:
                ran = await self.run_once()
            except asyncio.CancelledError:
                raise
            except CodebaseMcpError as exc:  # e.g. the database is not up yet
                log.warning("job worker %s: %s", self.worker_id, exc)
                ran = False
            except Exception:  # the loop must survive a database hiccup
                log.exception("job worker %s: unexpected error", self.worker_id)
                ran = False
            if not ran:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.settings.poll_interval)

    async def run_once(self) -> bool:
        """Recover stale jobs and shards, then claim and run a job, or else embed one
        shard of a running job. False when there was nothing to do."""
        async with db.acquire(self.pools) as conn:
            recovered = await db.recover_stale_jobs(
                conn,
                stale_after=self.settings.stale_after,
                max_attempts=self.settings.max_attempts,
            )
            for stale in recovered:
                log.warning("job %s had a dead worker: now %s", stale["id"], stale["status"])
            if recovered:
                # A dead worker may have been bulk loading without a vector index.
                for dimension in await db.missing_vector_indexes(conn):
                    log.warning("building the missing HNSW index of dimension %d", dimension)
                    await db.ensure_vector_index(
                        conn, dimension, build_memory_mb=self.settings.index_build_memory_mb
                    )
            await db.recover_stale_shards(
                conn, stale_after=self.settings.stale_after, max_attempts=self.settings.max_attempts
            )
            job = await db.claim_job(conn, self.worker_id)
        if job is not None:
            await self.run_job(job)
            return True
        shard = await self._claim_shard()
        if shard is not None:
            # After a failed shard, wait a poll before the next claim (an embedder
            # that is down would otherwise use up every shard's attempts at once).
            return await self.run_shard(shard)
        return False

    async def _claim_shard(self) -> db.Shard | None:
        """A pending shard of a running job whose owner embeds with the same weights
        as this worker's embedder (asked only when some shard waits)."""
        model = self.indexer.embedder.model
        async with db.acquire(self.pools) as conn:
            if not await db.has_pending_shards(conn, model):
                return None
        digest = await weights_digest(self.indexer.embedder)
        async with db.acquire(self.pools) as conn:
            return await db.claim_shard(conn, self.worker_id, model, model_digest=digest)

    async def run_shard(self, shard: db.Shard) -> bool:
        """Embed one shard of another worker's job. False: it failed (logged; the
        shard went back to pending, or to failed after MAX_ATTEMPTS)."""
        runner = ShardRunner(
            await self.pools(), self.indexer.embedder, self.settings, self.indexer._cache_key
        )
        progress = Progress()
        try:
            counts = await runner.run(shard, timing=progress.add_time)
            log.info(
                "worker %s: shard %d of job %s: %d embedded, %d reused (%s)",
                self.worker_id,
                shard.shard_no,
                shard.job_id,
                counts.embedded,
                counts.reused,
                progress.timings,
            )
        except ShardStopped as stopped:
            log.info("shard %d of job %s: %s", shard.shard_no, shard.job_id, stopped.reason)
        except (CodebaseMcpError, OSError, asyncpg.PostgresError) as exc:
            log.warning("shard %d of job %s failed: %s", shard.shard_no, shard.job_id, exc)
            return False
        return True

    async def run_job(self, job: dict[str, Any]) -> None:
        job_id: uuid.UUID = job["id"]
        self.current_job = job_id
        stop: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        beat = asyncio.create_task(self._heartbeat(job_id, stop))
        progress = Progress()
        # A retried job keeps the errors its earlier attempt saw.
        progress.errors = list(job.get("errors") or [])

        async def report(current: Progress) -> None:
            if stop.done():
                raise JobStopped(stop.result())
            async with db.acquire(self.pools) as conn:
                answer = await db.update_progress(
                    conn, job_id, self.worker_id, current.counters, current.errors, current.timings
                )
            if answer is None:
                raise JobStopped("lost")
            if answer:
                raise JobStopped("cancelled")

        status, error = "completed", None
        source = db.job_source(job)
        try:
            walk_root: str | None = None
            if source is not None:
                checkout = await self._fetch(job["project_id"], source, progress)
                source = db.GitSource(checkout.url, source.ref, checkout.commit)
                walk_root = str(checkout.path)
                await report(progress)
            await self.indexer.run(
                project_id=job["project_id"],
                root=job["root_path"],
                force=job["force_reindex"],
                report=report,
                progress=progress,
                walk_root=walk_root,
                job=OwnedJob(job_id, self.worker_id),
            )
        except JobStopped as stopped:
            if stopped.reason == "lost":
                log.warning("job %s was taken over by another worker", job_id)
                return
            status = "cancelled"
        except asyncio.CancelledError:
            # Server shutting down: hand the job back to the queue. Should that
            # fail (database gone), its heartbeat stops and recovery requeues it.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    async with db.acquire(self.pools) as conn:
                        await db.release_job(conn, job_id, self.worker_id)
            raise
        except Exception as exc:
            log.exception("job %s failed", job_id)
            status, error = "failed", describe_error(exc)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self.current_job = None
        async with db.acquire(self.pools) as conn:
            if status == "completed" and source is not None:
                await db.record_source(conn, job_id, job["project_id"], source)
            await db.finish_job(conn, job_id, self.worker_id, status, error)

    async def _fetch(self, project_id: str, source: db.GitSource, progress: Progress) -> Checkout:
        """The job's commit, checked out in the git cache (in a thread: git is blocking)."""
        async with db.acquire(self.pools) as conn:
            last = await db.project_source(conn, project_id)
        since = last.commit if last is not None and last.url == source.url else None
        started = time.perf_counter()
        checkout = await asyncio.to_thread(
            self.git.fetch, source.url, source.ref, commit=source.commit, since=since
        )
        progress.add_time("fetch_s", time.perf_counter() - started)
        return checkout

    async def _heartbeat(self, job_id: uuid.UUID, stop: asyncio.Future[str]) -> None:
        """Keep the claim alive during long embedding calls; notice cancels between batches."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                async with db.acquire(self.pools) as conn:
                    answer = await db.heartbeat(conn, job_id, self.worker_id)
            except (OSError, asyncpg.PostgresError):
                continue
            if answer is None and not stop.done():
                stop.set_result("lost")
            elif answer and not stop.done():
                stop.set_result("cancelled")


def progress_fields(job: dict[str, Any]) -> dict[str, Any]:
    """Lexical and semantic progress of a job, for its status.

    ``lexical_progress``: files done of the files found (chunks and their lexical
    index written: searchable); ``semantic_progress``: chunks embedded of those
    that needed a vector when the embedding phase began; ``phase``: "lexical"
    (files being written), "embedding", or "done".
    """
    total = job.get("files_total") or 0
    done = job.get("files_indexed", 0) + job.get("files_unchanged", 0) + job.get("files_skipped", 0)
    to_embed = int(job.get("chunks_to_embed") or 0)
    embedded = int(job.get("chunks_embedded") or 0)
    reused = int(job.get("chunks_reused") or 0)
    finished = job.get("status") == "completed"
    lexical = 1.0 if finished else (round(min(done / total, 1.0), 4) if total else 0.0)
    embedding = lexical >= 1.0 and (to_embed > 0 or embedded + reused > 0)
    if finished:
        semantic = 1.0
    elif to_embed:
        semantic = round(min((embedded + reused) / to_embed, 1.0), 4)
    else:
        semantic = 0.0
    phase = (
        "done"
        if job.get("status") not in ("pending", "running")
        else ("embedding" if embedding else "lexical")
    )
    return {
        "phase": phase,
        "lexical_progress": lexical,
        "semantic_progress": semantic,
        "chunks_to_embed": to_embed,
        "chunks_embedded": embedded,
        "chunks_reused": reused,
    }
