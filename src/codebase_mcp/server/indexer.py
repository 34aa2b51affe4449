"""One indexing run: walk, compare content hashes, chunk, embed, write, count.

Work is done in batches of files so memory stays bounded and progress shows:
counters go to the job row after every batch (which is also the heartbeat
and where a cancel request is noticed). File reading, hashing and parsing
run in a worker thread so searches keep being answered while indexing.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.server import db
from codebase_mcp.server.chunker import (
    Chunk,
    Chunker,
    embedding_text,
    identifier_words,
    language_for,
)
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import Embedder
from codebase_mcp.server.walker import FileEntry, walk_repository

MAX_ERRORS_KEPT = 100


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


def prepare_files(
    entries: list[FileEntry], known: dict[str, str], force: bool, chunker: Chunker
) -> Outcome:
    """Read, hash and chunk (runs in a thread). ``known``: rel_path -> indexed hash."""
    outcome = Outcome()
    for entry in entries:
        try:
            with open(entry.abs_path, "rb") as handle:
                data = handle.read()
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
        outcome.prepared.append(Prepared(entry, digest, language_for(entry.rel_path), chunks))
    return outcome


def _extension(rel_path: str) -> str:
    name = rel_path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""


ProgressSink = Callable[[Progress], Awaitable[None]]


class Indexer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        embedder: Embedder,
        settings: ServerSettings,
        chunker: Chunker | None = None,
    ) -> None:
        self.pool = pool
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
    ) -> Progress:
        """Index ``root`` (container path) into ``project_id``; ``report`` may raise JobStopped."""
        progress = progress or Progress()
        counters = progress.counters
        started = time.perf_counter()
        model = self.embedder.model

        async with self.pool.acquire() as conn:
            project = await db.get_project(conn, project_id)
        if project is not None and project.embedding_model != model and not force:
            raise db.model_mismatch(project, model, None)

        t = time.perf_counter()
        walk = await asyncio.to_thread(
            walk_repository, root, max_file_bytes=self.settings.max_file_bytes
        )
        progress.add_time("walk_s", time.perf_counter() - t)
        counters["files_total"] = len(walk.files) + len(walk.skipped)
        counters["files_skipped"] = len(walk.skipped)
        for rel_path, reason in walk.skipped.items():
            if reason.startswith("unreadable"):
                progress.error(rel_path, reason)

        async with self.pool.acquire() as conn:
            if force:
                await conn.execute(
                    "DELETE FROM files WHERE project_id = $1 AND repo_root = $2", project_id, root
                )
            indexed = await db.file_hashes(conn, project_id, root)
            present = {f.rel_path for f in walk.files}
            gone = [file_id for rel, (file_id, _) in indexed.items() if rel not in present]
            await db.delete_files(conn, gone)
        counters["files_deleted"] = len(gone)
        known = {rel: digest for rel, (_, digest) in indexed.items()}
        await report(progress)

        batch_files = self.settings.write_batch_files
        chunk_budget = self.settings.embed_batch_size * 4
        pending: list[Prepared] = []
        pending_chunks = 0
        replace_model = force
        for start in range(0, len(walk.files), batch_files):
            entries = walk.files[start : start + batch_files]
            t = time.perf_counter()
            outcome = await asyncio.to_thread(prepare_files, entries, known, force, self.chunker)
            progress.add_time("read_chunk_s", time.perf_counter() - t)
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
                    await self._flush(project_id, root, pending, progress, replace_model)
                    replace_model = False
                    pending, pending_chunks = [], 0
            await report(progress)
        if pending:
            await report(progress)
            await self._flush(project_id, root, pending, progress, replace_model)
        progress.add_time("total_s", time.perf_counter() - started)
        await report(progress)
        return progress

    async def _flush(
        self,
        project_id: str,
        root: str,
        batch: list[Prepared],
        progress: Progress,
        replace_model: bool,
    ) -> None:
        texts = [embedding_text(p.entry.rel_path, c) for p in batch for c in p.chunks]
        t = time.perf_counter()
        vectors = await self.embedder.embed_documents(texts) if texts else []
        progress.add_time("embed_s", time.perf_counter() - t)

        t = time.perf_counter()
        files: list[db.FileRow] = []
        records: list[tuple[int, tuple[Any, ...]]] = []
        position = 0
        dimension = len(vectors[0]) if vectors else None
        for index, item in enumerate(batch):
            rel = item.entry.rel_path
            files.append(
                db.FileRow(
                    path=item.entry.abs_path,
                    rel_path=rel,
                    content_hash=item.content_hash,
                    language=item.language,
                    size_bytes=item.entry.size,
                    chunk_count=len(item.chunks),
                )
            )
            extension = _extension(rel)
            for chunk in item.chunks:
                vector = vectors[position]
                position += 1
                search_text = f"{rel.replace('/', ' ')} {identifier_words(chunk.content)}"
                records.append(
                    (
                        index,
                        (
                            item.entry.abs_path,
                            rel,
                            extension,
                            item.language,
                            chunk.start_line,
                            chunk.end_line,
                            chunk.symbol,
                            chunk.content,
                            search_text[:100_000],
                            len(vector),
                            vector,
                        ),
                    )
                )
        async with self.pool.acquire() as conn:
            if dimension is not None:
                async with conn.transaction():
                    await db.ensure_project(
                        conn, project_id, self.embedder.model, dimension, replace=replace_model
                    )
            elif await db.get_project(conn, project_id) is None:
                # Nothing to embed in this batch and no project yet: files wait for one.
                progress.counters["files_scanned"] += len(batch)
                progress.counters["files_indexed"] += len(batch)
                return
            await db.write_files(conn, project_id, root, files, records)
        progress.add_time("write_s", time.perf_counter() - t)
        progress.counters["files_scanned"] += len(batch)
        progress.counters["files_indexed"] += len(batch)
        progress.counters["chunks_created"] += len(records)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, CodebaseMcpError):
        return f"{exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def new_worker_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
