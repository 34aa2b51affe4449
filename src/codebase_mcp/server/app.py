"""The FastMCP application: tools, lifespan (pool, embedder, workers) and ``/health``.

Tools get their dependencies from :class:`ServerState`, filled by the lifespan;
nothing request-scoped (no Context) ever reaches the job workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthProvider
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from codebase_mcp.errors import CodebaseMcpError, InvalidToolInput, NotFound
from codebase_mcp.server import db, watchstore
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import Embedder, embedder_from_settings
from codebase_mcp.server.jobs import Worker, progress_fields
from codebase_mcp.server.paths import PathMapper
from codebase_mcp.server.search import (
    Filters,
    TermStatsCache,
    embed_query_within,
    normalise_file_type,
    search,
    validate_query,
)
from codebase_mcp.server.toolguard import RejectUnusableArguments
from codebase_mcp.server.watch import WatchManager
from codebase_mcp.settings import DatabaseSettings, EmbedderSettings

log = logging.getLogger("codebase_mcp.server")
P = ParamSpec("P")
R = TypeVar("R")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class ServerState:
    """Everything the tools share; created once per process by the lifespan."""

    def __init__(
        self,
        settings: ServerSettings,
        database: DatabaseSettings,
        embedder: Embedder,
    ) -> None:
        self.settings = settings
        self.database = database
        self.embedder = embedder
        self.mapper = PathMapper(settings.root_mappings())
        self.term_stats = TermStatsCache()
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self.workers: list[Worker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.watches = WatchManager(
            self.pool,
            embedding_model=embedder.model,
            notify=self.notify_workers,
            debounce_ms=settings.watch_debounce_ms,
            reconcile_interval=settings.watch_reconcile_interval,
            force_polling=settings.watch_force_polling,
        )

    async def pool(self) -> asyncpg.Pool:
        """The pool, created on first need (idempotent; retried if Postgres was down)."""
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                try:
                    self._pool = await db.create_pool(
                        self.database.dsn(),
                        min_size=self.settings.pool_min_size,
                        max_size=self.settings.pool_max_size,
                    )
                except (OSError, asyncpg.PostgresError, ValueError) as exc:
                    raise CodebaseMcpError(
                        f"cannot connect to the database {self.database.redacted()}: {exc}",
                        hint="check that Postgres is up and migrated (codebase-mcp init)",
                    ) from exc
        return self._pool

    async def start(self) -> None:
        with contextlib.suppress(CodebaseMcpError):
            await self.pool()  # workers retry on their own if this failed
        for _ in range(self.settings.workers):
            worker = _LazyPoolWorker(self)
            self.workers.append(worker)
            self._tasks.append(asyncio.create_task(worker.run_forever()))
        self._tasks.append(asyncio.create_task(self.watches.run_forever()))

    async def stop(self) -> None:
        await self.watches.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        aclose = getattr(self.embedder, "aclose", None)
        if aclose is not None:
            await aclose()

    def notify_workers(self) -> None:
        for worker in self.workers:
            worker.notify()


class _LazyPoolWorker(Worker):
    """A worker that waits for the pool instead of needing it at construction."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        super().__init__(None, state.embedder, state.settings)  # type: ignore[arg-type]

    async def run_once(self) -> bool:
        pool = await self.state.pool()
        self.pool = pool
        self.indexer.pool = pool
        return await super().run_once()


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our errors into MCP tool errors with the message and what to do."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except CodebaseMcpError as exc:
            text = exc.message + (f". Hint: {exc.hint}" if exc.hint else "")
            raise ToolError(text) from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(
                f"the database failed: {type(exc).__name__}: {exc}. "
                "Hint: check the server's /health and its log"
            ) from exc

    return wrapper


def _parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id).strip())
    except ValueError:
        raise InvalidToolInput(
            f"job_id {job_id!r} is not a job id",
            hint="use the job_id that start_indexing_background returned",
        ) from None


