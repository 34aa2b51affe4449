"""Embedding shards: one job's vectors computed by every worker of every replica.

After a job's lexical phase its owner (the worker that claimed the job) cuts the
chunks still waiting for a vector into shards (:func:`plan_shards`, about
``SHARD_CHUNKS`` chunks each, in embedding order) and writes them to
``job_shards``; then it works on them itself. Any worker that finds no job to
claim claims a pending shard of a running job (``FOR UPDATE SKIP LOCKED``),
embeds it with its own embedder (:class:`ShardRunner`), heart-beats it and marks
it done; a shard whose heartbeat is older than ``STALE_AFTER`` goes back to
pending. The owner finishes the job (index build, statistics, status) once no
shard is pending or running. If the owner dies, its job is recovered like any
job: the worker that re-runs it keeps the shards (done ones stay done) and adds
shards for the chunks still waiting that no open shard covers.

No chunk is written twice: every write of a shard is guarded in SQL by
``embedding IS NULL`` and by the writer still holding the shard
(:func:`db.held_shard_sql`). The per-batch work (cache, embedder, write) is
:func:`embed_batch`, shared with the job-less path of the indexer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.server import db
from codebase_mcp.server.chunker import Chunk, embedding_text
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embedcache import plan_misses, reported_digest, text_sha256
from codebase_mcp.server.embeddings import Embedder

log = logging.getLogger("codebase_mcp.server.shards")

Timing = Callable[[str, float], None]  # Progress.add_time
CacheKey = Callable[[int], Awaitable[str | None]]  # dimension -> the cache's model key


# --- planning (pure) --------------------------------------------------------------------
def plan_shards(chunk_ids: Sequence[int], target: int) -> list[list[int]]:
    """Cut chunk ids (in embedding order) into consecutive shards of at most
    ``target`` ids, as few as that allows and of sizes that differ by one at most
    (no small last shard that one worker picks up alone at the end)."""
    if target < 1:
        raise ValueError("target must be at least 1")
    ids = list(chunk_ids)
    if not ids:
        return []
    count = -(-len(ids) // target)
    size, extra = divmod(len(ids), count)
    shards: list[list[int]] = []
    start = 0
    for n in range(count):
        end = start + size + (1 if n < extra else 0)
        shards.append(ids[start:end])
        start = end
    return shards


def uncovered(waiting: Sequence[int], covered: set[int]) -> list[int]:
    """The waiting chunks (in order) that no open shard holds: what a re-run shards anew."""
    return [chunk_id for chunk_id in waiting if chunk_id not in covered]


# --- one batch: cache, embedder, write (shared with the indexer's job-less path) --------
@dataclass
class BatchCounts:
    embedded: int = 0  # vectors the embedder computed and that were written
    reused: int = 0  # vectors taken from the embedding cache

    def add(self, other: BatchCounts) -> None:
        self.embedded += other.embedded
        self.reused += other.reused


async def embed_batch(
    pool: asyncpg.Pool,
    embedder: Embedder,
    batch: Sequence[db.ChunkToEmbed],
    *,
    project_id: str,
    dimension: int,
    key: str | None,
    timing: Timing,
    shard: db.Shard | None = None,
    before_write: Callable[[], Awaitable[None]] | None = None,
) -> BatchCounts:
    """Vectors for a batch of waiting chunks: first what the embedding cache holds for
    their texts (one statement), then the embedder for the rest (each distinct text
    once), whose vectors go into the cache for the next clone. ``shard``: writes
    only while holding it. ``before_write``: called once vectors are computed."""
    texts = [embedding_text(c.rel_path, Chunk(0, 0, c.content, c.symbol)) for c in batch]
    hashes = [text_sha256(t) for t in texts]
    ids = [c.id for c in batch]
    counts = BatchCounts()
    filled: set[int] = set()
    if key is not None:
        t = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            filled = await db.fill_from_cache(
                conn, project_id, dimension, key, ids, hashes, shard=shard
            )
            if shard is not None:
                await db.count_shard_vectors(conn, shard, 0, len(filled))
        timing("cache_s", time.perf_counter() - t)
        counts.reused = len(filled)
    misses = plan_misses(ids, hashes, texts, filled)
    if not misses.texts:
        return counts
    t = time.perf_counter()
    vectors = await embedder.embed_documents(misses.texts)
    timing("embed_s", time.perf_counter() - t)
    if any(len(v) != dimension for v in vectors):
        # Another model behind the same name: its vectors must not be mixed in.
        raise CodebaseMcpError(
            f"the embedder answered vectors of {len(vectors[0])} dimensions for a project "
            f"of {dimension}",
            hint="every replica must run the same embedding model (EMBEDDER_MODEL)",
        )
    if before_write is not None:
        await before_write()
    t = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        counts.embedded = await db.write_embeddings(
            conn,
            project_id,
            dimension,
            misses.chunk_ids,
            misses.vectors_for_chunks(vectors),
            misses.hashes,
            shard=shard,
        )
        if shard is not None:
            await db.count_shard_vectors(conn, shard, counts.embedded, 0)
        if key is not None:
            await db.insert_cached_embeddings(conn, key, misses.unique_hashes(), vectors)
    timing("vector_write_s", time.perf_counter() - t)
    return counts


# --- one shard ---------------------------------------------------------------------------
class ShardStopped(Exception):
    """The shard was taken over ("lost") or its job stopped ("stopped")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ShardRunner:
    """Embeds claimed shards with one embedder (a worker's, owner or helper)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        settings: ServerSettings,
        cache_key: CacheKey,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.settings = settings
        self.cache_key = cache_key
        # Per dimension, asked once per runner (the owner's lasts its job): the key
        # asks the embedder for its digest, which a shard of 128 chunks need not repeat.
        self._keys: dict[int, str | None] = {}

    async def run(
        self,
        shard: db.Shard,
        *,
        timing: Timing,
        on_batch: Callable[[BatchCounts], Awaitable[None]] | None = None,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> BatchCounts:
        """Embed the shard's chunks that still need it, batch by batch, then mark it
        done. On any error (or cancel) the shard is handed back before re-raising."""
        stop: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        beat = asyncio.create_task(self._heartbeat(shard, stop))
        totals = BatchCounts()
        try:
            if shard.dimension not in self._keys:
                self._keys[shard.dimension] = await self.cache_key(shard.dimension)
            key = self._keys[shard.dimension]
            size = self.settings.embed_batch_size
            for start in range(0, len(shard.chunk_ids), size):
                if stop.done():
                    raise ShardStopped(stop.result())
                async with self.pool.acquire() as conn:
                    batch = await db.shard_chunks(
                        conn, shard, shard.chunk_ids[start : start + size]
                    )
                counts = BatchCounts()
                if batch:
                    counts = await embed_batch(
                        self.pool,
                        self.embedder,
                        batch,
                        project_id=shard.project_id,
                        dimension=shard.dimension,
                        key=key,
                        timing=timing,
                        shard=shard,
                        before_write=before_write,
                    )
                totals.add(counts)
                async with self.pool.acquire() as conn:
                    answer = await db.beat_shard(conn, shard)
                if answer is None:
                    raise ShardStopped("lost")
                if answer:
                    raise ShardStopped("stopped")
                if on_batch is not None:
                    await on_batch(counts)
            async with self.pool.acquire() as conn:
                if not await db.finish_shard(conn, shard):
                    raise ShardStopped("lost")
        except BaseException as exc:
            # Back to pending at once (a graceful stop, an embedder error): nobody
            # waits for the stale timeout. A dead process leaves it to recovery.
            # Only a failure counts towards MAX_ATTEMPTS (a shutdown does not).
            failed = isinstance(exc, Exception) and not isinstance(exc, ShardStopped)
            limit = self.settings.max_attempts if failed else None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    async with self.pool.acquire() as conn:
                        await db.release_shard(conn, shard, limit)
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        return totals

    async def _heartbeat(self, shard: db.Shard, stop: asyncio.Future[str]) -> None:
        """Keep the claim alive during long embedding calls."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                async with self.pool.acquire() as conn:
                    answer = await db.beat_shard(conn, shard)
            except (OSError, asyncpg.PostgresError):
                continue
            if answer is None and not stop.done():
                stop.set_result("lost")
            elif answer and not stop.done():
                stop.set_result("stopped")


