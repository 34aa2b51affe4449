"""One indexing run: walk, compare content hashes, chunk, embed, write, count.

Work is done in batches of files so memory stays bounded and progress shows:
counters go to the job row after every batch (which is also the heartbeat
and where a cancel request is noticed). File reading, hashing and parsing
run in a worker thread so searches keep being answered while indexing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import stat
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.server import db
from codebase_mcp.server.chunker import (
    Chunk,
    Chunker,
    embedding_text,
    language_for,
    lexical_text,
)
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embedcache import cache_key, reported_digest, text_sha256
from codebase_mcp.server.embeddings import Embedder
from codebase_mcp.server.shards import (
    BatchCounts,
    OwnedJob,
    ShardRunner,
    ShardStopped,
    embed_batch,
    failed_shards_error,
    recover_stale,
    weights_digest,
    write_plan,
)
from codebase_mcp.server.walker import FileEntry, walk_repository

MAX_ERRORS_KEPT = 100
FIRST_BATCH_FILES = 16  # files in phase 1's first read batch (see batch_bounds)
log = logging.getLogger("codebase_mcp.server.indexer")


class JobStopped(Exception):
    """The job was cancelled, or another worker took it over."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "cancelled" | "lost"


@dataclass
class Prepared:
    entry: FileEntry
    content_hash: str
    language: str | None
    chunks: list[Chunk]
    # Per chunk: (search_text, sha256 of the embedding text), computed in the worker
    # thread with the chunks: on the event loop they held up searches and writes.
    derived: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Outcome:
    prepared: list[Prepared] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # rel_path, reason


@dataclass
class Progress:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(db.JOB_COUNTERS, 0))
    errors: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, name: str, seconds: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 4)

    def error(self, path: str, reason: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"path": path, "error": reason})


