"""The content-addressed embedding cache (issue 15): a second clone of a repository
indexed as another project takes every vector from the cache; an edit embeds only
what changed; other weights never reuse; unused entries are collected after a grace.

Real Postgres, the MCP tools through FastMCP's in-memory client, the fake
Ollama-API embedder reporting a weights digest (it counts embedding requests).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from fastmcp import Client

from codebase_mcp.server import db
from codebase_mcp.server.app import create_server
from tests.integration.server.conftest import make_state
from tests.integration.server.fake_embedder import FakeEmbedder, running_fake_embedder
from tests.integration.server.test_server_mcp_memory import call, index

pytestmark = pytest.mark.integration

DIGEST_A = "a1" * 32
DIGEST_B = "b2" * 32


@pytest.fixture
def weights_a() -> Iterator[FakeEmbedder]:
    with running_fake_embedder(digest=DIGEST_A) as fake:
        yield fake


async def cache_entries(dsn: str, digest: str | None = None) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval(
            "SELECT count(*) FROM embedding_cache WHERE $1::text IS NULL OR model_key LIKE $2",
            digest,
            f"%sha256:{digest}",
        )
        return value
    finally:
        await conn.close()


def clone(repo: Path, where: Path) -> Path:
    shutil.copytree(repo, where, symlinks=True)
    return where


async def test_second_clone_takes_every_vector_from_the_cache(
    migrated_dsn: str, weights_a: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    state = make_state(migrated_dsn, weights_a)
    try:
        async with Client(create_server(state)) as client:
            first = await index(client, sample_repo, project_id="first")
            assert first["status"] == "completed", first
            created = first["chunks_created"]
            assert created > 5
            assert first["chunks_embedded"] + first["chunks_reused"] == created
            assert first["chunks_embedded"] > 0
            assert await cache_entries(migrated_dsn, DIGEST_A) == first["chunks_embedded"]

            weights_a.reset()
            second_path = clone(sample_repo, tmp_path / "second-clone")
            second = await index(client, second_path, project_id="second")
            assert second["status"] == "completed", second
            assert second["chunks_created"] == created
            assert second["chunks_reused"] == created
            assert second["chunks_embedded"] == 0
            assert second["semantic_progress"] == 1.0
            assert weights_a.requests == 0  # not one document sent to the embedder

            # The reused vectors are real: the clone answers by meaning like the first.
            found = await call(
                client, "search_code", query="exponential backoff", project_id="second"
            )
            assert found["semantic_coverage"] == 1.0
            assert found["results"][0]["relative_path"] == "src/config_loader.py"

            # An edit in the clone: only texts that changed go to the embedder.
            edited = second_path / "src" / "config_loader.py"
            edited.write_text(
                edited.read_text() + "\n\ndef freshly_added_helper(value):\n    return value\n"
            )
            weights_a.reset()
            third = await index(client, second_path, project_id="second")
            assert third["status"] == "completed", third
            assert third["files_indexed"] == 1
            assert third["chunks_embedded"] >= 1
            assert third["chunks_embedded"] + third["chunks_reused"] == third["chunks_created"]
            assert weights_a.inputs, "the new chunk must be embedded"
            assert all(text.startswith("src/config_loader.py") for text in weights_a.inputs)
            assert any("freshly_added_helper" in text for text in weights_a.inputs)
            assert len(weights_a.inputs) == third["chunks_embedded"]

            listed = await call(client, "list_projects")
            spaces = {p["project_id"]: p["space_bytes"] for p in listed["projects"]}
            assert set(spaces) == {"first", "second"}
            assert all(space > 0 for space in spaces.values())
            cache = listed["embedding_cache"]
            assert cache["entries"] == await cache_entries(migrated_dsn)
            assert cache["entries"] > created and cache["space_bytes"] > 0
    finally:
        await state.stop()


async def test_other_weights_or_no_digest_or_cache_off_reuse_nothing(
    migrated_dsn: str, weights_a: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    state = make_state(migrated_dsn, weights_a)
    try:
        async with Client(create_server(state)) as client:
            assert (await index(client, sample_repo, project_id="a"))["status"] == "completed"
    finally:
        await state.stop()
    filled = await cache_entries(migrated_dsn)
    assert filled > 0

    # Same model name, same dimension, other weights: nothing is reused.
    with running_fake_embedder(digest=DIGEST_B) as weights_b:
        state = make_state(migrated_dsn, weights_b)
        try:
            async with Client(create_server(state)) as client:
                job = await index(client, clone(sample_repo, tmp_path / "b"), project_id="b")
        finally:
            await state.stop()
        assert job["status"] == "completed", job
        assert job["chunks_reused"] == 0
        assert job["chunks_embedded"] == job["chunks_created"]
        assert weights_b.requests > 0
    assert await cache_entries(migrated_dsn, DIGEST_B) == job["chunks_embedded"]

    # No digest reported: no cache at all (neither read nor written).
    with running_fake_embedder() as anonymous:
        state = make_state(migrated_dsn, anonymous)
        try:
            async with Client(create_server(state)) as client:
                job = await index(client, clone(sample_repo, tmp_path / "c"), project_id="c")
        finally:
            await state.stop()
        assert job["status"] == "completed", job
        assert job["chunks_reused"] == 0 and job["chunks_embedded"] == job["chunks_created"]
    assert await cache_entries(migrated_dsn) == filled + job["chunks_created"]

    # The setting off (CODEBASE_MCP_EMBEDDING_CACHE=false): the same weights embed again.
    weights_a.reset()
    state = make_state(migrated_dsn, weights_a, embedding_cache=False)
    try:
        async with Client(create_server(state)) as client:
            job = await index(client, clone(sample_repo, tmp_path / "d"), project_id="d")
    finally:
        await state.stop()
    assert job["status"] == "completed", job
    assert job["chunks_reused"] == 0 and job["chunks_embedded"] == job["chunks_created"]
    assert weights_a.requests > 0


async def test_unused_entries_are_collected_after_the_grace(
    migrated_dsn: str, weights_a: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    state = make_state(migrated_dsn, weights_a, embedding_cache_grace=3600)
    try:
        async with Client(create_server(state)) as client:
            assert (await index(client, sample_repo, project_id="a"))["status"] == "completed"
            copy = clone(sample_repo, tmp_path / "b")
            assert (await index(client, copy, project_id="b"))["status"] == "completed"
            entries = await cache_entries(migrated_dsn)
            assert entries > 0

            # b still uses every entry: deleting a frees nothing, even with no grace.
            await call(client, "delete_project", project_id="a")
            pool = await state.pool()
            async with pool.acquire() as conn:
                assert await db.gc_embedding_cache(conn, 0) == 0
            assert await cache_entries(migrated_dsn) == entries

            # Deleting b: the entries are unused now but within the grace (an hour).
            await call(client, "delete_project", project_id="b")
            assert await cache_entries(migrated_dsn) == entries
            async with pool.acquire() as conn:
                assert await db.gc_embedding_cache(conn, 3600) == 0
                # Used just now (released by the delete): a 1 s grace keeps them too.
                assert await db.gc_embedding_cache(conn, 1) == 0
            await asyncio.sleep(1.2)
            async with pool.acquire() as conn:
                assert await db.gc_embedding_cache(conn, 1) == entries
            assert await cache_entries(migrated_dsn) == 0
    finally:
        await state.stop()

    # With no grace, delete_project collects at once.
    state = make_state(migrated_dsn, weights_a, embedding_cache_grace=0)
    try:
        async with Client(create_server(state)) as client:
            assert (await index(client, sample_repo, project_id="c"))["status"] == "completed"
            assert await cache_entries(migrated_dsn) > 0
            await call(client, "delete_project", project_id="c")
            assert await cache_entries(migrated_dsn) == 0
    finally:
        await state.stop()