def _check_project_id(project_id: str) -> str:
    if not isinstance(project_id, str) or not _PROJECT_ID.match(project_id):
        raise InvalidToolInput(
            f"project_id {project_id!r} is not valid",
            hint="use letters, digits and . _ : - (at most 128 characters)",
        )
    return project_id


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_view(job: dict[str, Any], mapper: PathMapper) -> dict[str, Any]:
    total = job["files_total"]
    # Skipped counts both files the walk refused and files that failed to read.
    done = job["files_indexed"] + job["files_unchanged"] + job["files_skipped"]
    if job["status"] == "completed":
        fraction = 1.0
    else:
        fraction = round(min(done / total, 1.0), 4) if total else 0.0
    return {
        "job_id": str(job["id"]),
        "project_id": job["project_id"],
        "repo_path": job["repo_path"],
        "status": job["status"],
        "progress": fraction,
        "files_total": total,
        "files_scanned": job["files_scanned"],
        "files_indexed": job["files_indexed"],
        "files_unchanged": job["files_unchanged"],
        "files_skipped": job["files_skipped"],
        "files_deleted": job["files_deleted"],
        "chunks_created": job["chunks_created"],
        "force_reindex": job["force_reindex"],
        "embedding_model": job["embedding_model"],
        "attempts": job["attempts"],
        "cancel_requested": job["cancel_requested"],
        "error": job["error"],
        "errors": [
            {"path": mapper.to_host(f"{job['root_path']}/{e['path']}"), "error": e["error"]}
            for e in job["errors"]
        ],
        "timings": job["timings"],
        **progress_fields(job),
        "created_at": _iso(job["created_at"]),
        "started_at": _iso(job["started_at"]),
        "finished_at": _iso(job["finished_at"]),
    }


def _read_context(hits: list[dict[str, Any]], container_paths: list[str], lines: int) -> None:
    """Add a few lines around each hit, if the file on disk still matches the index."""
    cache: dict[str, list[str] | None] = {}
    for hit, path in zip(hits, container_paths, strict=True):
        if path not in cache:
            try:
                with open(path, encoding="utf-8") as handle:
                    cache[path] = handle.read().splitlines()
            except (OSError, UnicodeDecodeError):
                cache[path] = None
        text = cache[path]
        start, end = hit["start_line"], hit["end_line"]
        if text is None or end > len(text) or text[start - 1].strip() not in hit["content"]:
            continue
        hit["context_before"] = "\n".join(text[max(0, start - 1 - lines) : start - 1])
        hit["context_after"] = "\n".join(text[end : end + lines])


