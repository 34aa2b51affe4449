"""Embedding shards, the pure parts: how waiting chunks are cut into shards, what a
re-run shards anew, the write guard's SQL, and the shard split in a job's status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from codebase_mcp.server import db, service
from codebase_mcp.server.config import RootMapping, ServerSettings
from codebase_mcp.server.paths import PathMapper
from codebase_mcp.server.shards import plan_shards, uncovered


@pytest.mark.parametrize(
    ("count", "target", "sizes"),
    [
        (0, 4, []),
        (1, 4, [1]),
        (4, 4, [4]),
        (5, 4, [3, 2]),  # not [4, 1]: no lone small shard at the end
        (9, 4, [3, 3, 3]),
        (10, 4, [4, 3, 3]),
        (1000, 256, [250, 250, 250, 250]),
        (1025, 256, [205, 205, 205, 205, 205]),
        (7, 1, [1] * 7),
    ],
)
def test_plan_shards_sizes(count: int, target: int, sizes: list[int]) -> None:
    assert [len(s) for s in plan_shards(range(count), target)] == sizes


@pytest.mark.parametrize(("count", "target"), [(1, 1), (17, 5), (256, 256), (3001, 64)])
def test_plan_shards_keeps_every_id_once_in_order(count: int, target: int) -> None:
    ids = [n * 7 + 3 for n in range(count)]  # embedding order, not sorted by value
    ids.reverse()
    shards = plan_shards(ids, target)
    assert [i for shard in shards for i in shard] == ids
    assert max(len(s) for s in shards) <= target
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    assert len(shards) == -(-count // target)  # as few as the target allows


def test_plan_shards_refuses_a_zero_target() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_shards([1, 2], 0)


def test_a_rerun_shards_only_what_no_open_shard_holds() -> None:
    # The dead run's open shards hold 3, 4, 5; 1 and 2 were in a done shard but still
    # wait (re-written meanwhile would be new ids; these must not be lost).
    assert uncovered([1, 2, 3, 4, 5, 9, 8], {3, 4, 5}) == [1, 2, 9, 8]
    assert uncovered([], {1}) == []


def test_write_guard_names_the_held_shard() -> None:
    assert db.held_shard_sql(6, None) == ""
    assert db.held_shard_args(None) == []
    shard = db.Shard(uuid.UUID(int=1), 3, "w1", "p", 384, [10, 11], 1)
    sql = db.held_shard_sql(6, shard)
    for part in ("$6::uuid", "$7::int", "$8::text", "status = 'running'", "ANY(s.chunk_ids)"):
        assert part in sql
    assert db.held_shard_args(shard) == [uuid.UUID(int=1), 3, "w1"]


def test_shard_chunks_setting_has_a_floor() -> None:
    assert ServerSettings().shard_chunks == 128
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ServerSettings(shard_chunks=0)


def _job() -> dict[str, Any]:
    return {
        "id": "j", "project_id": "p", "repo_path": "/h/r", "root_path": "/c/r",
        "status": "running", "files_total": 2, "files_scanned": 2, "files_indexed": 2,
        "files_unchanged": 0, "files_skipped": 0, "files_deleted": 0, "chunks_created": 9,
        "force_reindex": False, "embedding_model": "m", "attempts": 1,
        "cancel_requested": False, "error": None, "errors": [], "timings": {},
        "created_at": datetime(2026, 12, 4, tzinfo=UTC), "started_at": None,
        "finished_at": None, "chunks_to_embed": 9, "chunks_embedded": 6,
    }  # fmt: skip


def test_job_status_shows_the_shard_split_per_worker() -> None:
    mapper = PathMapper([RootMapping(host="/h", container="/c")])
    summary = db.ShardSummary(
        total=3, pending=0, running=1, done=2, failed=0, chunks=9, chunks_embedded=6,
        chunks_reused=0,
        workers=[db.ShardWorkerRow("a:1:x", 1, 1, 4, 0), db.ShardWorkerRow("b:2:y", 1, 0, 2, 0)],
    )  # fmt: skip
    dumped = service.job_status(_job(), mapper, shards=summary).model_dump(mode="json")
    assert (dumped["shards_total"], dumped["shards_done"]) == (3, 2)
    assert dumped["shard_workers"] == [
        {"worker_id": "a:1:x", "shards_done": 1, "shards_running": 1, "chunks_embedded": 4,
         "chunks_reused": 0},
        {"worker_id": "b:2:y", "shards_done": 1, "shards_running": 0, "chunks_embedded": 2,
         "chunks_reused": 0},
    ]  # fmt: skip
    # A job without shards (lexical phase, or queued before 0011) leaves them out.
    plain = service.job_status(_job(), mapper).model_dump(mode="json", exclude_none=False)
    assert "shards_total" not in plain and "shard_workers" not in plain
    empty = db.ShardSummary(0, 0, 0, 0, 0, 0, 0, 0, [])
    assert "shards_total" not in service.job_status(_job(), mapper, shards=empty).model_dump()
