"""Watch mode through the MCP tools: real Postgres, real inotify, real server state.

A save becomes searchable without anyone asking for a re-index; the watch lives
in the database (a new server process picks it up); a deleted repository stops
its watch with a state that says so; watch=false stops it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from codebase_mcp.server.app import create_server
from tests.integration.server.conftest import make_state
from tests.integration.server.fake_embedder import FakeEmbedder
from tests.integration.server.test_server_mcp_memory import call, index

pytestmark = pytest.mark.integration

# Short periods; and no time budget for the lexical half, which finds the markers (the
# fake embedder's vectors know nothing of them) even on a loaded host.
FAST = {
    "watch_debounce_ms": 100,
    "watch_reconcile_interval": 0.5,
    "poll_interval": 0.2,
    "text_search_budget_ms": 0,
}


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 20, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; the last value on timeout fails."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {value!r}")


async def found(client: Client[Any], word: str, project: str = "default") -> list[str]:
    """Paths of the hits whose answer (snippet or content, any detail level) has ``word``."""
    answer = await call(client, "search_code", query=word, project_id=project, limit=5)
    return [
        str(r.get("relative_path") or r["path"]) for r in answer["results"] if word in json.dumps(r)
    ]


async def test_saved_file_is_searchable_without_a_reindex(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    state = make_state(migrated_dsn, fake_embedder, **FAST)
    try:
        async with Client(create_server(state)) as client:
            status = await index(client, sample_repo, watch=True)
            assert status["status"] == "completed", status
            assert status["watch"]["watching"] is True
            await eventually(lambda: asyncio.sleep(0, state.watches.watching), what="watcher up")

            # A new file and an edit, as an editor saves them.
            (sample_repo / "src" / "fresh_module.py").write_text(
                "def quokka_watch_marker():\n    return 'saved just now'\n"
            )
            saved = time.monotonic()
            hits = await eventually(
                lambda: found(client, "quokka_watch_marker"), what="new file searchable"
            )
            latency = time.monotonic() - saved
            assert any("fresh_module.py" in h for h in hits), hits

            listed = await call(client, "list_projects")
            (project,) = listed["projects"]
            (watch,) = project["watches"]
            assert watch["watching"] is True and watch["repo_path"] == str(sample_repo)
            assert watch["last_job_id"]
            print(f"saved file searchable after {latency:.2f}s")

            # A deleted file leaves the index too.
            (sample_repo / "src" / "fresh_module.py").unlink()
            await eventually(
                lambda: _none(found(client, "quokka_watch_marker")), what="deleted file gone"
            )
    finally:
        await state.stop()


async def _none(result: Awaitable[list[str]]) -> bool:
    return not await result


async def test_watch_survives_a_restart_and_stops_when_asked(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    first = make_state(migrated_dsn, fake_embedder, **FAST)
    try:
        async with Client(create_server(first)) as client:
            await index(client, sample_repo, project_id="kept", watch=True)
    finally:
        await first.stop()

    # Changed while no server ran: the next one catches up and keeps watching.
    (sample_repo / "offline_edit.py").write_text("def wombat_offline_edit():\n    pass\n")
    second = make_state(migrated_dsn, fake_embedder, **FAST)
    try:
        async with Client(create_server(second)) as client:
            await eventually(
                lambda: found(client, "wombat_offline_edit", "kept"), what="offline edit indexed"
            )
            (sample_repo / "online_edit.py").write_text("def numbat_online_edit():\n    pass\n")
            await eventually(
                lambda: found(client, "numbat_online_edit", "kept"), what="new edit indexed"
            )

            started = await call(
                client,
                "start_indexing_background",
                repo_path=str(sample_repo),
                project_id="kept",
                watch=False,
            )
            assert started["watch"]["watching"] is False
            assert started["watch"]["state"] == "stopped: asked to"
            await eventually(
                lambda: asyncio.sleep(0, not second.watches.watching), what="watcher stopped"
            )
            (sample_repo / "ignored_edit.py").write_text("def bilby_unwatched():\n    pass\n")
            await asyncio.sleep(2)  # several debounce and reconcile periods
            assert await found(client, "bilby_unwatched", "kept") == []
    finally:
        await second.stop()


async def test_deleted_repository_stops_its_watch(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path, sample_repo: Path
) -> None:
    repo = tmp_path / "doomed"
    shutil.copytree(sample_repo, repo)
    state = make_state(migrated_dsn, fake_embedder, **FAST)
    try:
        async with Client(create_server(state)) as client:
            status = await index(client, repo, project_id="doomed", watch=True)
            await eventually(lambda: asyncio.sleep(0, state.watches.watching), what="watcher up")
            shutil.rmtree(repo)

            async def stopped() -> dict[str, Any] | None:
                listed = await call(client, "list_projects")
                (project,) = [p for p in listed["projects"] if p["project_id"] == "doomed"]
                (watch,) = project["watches"]
                return watch if not watch["watching"] else None

            watch = await eventually(stopped, what="watch stopped")
            assert watch["state"].startswith("stopped: the repository no longer exists")
            assert str(repo) in watch["state"]
            assert state.watches.watching == set()
            # The index is still there and still answers.
            again = await call(client, "get_indexing_status", job_id=status["job_id"])
            assert again["status"] == "completed"
            answer = await call(client, "search_code", query="parse config", project_id="doomed")
            assert answer["results"]
    finally:
        await state.stop()