def create_server(state: ServerState, *, auth: AuthProvider | None = None) -> FastMCP[Any]:
    """The MCP server; ``auth`` (codebase_mcp.server.security) guards /mcp over HTTP."""

    @contextlib.asynccontextmanager
    async def lifespan(server: FastMCP[Any]) -> AsyncIterator[dict[str, Any]]:
        await state.start()
        try:
            yield {"state": state}
        finally:
            await state.stop()

    mcp: FastMCP[Any] = FastMCP(
        "codebase-mcp",
        instructions=(
            "Semantic code search. Index a repository with start_indexing_background, "
            "poll get_indexing_status until completed, then search_code with a "
            "description of the code you need."
        ),
        lifespan=lifespan,
        auth=auth,
        middleware=[RejectUnusableArguments()],
    )
    settings = state.settings

    @mcp.tool
    @tool_errors
    async def start_indexing_background(
        repo_path: str,
        project_id: str = "default",
        force_reindex: bool = False,
        watch: bool | None = None,
    ) -> dict[str, Any]:
        """Queue indexing of a repository (absolute path on your machine); returns a job id
        at once. Unchanged files are skipped; force_reindex rebuilds everything.
        watch=true keeps the project in sync with the files from then on (saved files
        are searchable within seconds, across restarts); watch=false stops that;
        unset leaves it as it is."""
        _check_project_id(project_id)
        repo = state.mapper.resolve_repo(repo_path)
        pool = await state.pool()
        async with pool.acquire() as conn:
            project = await db.get_project(conn, project_id)
            if (
                project is not None
                and project.embedding_model != state.embedder.model
                and not force_reindex
            ):
                raise db.model_mismatch(project, state.embedder.model, None)
            job_id = await db.create_job(
                conn,
                project_id=project_id,
                repo_path=repo.host_path,
                root_path=repo.container_path,
                force_reindex=force_reindex,
                embedding_model=state.embedder.model,
            )
            if watch:
                await watchstore.set_watch(
                    conn,
                    project_id=project_id,
                    repo_path=repo.host_path,
                    root_path=repo.container_path,
                )
            elif watch is False:
                await watchstore.stop_watch(
                    conn, project_id, repo.container_path, "stopped: asked to"
                )
            watch_row = await watchstore.get_watch(conn, project_id, repo.container_path)
        state.notify_workers()
        if watch is not None:
            state.watches.kick()
        return {
            "job_id": str(job_id),
            "status": "pending",
            "project_id": project_id,
            "repo_path": repo.host_path,
            "watch": watchstore.watch_view(watch_row),
            "message": "poll get_indexing_status(job_id) until status is completed",
        }

    @mcp.tool
    @tool_errors
    async def get_indexing_status(job_id: str) -> dict[str, Any]:
        """Status of an indexing job: pending/running/completed/failed/cancelled, counters,
        errors, timings and progress (0..1)."""
        parsed = _parse_job_id(job_id)
        pool = await state.pool()
        async with pool.acquire() as conn:
            job = await db.get_job(conn, parsed)
            watch_row = (
                await watchstore.get_watch(conn, job["project_id"], job["root_path"])
                if job
                else None
            )
        if job is None:
            raise NotFound(
                f"no indexing job {job_id}",
                hint="use the job_id that start_indexing_background returned",
            )
        return {**job_view(job, state.mapper), "watch": watchstore.watch_view(watch_row)}

    @mcp.tool
    @tool_errors
    async def cancel_indexing(job_id: str) -> dict[str, Any]:
        """Cancel an indexing job (pending: at once; running: after its current batch)."""
        parsed = _parse_job_id(job_id)
        pool = await state.pool()
        async with pool.acquire() as conn:
            status = await db.request_cancel(conn, parsed)
        if status is None:
            raise NotFound(
                f"no indexing job {job_id}",
                hint="use the job_id that start_indexing_background returned",
            )
        return {"job_id": str(parsed), "status": status, "cancel_requested": True}

    @mcp.tool
    @tool_errors
    async def search_code(
        query: str,
        project_id: str = "default",
        limit: int = 10,
        file_type: str | None = None,
        directory: str | None = None,
    ) -> dict[str, Any]:
        """Find code by meaning. file_type: an extension ("py") or language ("python");
        directory: an absolute path on your machine or one relative to the repository."""
        text = validate_query(query, limit, settings.max_limit)
        _check_project_id(project_id)
        filters = Filters(file_type=normalise_file_type(file_type))
        if directory and directory.strip():
            if directory.startswith("/"):
                filters = Filters(
                    filters.file_type, path_prefix=state.mapper.to_container(directory)
                )
            else:
                if ".." in directory.split("/"):
                    raise InvalidToolInput(
                        f"directory {directory!r} contains '..'",
                        hint="give a directory inside the repository",
                    )
                filters = Filters(filters.file_type, rel_prefix=directory)
        pool = await state.pool()
        started = time.perf_counter()
        query_vector = await embed_query_within(state.embedder, text, settings.query_embed_timeout)
        embedded = time.perf_counter()
        async with pool.acquire() as conn:
            found = await search(
                conn,
                project_id,
                text,
                query_vector.vector,
                filters,
                limit,
                mode=settings.search_mode,
                ef_search=settings.ef_search,
                expected_model=state.embedder.model,
                text_budget_ms=settings.text_search_budget_ms,
                text_max_cost=settings.text_search_max_cost,
                term_stats=state.term_stats,
                settings=settings,
                vector_unavailable=(
                    f"{query_vector.reason}: {query_vector.detail}" if query_vector.reason else None
                ),
            )
        hits = found.hits
        searched = time.perf_counter()
        results = [
            {
                "path": state.mapper.to_host(hit.path),
                "relative_path": hit.rel_path,
                "start_line": hit.start_line,
                "end_line": hit.end_line,
                "language": hit.language,
                "symbol": hit.symbol,
                "score": hit.score,
                "similarity": round(hit.similarity, 6),
                "content": hit.content,
                "context_before": "",
                "context_after": "",
            }
            for hit in hits
        ]
        if settings.context_lines:
            await asyncio.to_thread(
                _read_context, results, [h.path for h in hits], settings.context_lines
            )
        return {
            "project_id": project_id,
            "query": text,
            "mode": found.mode,
            **({"lexical": found.lexical} if found.lexical else {}),
            **found.extra_fields(),
            "results": results,
            "embedding_ms": round((embedded - started) * 1000, 2),
            "search_ms": round((searched - embedded) * 1000, 2),
        }

    @mcp.tool
    @tool_errors
    async def list_projects() -> dict[str, Any]:
        """Projects in this server: embedding model, dimension, files, chunks, roots."""
        pool = await state.pool()
        async with pool.acquire() as conn:
            rows = await db.list_projects(conn)
            watches = await watchstore.all_watches(conn)
        return {
            "projects": [
                {
                    "project_id": row["id"],
                    "embedding_model": row["embedding_model"],
                    "embedding_dim": row["embedding_dim"],
                    "files": row["files"],
                    "chunks": row["chunks"],
                    "repositories": [state.mapper.to_host(r) for r in (row["roots"] or [])],
                    "created_at": _iso(row["created_at"]),
                    "updated_at": _iso(row["updated_at"]),
                    "watches": [watchstore.watch_view(w) for w in watches.get(row["id"], [])],
                }
                for row in rows
            ]
        }

    @mcp.tool
    @tool_errors
    async def delete_project(project_id: str) -> dict[str, Any]:
        """Delete a project's index (files, chunks, vectors); running jobs are cancelled."""
        _check_project_id(project_id)
        pool = await state.pool()
        async with pool.acquire() as conn:
            counts = await db.delete_project(conn, project_id)
            await watchstore.delete_watch(conn, project_id)
        state.watches.kick()
        return {"project_id": project_id, "deleted": True, **counts}

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> Response:
        report = await health_report(state)
        code = 200 if report["status"] == "ok" else 503
        return JSONResponse(report, status_code=code)

    return mcp


async def health_report(state: ServerState) -> dict[str, Any]:
    database: dict[str, Any]
    started = time.perf_counter()
    try:
        pool = await asyncio.wait_for(state.pool(), 5)
        async with pool.acquire(timeout=3) as conn:
            migrated = await conn.fetchval("SELECT to_regclass('public.chunks') IS NOT NULL")
        database = {
            "status": "ok" if migrated else "not migrated",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    except (CodebaseMcpError, OSError, asyncpg.PostgresError, TimeoutError) as exc:
        database = {"status": "down", "error": str(exc)}
    probe = getattr(state.embedder, "probe", None)
    embedder: dict[str, Any] = (
        await probe() if probe else {"status": "ok", "model": state.embedder.model}
    )
    ok = database["status"] == "ok" and embedder.get("status") == "ok"
    return {"status": "ok" if ok else "degraded", "database": database, "embedder": embedder}


def build_state(settings: ServerSettings | None = None) -> ServerState:
    settings = settings or ServerSettings()
    embedder_settings = EmbedderSettings()
    embedder = embedder_from_settings(settings, embedder_settings)
    return ServerState(settings, DatabaseSettings(), embedder)
