"""What the tools share in one process: settings, the pool, the embedder, the workers.

Created once per process (``build_state``) and started/stopped by the FastMCP
lifespan. Nothing request-scoped (no Context) ever reaches the job workers.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.server import db
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import Embedder, embedder_from_settings
from codebase_mcp.server.gitsource import GitSources
from codebase_mcp.server.jobs import Worker
from codebase_mcp.server.paths import PathMapper
from codebase_mcp.server.search import QueryVectors, TermStatsCache
from codebase_mcp.server.watch import WatchManager
from codebase_mcp.settings import DatabaseSettings, EmbedderSettings


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
        self.git = GitSources(settings.git_config())  # repo_url + ref (no I/O until used)
        self.term_stats = TermStatsCache()
        self.query_vectors = QueryVectors(settings.query_cache_size)
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
            worker = Worker(self.pool, self.embedder, self.settings)
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


def build_state(settings: ServerSettings | None = None) -> ServerState:
    settings = settings or ServerSettings()
    embedder_settings = EmbedderSettings()
    embedder = embedder_from_settings(settings, embedder_settings)
    return ServerState(settings, DatabaseSettings(), embedder)
