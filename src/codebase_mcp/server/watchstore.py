"""The SQL of watch mode: the ``watches`` table and the jobs a change queues."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from codebase_mcp.server import db

# Advisory lock class that serialises "is a sync job already pending?" per project
# (the second key hashes project and root), so two replicas that see one save
# queue one job between them.
WATCH_LOCK = 0x63776174  # "cwat"
WATCHING = "watching"


@dataclass(frozen=True)
class WatchRow:
    project_id: str
    root_path: str
    repo_path: str
    enabled: bool
    state: str
    created_at: datetime
    updated_at: datetime
    last_change_at: datetime | None
    last_job_id: uuid.UUID | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> WatchRow:
        # SELECT * / RETURNING *: the table's columns are exactly these fields.
        return cls(**dict(row))


async def set_watch(
    conn: asyncpg.Connection, *, project_id: str, repo_path: str, root_path: str
) -> WatchRow:
    """Watch a project's repository from now on (again, if it was stopped)."""
    row = await conn.fetchrow(
        "INSERT INTO watches (project_id, repo_path, root_path) VALUES ($1, $2, $3) "
        "ON CONFLICT (project_id, root_path) DO UPDATE SET repo_path = EXCLUDED.repo_path, "
        "enabled = true, state = 'watching', "
        "updated_at = now() RETURNING *",
        project_id,
        repo_path,
        root_path,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return WatchRow.from_record(row)


async def stop_watch(
    conn: asyncpg.Connection, project_id: str, root_path: str, reason: str
) -> bool:
    """Stop watching; the row stays, so status can say why. False: it was not watched."""
    status = await conn.execute(
        "UPDATE watches SET enabled = false, state = $3, updated_at = now() "
        "WHERE project_id = $1 AND root_path = $2 AND enabled",
        project_id,
        root_path,
        reason,
    )
    return bool(status.endswith(" 1"))


async def delete_watch(conn: asyncpg.Connection, project_id: str) -> None:
    await conn.execute("DELETE FROM watches WHERE project_id = $1", project_id)


async def get_watch(conn: asyncpg.Connection, project_id: str, root_path: str) -> WatchRow | None:
    row = await conn.fetchrow(
        "SELECT * FROM watches WHERE project_id = $1 AND root_path = $2", project_id, root_path
    )
    return WatchRow.from_record(row) if row else None


async def all_watches(conn: asyncpg.Connection) -> dict[str, list[WatchRow]]:
    """project id -> its watches (stopped ones too: status says why they stopped)."""
    out: dict[str, list[WatchRow]] = {}
    for row in await conn.fetch("SELECT * FROM watches ORDER BY project_id, root_path"):
        out.setdefault(row["project_id"], []).append(WatchRow.from_record(row))
    return out


async def enabled_watches(conn: asyncpg.Connection) -> list[WatchRow]:
    rows = await conn.fetch("SELECT * FROM watches WHERE enabled ORDER BY project_id, root_path")
    return [WatchRow.from_record(row) for row in rows]


async def queue_sync_job(
    conn: asyncpg.Connection, watch: WatchRow, embedding_model: str
) -> uuid.UUID | None:
    """Queue an incremental index of the watched repository, unless one is pending.

    A pending job has not walked the tree yet, so it will see this change too; a
    running one may already be past the changed file, so it does not count.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2 || ' ' || $3))",
            WATCH_LOCK,
            watch.project_id,
            watch.root_path,
        )
        pending = await conn.fetchval(
            "SELECT 1 FROM jobs WHERE project_id = $1 AND root_path = $2 "
            "AND status = 'pending' LIMIT 1",
            watch.project_id,
            watch.root_path,
        )
        if pending:
            await conn.execute(
                "UPDATE watches SET last_change_at = now() WHERE project_id = $1 "
                "AND root_path = $2",
                watch.project_id,
                watch.root_path,
            )
            return None
        job_id = await db.create_job(
            conn,
            project_id=watch.project_id,
            repo_path=watch.repo_path,
            root_path=watch.root_path,
            force_reindex=False,
            embedding_model=embedding_model,
        )
        await conn.execute(
            "UPDATE watches SET last_change_at = now(), last_job_id = $3 "
            "WHERE project_id = $1 AND root_path = $2",
            watch.project_id,
            watch.root_path,
            job_id,
        )
    return job_id


def watch_view(row: WatchRow | None) -> dict[str, Any]:
    """What status shows of a project's watch."""
    if row is None:
        return {"watching": False, "state": "not watched"}
    view: dict[str, Any] = {
        "watching": row.enabled,
        "state": row.state,
        "repo_path": row.repo_path,
        "since": row.updated_at.isoformat(),
    }
    if row.last_change_at is not None:
        view["last_change_at"] = row.last_change_at.isoformat()
    if row.last_job_id is not None:
        view["last_job_id"] = str(row.last_job_id)
    return view