def read_regular_file(path: str) -> bytes:
    """The bytes of ``path`` if it is (still) a regular file, else OSError.

    The walk saw a regular file; by now it may be a symlink (O_NOFOLLOW refuses
    it) or a FIFO (O_NONBLOCK keeps the open from hanging, fstat refuses it).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return handle.read()


def prepare_files(
    entries: list[FileEntry], known: dict[str, str], force: bool, chunker: Chunker
) -> Outcome:
    """Read, hash and chunk (runs in a thread). ``known``: rel_path -> indexed hash."""
    outcome = Outcome()
    for entry in entries:
        try:
            data = read_regular_file(entry.abs_path)
        except OSError as exc:
            outcome.failed.append((entry.rel_path, f"unreadable: {exc.strerror or exc}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if not force and known.get(entry.rel_path) == digest:
            outcome.unchanged += 1
            continue
        if b"\0" in data[:8192]:
            outcome.failed.append((entry.rel_path, "binary (NUL bytes)"))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            outcome.failed.append((entry.rel_path, "not UTF-8 text"))
            continue
        chunks = chunker.chunk(entry.rel_path, text)
        derived = [
            (
                lexical_text(entry.rel_path, c.symbol, c.content)[:MAX_SEARCH_TEXT],
                text_sha256(embedding_text(entry.rel_path, c)),
            )
            for c in chunks
        ]
        language = language_for(entry.rel_path)
        outcome.prepared.append(Prepared(entry, digest, language, chunks, derived))
    return outcome


MAX_SEARCH_TEXT = 100_000  # characters of a chunk's lexical text that are indexed


def write_order(files: list[FileEntry]) -> list[FileEntry]:
    """The order phase 1 reads and writes files in: source code first, then docs,
    then tests and examples (``embed_rank``), walk order within each. Most searches
    ask for library code, so the first seconds of a job make it searchable."""
    return sorted(files, key=lambda f: embed_rank(f.rel_path, language_for(f.rel_path)))


def batch_bounds(total: int, largest: int, first: int = FIRST_BATCH_FILES) -> list[tuple[int, int]]:
    """(start, end) of the file batches phase 1 reads: small at first, so the first
    write lands within a second or two, then doubling up to ``largest``."""
    bounds: list[tuple[int, int]] = []
    start, size = 0, max(1, min(first, largest))
    while start < total:
        end = min(start + size, total)
        bounds.append((start, end))
        start, size = end, min(size * 2, largest)
    return bounds


def _extension(rel_path: str) -> str:
    name = rel_path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""


ProgressSink = Callable[[Progress], Awaitable[None]]

ANALYZE_AFTER_CHUNKS = 1000  # a job that wrote this many refreshes the statistics
OWNER_WAIT = 0.25  # seconds between an owner's looks at the shards other workers hold


@dataclass
class BulkLoad:
    """Whether this job loads without the HNSW index of its dimension (see
    :func:`should_defer_index`), and what it has seen so far to decide."""

    first_index: bool  # nothing of this repository was indexed (or force_reindex)
    total_bytes: int  # of the files the walk found
    bytes_prepared: int = 0
    chunks_prepared: int = 0
    decided: bool = False
    dimension: int | None = None
    lock_conn: Any = None  # the pool connection holding the deferral's advisory lock

    def remaining_chunks(self, written: int) -> int:
        """Chunks still to write, extrapolated from the bytes per chunk seen so far."""
        if not self.chunks_prepared:
            return 0
        per_chunk = max(self.bytes_prepared, 1) / self.chunks_prepared
        unread = max(self.total_bytes - self.bytes_prepared, 0)
        return int(unread / per_chunk) + max(self.chunks_prepared - written, 0)


def should_defer_index(
    *,
    min_chunks: int,
    first_index: bool,
    remaining_chunks: int,
    other_rows: int,
    embed_s_per_chunk: float,
    write_s_per_chunk: float,
) -> bool:
    """Load without the HNSW index and build it at the end?

    Only for the first index of a repository with at least ``min_chunks`` still
    to write, when writing (live HNSW inserts) is slower than embedding (with a
    CPU embedder it is not, and dropping the index would only slow searches
    down), and when the rows of other projects in this dimension are no more
    than what this job adds: their searches scan exactly while the index is
    gone, and the build at the end re-reads them.
    """
    return (
        min_chunks > 0
        and first_index
        and remaining_chunks >= min_chunks
        and other_rows <= remaining_chunks
        and write_s_per_chunk > embed_s_per_chunk
    )


class Indexer:
    last_cache_gc: ClassVar[float | None] = None  # monotonic time of this process's last GC

    def __init__(
        self,
        pool: asyncpg.Pool | db.PoolProvider,
        embedder: Embedder,
        settings: ServerSettings,
        chunker: Chunker | None = None,
    ) -> None:
        self.pools = db.pool_provider(pool)
        self.embedder = embedder
        self.settings = settings
        self.chunker = chunker or Chunker(
            max_chars=settings.max_chunk_chars, window_lines=settings.chunk_window_lines
        )

    async def run(
        self,
        *,
        project_id: str,
        root: str,
        force: bool,
        report: ProgressSink,
        progress: Progress | None = None,
        walk_root: str | None = None,
        job: OwnedJob | None = None,
    ) -> Progress:
        """Index ``root`` (container path) into ``project_id``; ``report`` may raise JobStopped.

        ``job``: the job this run is (and its worker): the embedding phase is then
        split into shards that other workers help with (see :mod:`shards`).

        ``walk_root``: read the files from this directory instead, and store them
        under ``root`` (a git source: ``root`` is its URL, the files are a checkout
        of one commit; keyed by the URL, unchanged files keep their hash across commits).

        Two phases: every changed file is read, chunked and written with its
        lexical index (searchable from the first batch), then the chunks still
        without a vector are embedded in batches (``embed_rank`` order). A job
        stopped during the second phase leaves a searchable lexical index; the
        next job of the project embeds what is left.
        """
        progress = progress or Progress()
        counters = progress.counters
        started = time.perf_counter()
        model = self.embedder.model

        async with db.acquire(self.pools) as conn:
            project = await db.get_project(conn, project_id)
        if project is not None and project.embedding_model != model and not force:
            raise db.model_mismatch(project, model, None)

        t = time.perf_counter()
        walk = await asyncio.to_thread(
            walk_repository, walk_root or root, max_file_bytes=self.settings.max_file_bytes
        )
        progress.add_time("walk_s", time.perf_counter() - t)
        counters["files_total"] = len(walk.files) + len(walk.skipped)
        counters["files_skipped"] = len(walk.skipped)
        for rel_path, reason in walk.skipped.items():
            if reason.startswith("unreadable"):
                progress.error(rel_path, reason)

        dimension = await self._dimension(project)
        async with db.acquire(self.pools) as conn:
            if force:
                await db.delete_repository(conn, project_id, root)
            elif project is not None:
                stats = await db.get_project_stats(conn, project_id)
                if not stats.lexical_ready:  # indexed before the lexical index existed
                    t = time.perf_counter()
                    await db.rebuild_lexical(conn, project_id)
                    progress.add_time("lexical_rebuild_s", time.perf_counter() - t)
            indexed = await db.file_hashes(conn, project_id, root)
            present = {f.rel_path for f in walk.files}
            gone = [file_id for rel, (file_id, _) in indexed.items() if rel not in present]
            await db.delete_files(conn, project_id, gone)
        counters["files_deleted"] = len(gone)
        known = {rel: digest for rel, (_, digest) in indexed.items()}
        await report(progress)

        bulk = BulkLoad(first_index=not indexed, total_bytes=sum(f.size for f in walk.files))
        try:
            await self._index_files(
                project_id,
                root,
                force,
                write_order(walk.files),
                known,
                report,
                progress,
                dimension,
                keyed=walk_root is not None,
            )
            progress.add_time("lexical_ready_s", time.perf_counter() - started)
            await self._embed_pending(project_id, dimension, report, progress, bulk, job)
        except asyncio.CancelledError:
            # Shutting down: no index build now; the next job (or a worker that
            # recovers this one) builds it. Closing the connection frees the lock too.
            with contextlib.suppress(Exception):
                await self._release_bulk(bulk)
            raise
        except Exception:
            try:
                await self._finish(project_id, bulk, progress)
            except Exception:  # the job's own error is the one to report
                log.exception("project %s: rebuilding the vector index failed", project_id)
            raise
        await self._finish(project_id, bulk, progress)
        await self._collect_cache(progress)
        progress.add_time("total_s", time.perf_counter() - started)
        await report(progress)
        return progress

    async def _dimension(self, project: db.Project | None) -> int:
        """The vector length chunks are written with: the project's (same model,
        also under force_reindex), what these weights answered before (their
        digest known, embedding cache on), or what the embedder answers for one probe."""
        if project is not None and project.embedding_model == self.embedder.model:
            return int(project.embedding_dim)
        model = self.embedder.model
        digest = await self._digest()
        if digest is not None:
            async with db.acquire(self.pools) as conn:
                known = await db.known_dimension(conn, model, digest)
            if known is not None:
                return known
        (vector,) = await self.embedder.embed_documents([DIMENSION_PROBE])
        if digest is not None:
            async with db.acquire(self.pools) as conn:
                await db.remember_dimension(conn, model, digest, len(vector))
        return len(vector)

    async def _digest(self) -> str | None:
        """The digest of the embedder's weights when the cache may use it (else None)."""
        if not self.settings.embedding_cache:
            return None
        return await reported_digest(self.embedder, fresh=True)

    async def _index_files(
        self,
        project_id: str,
        root: str,
        force: bool,
        files: list[FileEntry],
        known: dict[str, str],
        report: ProgressSink,
        progress: Progress,
        dimension: int,
        *,
        keyed: bool = False,
    ) -> None:
        counters = progress.counters
        chunk_budget = self.settings.embed_batch_size * 4
        pending: list[Prepared] = []
        pending_chunks = 0
        replace_model = force
        batches = [files[a:b] for a, b in batch_bounds(len(files), self.settings.write_batch_files)]

        def prepare(entries: list[FileEntry]) -> asyncio.Task[Outcome]:
            return asyncio.create_task(
                asyncio.to_thread(prepare_files, entries, known, force, self.chunker)
            )

        # Read and chunk the next batch in a thread while this one is written.
        ahead = prepare(batches[0]) if batches else None
        try:
            for number in range(len(batches)):
                t = time.perf_counter()
                assert ahead is not None
                outcome = await ahead
                progress.add_time("read_chunk_wait_s", time.perf_counter() - t)
                ahead = prepare(batches[number + 1]) if number + 1 < len(batches) else None
                counters["files_unchanged"] += outcome.unchanged
                counters["files_scanned"] += outcome.unchanged + len(outcome.failed)
                counters["files_skipped"] += len(outcome.failed)
                for rel_path, reason in outcome.failed:
                    progress.error(rel_path, reason)
                for item in outcome.prepared:
                    pending.append(item)
                    pending_chunks += len(item.chunks)
                    if pending_chunks >= chunk_budget:
                        # Report first: a cancel (or delete_project) must stop us before
                        # the next write can re-create a deleted project.
                        await report(progress)
                        await self._write(
                            project_id, root, pending, progress, replace_model, dimension, keyed
                        )
                        replace_model = False
                        pending, pending_chunks = [], 0
                await report(progress)
                if pending and not counters["chunks_created"]:
                    # The first batch is written at once: something to search, early.
                    await self._write(
                        project_id, root, pending, progress, replace_model, dimension, keyed
                    )
                    replace_model = False
                    pending, pending_chunks = [], 0
        finally:
            if ahead is not None:  # stopped (cancel, error): drop the batch read ahead
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead
        if pending:
            await report(progress)
            await self._write(project_id, root, pending, progress, replace_model, dimension, keyed)

    async def _cache_key(self, dimension: int) -> str | None:
        """The embedding cache's model key, or None: cache off (the setting), or the
        embedder reports no digest of its weights (see :mod:`embedcache`)."""
        if not self.settings.embedding_cache:
            return None
        key = cache_key(self.embedder.model, dimension, await self._digest())
        if key is None:
            log.info(
                "embedding cache not used: the embedder reports no digest for %s",
                self.embedder.model,
            )
        return key

    async def _embed_pending(
        self,
        project_id: str,
        dimension: int,
        report: ProgressSink,
        progress: Progress,
        bulk: BulkLoad,
        job: OwnedJob | None = None,
    ) -> None:
        """Give the project's chunks that have no vector yet one, a batch at a time
        (small batches: progress, cancels and the heartbeat move every few seconds).

        Each batch first takes what the embedding cache holds for its texts (one
        statement, ``chunks_reused``); only the rest goes to the embedder
        (``chunks_embedded``, each distinct text once), and its vectors go into
        the cache for the next clone (:func:`shards.embed_batch`). A run that is a
        job shares the work out in shards (:meth:`_embed_shards`).
        """
        counters = progress.counters
        async with db.acquire(self.pools) as conn:
            if await db.get_project(conn, project_id) is None:
                return  # nothing was written (an empty repository)
            if job is None:
                counters["chunks_to_embed"] = await db.count_unembedded(conn, project_id)
        if job is not None:
            await self._embed_shards(job, project_id, dimension, report, progress, bulk)
            return
        counters["chunks_embedded"] = 0
        counters["chunks_reused"] = 0
        await report(progress)
        key = await self._cache_key(dimension) if counters["chunks_to_embed"] else None
        batch_size = self.settings.embed_batch_size
        while counters["chunks_embedded"] + counters["chunks_reused"] < counters["chunks_to_embed"]:
            async with db.acquire(self.pools) as conn:
                batch = await db.next_to_embed(conn, project_id, batch_size)
            if not batch:
                break
            counts = await embed_batch(
                await self.pools(),
                self.embedder,
                batch,
                project_id=project_id,
                dimension=dimension,
                key=key,
                timing=progress.add_time,
                before_write=lambda: self._maybe_defer_index(project_id, dimension, progress, bulk),
            )
            counters["chunks_embedded"] += counts.embedded
            counters["chunks_reused"] += counts.reused
            await report(progress)
            if not counts.embedded and not counts.reused:  # rows changed under us: stop
                break

    async def _embed_shards(
        self,
        job: OwnedJob,
        project_id: str,
        dimension: int,
        report: ProgressSink,
        progress: Progress,
        bulk: BulkLoad,
    ) -> None:
        """The owner's embedding phase: shard what waits, work on the job's shards
        like any worker, then wait for the shards others hold (taking back those
        whose worker died) until none is pending or running. The job's counters
        are the sums over its shards, whoever embedded them."""
        counters = progress.counters
        settings = self.settings
        # Replicas help only if their embedder serves these very weights.
        digest = await weights_digest(self.embedder, fresh=True)
        await write_plan(
            await self.pools(), job, project_id, dimension, settings.shard_chunks, digest
        )
        # What this worker itself wrote: the bulk-load decision measures its own writes.
        own = Progress(timings=progress.timings)
        runner = ShardRunner(await self.pools(), self.embedder, settings, self._cache_key)

        async def sync() -> db.ShardSummary:
            async with db.acquire(self.pools) as conn:
                summary = await db.shard_summary(conn, job.job_id)
            counters["chunks_to_embed"] = own.counters["chunks_to_embed"] = summary.chunks
            counters["chunks_embedded"] = summary.chunks_embedded
            counters["chunks_reused"] = summary.chunks_reused
            await report(progress)  # a cancel stops the owner here
            return summary

        async def on_batch(counts: BatchCounts) -> None:
            own.counters["chunks_embedded"] += counts.embedded
            own.counters["chunks_reused"] += counts.reused
            await sync()

        summary = await sync()
        while True:
            async with db.acquire(self.pools) as conn:
                shard = await db.claim_shard(
                    conn, job.worker_id, self.embedder.model, job.job_id, digest
                )
            if shard is not None:
                try:
                    await runner.run(
                        shard,
                        timing=progress.add_time,
                        on_batch=on_batch,
                        before_write=lambda: self._maybe_defer_index(
                            project_id, dimension, own, bulk
                        ),
                    )
                except ShardStopped:
                    await sync()  # raises JobStopped if the job was cancelled or lost
                continue
            summary = await sync()
            if not summary.open:
                break
            await recover_stale(await self.pools(), settings)
            # Short: the job is done the moment the last shard is (a watch's
            # one-shard sync job must not wait a whole poll for a helper).
            await asyncio.sleep(min(settings.poll_interval, OWNER_WAIT))
        if summary.failed:
            raise failed_shards_error(summary)

    async def _maybe_defer_index(
        self, project_id: str, dimension: int, progress: Progress, bulk: BulkLoad
    ) -> None:
        """Decide once, at the second vector write (the first one measured a live insert)."""
        written = progress.counters["chunks_embedded"]  # by the embedder, not the cache
        if bulk.decided or not written or dimension > db.MAX_INDEXED_DIMENSION:
            return
        bulk.decided = True
        remaining = (
            progress.counters["chunks_to_embed"] - written - progress.counters["chunks_reused"]
        )
        if not (self.settings.defer_index_min_chunks and bulk.first_index):
            return
        async with db.acquire(self.pools) as conn:
            other_rows = await db.dimension_rows(conn, dimension) - written
        timings = progress.timings
        if not should_defer_index(
            min_chunks=self.settings.defer_index_min_chunks,
            first_index=bulk.first_index,
            remaining_chunks=remaining,
            other_rows=other_rows,
            embed_s_per_chunk=timings.get("embed_s", 0.0)
            / (written + self.settings.embed_batch_size),
            write_s_per_chunk=timings.get("vector_write_s", 0.0) / written,
        ):
            return
        pool = await self.pools()
        conn = await pool.acquire()
        try:
            deferred = await db.defer_vector_index(conn, dimension)
        except BaseException:
            await pool.release(conn)
            raise
        if not deferred:
            await pool.release(conn)
            return
        bulk.dimension, bulk.lock_conn = dimension, conn
        log.info(
            "project %s: embedding about %d chunks without the HNSW index (built at the end)",
            project_id,
            remaining,
        )

    async def _release_bulk(self, bulk: BulkLoad) -> None:
        conn, bulk.lock_conn = bulk.lock_conn, None
        if conn is None or bulk.dimension is None:
            return
        try:
            await db.end_vector_index_deferral(conn, bulk.dimension)
        finally:
            await (await self.pools()).release(conn)

    async def _finish(self, project_id: str, bulk: BulkLoad, progress: Progress) -> None:
        """Build the index a bulk load dropped (or one a dead bulk load left
        missing), then refresh the statistics after a big write (the planner
        reads them; VACUUM marks the postings' pages all-visible, so BM25 reads
        them by index-only scans)."""
        deferred = bulk.dimension
        await self._release_bulk(bulk)
        async with db.acquire(self.pools) as conn:
            project = await db.get_project(conn, project_id)
            # The deferred dimension even if the project is gone (deleted meanwhile).
            dimensions = {deferred} if deferred else set()
            if project is not None:
                dimensions.add(project.embedding_dim)
            for dimension in sorted(dimensions):
                t = time.perf_counter()
                built = await db.ensure_vector_index(
                    conn, dimension, build_memory_mb=self.settings.index_build_memory_mb
                )
                if built:
                    progress.add_time("vector_index_s", time.perf_counter() - t)
            counters = progress.counters
            written = (
                counters["chunks_created"] + counters["chunks_embedded"] + counters["chunks_reused"]
            )
            if project is not None and written >= ANALYZE_AFTER_CHUNKS:
                t = time.perf_counter()
                await db.analyze_after_index(conn)
                progress.add_time("analyze_s", time.perf_counter() - t)

    async def _collect_cache(self, progress: Progress) -> None:
        """Garbage-collect the embedding cache, at most every
        ``embedding_cache_gc_interval`` seconds per server process."""
        now = time.monotonic()
        last = Indexer.last_cache_gc
        if last is not None and now - last < self.settings.embedding_cache_gc_interval:
            return
        Indexer.last_cache_gc = now
        t = time.perf_counter()
        async with db.acquire(self.pools) as conn:
            deleted = await db.gc_embedding_cache(conn, self.settings.embedding_cache_grace)
        progress.add_time("cache_gc_s", time.perf_counter() - t)
        if deleted:
            log.info("embedding cache: %d unused entries removed", deleted)

    async def _write(
        self,
        project_id: str,
        root: str,
        batch: list[Prepared],
        progress: Progress,
        replace_model: bool,
        dimension: int,
        keyed: bool = False,
    ) -> None:
        """Write files and chunks (no vectors yet) with their lexical index.

        ``keyed``: the files were read elsewhere (a git checkout); their path is
        stored as ``root/rel_path`` so it stays the same from commit to commit."""
        t = time.perf_counter()
        files: list[db.FileRow] = []
        records: list[tuple[int, tuple[Any, ...]]] = []
        for index, item in enumerate(batch):
            rel = item.entry.rel_path
            path = f"{root}/{rel}" if keyed else item.entry.abs_path
            files.append(
                db.FileRow(
                    path=path,
                    rel_path=rel,
                    content_hash=item.content_hash,
                    language=item.language,
                    size_bytes=item.entry.size,
                    chunk_count=len(item.chunks),
                )
            )
            extension = _extension(rel)
            rank = embed_rank(rel, item.language)
            for chunk, (search_text, text_hash) in zip(item.chunks, item.derived, strict=True):
                records.append(
                    (
                        index,
                        (
                            path,
                            rel,
                            extension,
                            item.language,
                            chunk.start_line,
                            chunk.end_line,
                            chunk.symbol,
                            chunk.content,
                            search_text,
                            dimension,
                            rank,
                            text_hash,
                        ),
                    )
                )
        async with db.acquire(self.pools) as conn:
            async with conn.transaction():
                await db.ensure_project(
                    conn, project_id, self.embedder.model, dimension, replace=replace_model
                )
            await db.write_files(conn, project_id, root, files, records)
        progress.add_time("write_s", time.perf_counter() - t)
        progress.counters["files_scanned"] += len(batch)
        progress.counters["files_indexed"] += len(batch)
        progress.counters["chunks_created"] += len(records)


# What the embedder is asked once to learn the vector length of a new project.
DIMENSION_PROBE = "codebase-mcp dimension probe"

_TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|spec|specs|__tests__|testdata|fixtures?|examples?|benchmarks?|"
    r"bench|e2e|vendor|third_party)(/|$)|(^|/)(test_[^/]*|[^/]*_test\.[a-z]+|"
    r"[^/]*\.(test|spec)\.[a-z]+|conftest\.py)$"
)
_CODE_LANGUAGES = frozenset(
    {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "csharp",
     "ruby", "php", "kotlin", "swift", "scala", "shell", "sql"}
)  # fmt: skip


def embed_rank(rel_path: str, language: str | None) -> int:
    """Embedding order: 0 source code, 1 docs and other text, 2 tests, examples,
    benchmarks and vendored code. Most searches ask for library code (in the
    eval, the answer is a source file for most queries): its vectors come first,
    while tests, which are many and mostly repeat what they test, come last."""
    if _TEST_PATH.search(rel_path.lower()):
        return 2
    return 0 if language in _CODE_LANGUAGES else 1


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, CodebaseMcpError):
        return f"{exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def new_worker_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
