"""What status shows of a watch. Its SQL (the ``watches`` table and the jobs a change
queues) is in :mod:`codebase_mcp.server.db`: ``set_watch``, ``stop_watch``, ``get_watch``, ...
"""

from __future__ import annotations

from typing import Any

from codebase_mcp.server.db import WATCH_LOCK, WatchRow

__all__ = ["WATCH_LOCK", "WatchRow", "watch_view"]


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
