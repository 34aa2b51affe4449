"""Watch mode: keep a project in sync with its repository from filesystem events.

A watched project has a row in ``watches`` (its SQL in codebase_mcp.server.db). Each
server process runs one :class:`WatchManager`; it reconciles its watchers with
the table every few seconds (and at once when a tool on this replica changed it),
so a watch survives restarts and a stop on one replica reaches the others.

One watcher per project: ``watchfiles.awatch`` (inotify; polling where inotify
cannot follow, e.g. when the host's watch limit is reached), debounced. A batch
of relevant changes queues an ordinary incremental indexing job, unless one is
already pending for the repository: the indexer compares file hashes, so it
re-chunks and re-embeds only the files that changed, and everything else about
jobs (heartbeats, retries, cancel, progress) stays as it is. A watcher also
queues one such job when it starts, which catches what changed while nobody
watched (a restart). When the repository disappears, the watch stops with a
state that says so; it never fails a job or loops on errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import watchfiles

from codebase_mcp.server import db
from codebase_mcp.server.walker import (
    BINARY_SUFFIXES,
    DEFAULT_IGNORED_DIRS,
    GENERATED_NAMES,
    GENERATED_SUFFIXES,
    _load_rules,
    is_ignored,
)

log = logging.getLogger("codebase_mcp.server.watch")

# Editors' swap, backup and lock files: a save of foo.py writes them too.
_EDITOR_NOISE = re.compile(r"(\.sw[a-px]$|~$|^\.#|^#.*#$|\.tmp$|^4913$|\.___jb_\w+___$)")
GONE = "stopped: the repository no longer exists at {path}"


class ChangeFilter:
    """Which filesystem events can change what the indexer writes.

    The walker's own rules, cheaply: ignored directories, binary and generated
    files, editor noise, and the repository's top-level ``.gitignore``. (Nested
    .gitignore files are not read here; a change they ignore costs one walk that
    finds nothing to do.) The root itself always passes, so its removal is seen.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.normpath(root)
        # The walker's own reading of .gitignore, so both agree on what is ignored.
        rules = _load_rules(Path(self.root), "")
        self.rules = [rules] if rules is not None else []

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        rel = os.path.relpath(path, self.root)
        if rel == ".":
            return True
        if rel.startswith(".."):
            return False
        parts = rel.split(os.sep)
        if any(p in DEFAULT_IGNORED_DIRS or p.endswith(".egg-info") for p in parts):
            return False
        name = parts[-1]
        if _EDITOR_NOISE.search(name) or name in GENERATED_NAMES:
            return False
        if name.endswith(GENERATED_SUFFIXES) or os.path.splitext(name)[1].lower() in (
            BINARY_SUFFIXES
        ):
            return False
        return not is_ignored(self.rules, rel.replace(os.sep, "/"), is_dir=False)


PoolGetter = Callable[[], Awaitable[asyncpg.Pool]]
WatchKey = tuple[str, str]  # (project id, root path)


class WatchManager:
    """Runs this replica's watchers, reconciled with the ``watches`` table."""

    def __init__(
        self,
        pool: PoolGetter,
        *,
        embedding_model: str,
        notify: Callable[[], None],
        debounce_ms: int = 300,
        reconcile_interval: float = 5.0,
        force_polling: bool | None = None,
    ) -> None:
        self._pool = pool
        self.embedding_model = embedding_model
        self.notify = notify
        self.debounce_ms = debounce_ms
        self.reconcile_interval = reconcile_interval
        self.force_polling = force_polling
        self._watchers: dict[WatchKey, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    @property
    def watching(self) -> set[WatchKey]:
        """(project id, root path) of the watchers running in this process."""
        return {key for key, task in self._watchers.items() if not task.done()}

    def kick(self) -> None:
        """The table changed here: reconcile now, not at the next interval."""
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: try again later
                log.warning("watch: cannot read the watched projects: %s", exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.reconcile_interval)

    async def reconcile(self) -> None:
        pool = await self._pool()
        async with pool.acquire() as conn:
            wanted: dict[WatchKey, db.WatchRow] = {}
            for row in await db.enabled_watches(conn):
                key = (row.project_id, row.root_path)
                if os.path.isdir(row.root_path) or key in self.watching:
                    wanted[key] = row
                else:
                    reason = GONE.format(path=row.repo_path)
                    await db.stop_watch(conn, row.project_id, row.root_path, reason)
                    log.warning("watch %s: %s", row.project_id, reason)
        for key, task in list(self._watchers.items()):
            if task.done() or key not in wanted:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.warning("watch %s: %s; restarting", key[0], task.exception())
                await _cancel(task)
                del self._watchers[key]
        for key, row in wanted.items():
            if key not in self._watchers:
                self._watchers[key] = asyncio.create_task(self._watch(row), name=f"watch-{key[0]}")
                log.info("watch %s: watching %s", row.project_id, row.repo_path)

    async def stop(self) -> None:
        for task in self._watchers.values():
            await _cancel(task)
        self._watchers.clear()

    async def _watch(self, row: db.WatchRow) -> None:
        await self._queue(row)  # what changed while nobody watched
        polling = self.force_polling
        while True:
            try:
                await self._follow(row, polling)
                return
            except FileNotFoundError:
                break
            except OSError as exc:  # e.g. "OS file watch limit reached"
                if polling:
                    raise
                log.warning("watch %s: %s; polling instead", row.project_id, exc)
                polling = True
        await self._stop(row, GONE.format(path=row.repo_path))

    async def _follow(self, row: db.WatchRow, polling: bool | None) -> None:
        async for changes in watchfiles.awatch(
            row.root_path,
            watch_filter=ChangeFilter(row.root_path),
            debounce=self.debounce_ms,
            step=50,
            rust_timeout=1000,
            yield_on_timeout=True,
            force_polling=polling,
            ignore_permission_denied=True,
        ):
            if not os.path.isdir(row.root_path):
                raise FileNotFoundError(row.root_path)
            if changes:
                log.debug("watch %s: %d change(s)", row.project_id, len(changes))
                await self._queue(row)

    async def _queue(self, row: db.WatchRow) -> None:
        pool = await self._pool()
        async with pool.acquire() as conn:
            job_id = await db.queue_sync_job(conn, row, self.embedding_model)
        if job_id is not None:
            log.info("watch %s: queued sync job %s", row.project_id, job_id)
            self.notify()

    async def _stop(self, row: db.WatchRow, reason: str) -> None:
        log.warning("watch %s: %s", row.project_id, reason)
        pool = await self._pool()
        async with pool.acquire() as conn:
            await db.stop_watch(conn, row.project_id, row.root_path, reason)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