# --- the owner's part ---------------------------------------------------------------------
@dataclass(frozen=True)
class OwnedJob:
    """The job an indexing run belongs to, and the worker that claimed it."""

    job_id: uuid.UUID
    worker_id: str


async def write_plan(
    pool: asyncpg.Pool,
    job: OwnedJob,
    project_id: str,
    dimension: int,
    target: int,
    model_digest: str | None = None,
) -> int:
    """Shard the project's waiting chunks that no open shard of the job holds (all of
    them on a first run; on a re-run, what the dead run's shards do not cover).
    Returns the shards added. Failed shards of an earlier run are tried again.
    ``model_digest``: the owner's weights; only replicas with the same take them."""
    async with pool.acquire() as conn, conn.transaction():
        await db.retry_failed_shards(conn, job.job_id)
        waiting = await db.unembedded_chunk_ids(conn, project_id)
        opened = await db.open_shards(conn, job.job_id)
        pieces = plan_shards(uncovered(waiting, opened.chunk_ids), target)
        await db.add_shards(
            conn, job.job_id, project_id, dimension, pieces, opened.next_no, model_digest
        )
    return len(pieces)


async def weights_digest(embedder: Embedder, *, fresh: bool = False) -> str | None:
    """The digest of the weights ``embedder`` serves (None: it reports none, or its
    endpoints cannot be asked now): what replicas compare before sharing a job."""
    try:
        return await reported_digest(embedder, fresh=fresh)
    except CodebaseMcpError as exc:
        log.info("the embedder's weights digest is unknown for now: %s", exc)
        return None


async def recover_stale(pool: asyncpg.Pool, settings: ServerSettings) -> int:
    async with pool.acquire() as conn:
        recovered = await db.recover_stale_shards(
            conn, stale_after=settings.stale_after, max_attempts=settings.max_attempts
        )
    if recovered:
        log.warning("%d embedding shard(s) had a dead worker: back to pending", recovered)
    return recovered


def failed_shards_error(summary: db.ShardSummary) -> CodebaseMcpError:
    return CodebaseMcpError(
        f"{summary.failed} of {summary.total} embedding shards failed "
        f"{'' if summary.failed == 1 else 'each '}on every attempt",
        hint="the server logs say why (often the embedder); the lexical index is complete, "
        "and the next job of the project embeds what is left",
    )
