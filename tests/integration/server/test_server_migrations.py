"""The alembic migrations: through init's upgrade_head, and standalone via env.py's own engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from codebase_mcp.migrate import upgrade_head

pytestmark = pytest.mark.integration
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        indexes = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows} | {r["indexname"] for r in indexes}


def test_upgrade_head_twice_then_standalone_downgrade_and_upgrade(pg_dsn: str) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    first = asyncio.run(upgrade_head(pg_dsn, script_location=MIGRATIONS))
    assert first.applied and first.after == head
    again = asyncio.run(upgrade_head(pg_dsn, script_location=MIGRATIONS))
    assert not again.applied
    created = asyncio.run(tables(pg_dsn))
    assert {"projects", "files", "chunks", "jobs", "watches", "alembic_version"} <= created
    assert {"chunks_embedding_hnsw_384", "chunks_embedding_hnsw_768"} <= created
    assert {"lexical_terms", "lexical_postings", "project_stats", "chunks_unembedded"} <= created
    assert "chunks_tsv" not in created  # BM25 replaced ts_rank_cd

    # Standalone (alembic CLI style): env.py builds its own asyncpg engine.
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", pg_dsn.replace("%", "%%"))
    command.downgrade(cfg, "base")
    assert "chunks" not in asyncio.run(tables(pg_dsn))
    command.upgrade(cfg, "head")
    assert "chunks" in asyncio.run(tables(pg_dsn))


def alembic_config(dsn: str, **attributes: object) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", dsn.replace("%", "%%"))
    cfg.attributes.update(attributes)
    return cfg


# 150 distinct words: a ~2 kB tsvector, too big to stay in a row next to the
# rest under the old storage.
WORDS = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26)}xyz" for i in range(150))


async def insert_big_chunk(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO projects (id, embedding_model, embedding_dim) VALUES ('p', 'm', 384)"
        )
        file_id = await conn.fetchval(
            "INSERT INTO files (project_id, repo_root, path, rel_path, content_hash, size_bytes) "
            "VALUES ('p', '/r', '/r/a.py', 'a.py', 'h', 1) RETURNING id"
        )
        vector = "[" + ",".join(["0.05"] * 384) + "]"
        await conn.execute(
            "INSERT INTO chunks (project_id, file_id, path, rel_path, extension, start_line, "
            "end_line, content, search_text, embedding_dim, embedding) VALUES "
            "('p', $1, '/r/a.py', 'a.py', 'py', 1, 2, $2, $3, 384, $4::vector)",
            file_id,
            "x = 1\n" * 200,
            WORDS,
            vector,
        )
    finally:
        await conn.close()


async def tsv_layout(dsn: str) -> tuple[str, bool, str]:
    """(attstorage of chunks.tsv and chunks.content, whether the first row's tsv is
    out of line, its text)."""
    conn = await asyncpg.connect(dsn)
    try:
        storage = await conn.fetchval(
            "SELECT string_agg(attstorage::text, '' ORDER BY attname DESC) FROM pg_attribute "
            "WHERE attrelid = 'chunks'::regclass AND attname IN ('tsv', 'content')"
        )
        row = await conn.fetchrow(
            "SELECT pg_column_toast_chunk_id(tsv) IS NOT NULL AS external, tsv::text AS text "
            "FROM chunks ORDER BY id LIMIT 1"
        )
    finally:
        await conn.close()
    return str(storage), bool(row["external"]), str(row["text"])


@pytest.mark.parametrize("rewrite", [True, False], ids=["small-table", "big-table"])
def test_0002_keeps_tsv_in_the_row(pg_dsn: str, rewrite: bool) -> None:
    from alembic import command

    # "big-table": no rewrite at upgrade (the limit is 0 rows here, 20,000 in use).
    cfg = alembic_config(pg_dsn, **({} if rewrite else {"chunks_rewrite_max_rows": 0}))
    command.upgrade(cfg, "0001")
    asyncio.run(insert_big_chunk(pg_dsn))
    storage, external, text = asyncio.run(tsv_layout(pg_dsn))
    assert (storage, external) == ("xx", True)  # out of line, in TOAST

    command.upgrade(cfg, "0002")
    storage, external_after, text_after = asyncio.run(tsv_layout(pg_dsn))
    assert storage == "mm"
    assert text_after == text  # the data is unchanged
    # Existing rows: rewritten into the row when the table is small, else as they were.
    assert external_after is (not rewrite)

    # New rows go in the row whatever the table size.
    async def add_and_check() -> bool:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "INSERT INTO chunks (project_id, file_id, path, rel_path, extension, "
                "start_line, end_line, content, search_text, embedding_dim, embedding) "
                "SELECT project_id, file_id, path, rel_path, extension, start_line, end_line, "
                "content, search_text, embedding_dim, embedding FROM chunks"
            )
            return bool(
                await conn.fetchval(
                    "SELECT pg_column_toast_chunk_id(tsv) IS NULL FROM chunks "
                    "ORDER BY id DESC LIMIT 1"
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(add_and_check())

    command.downgrade(cfg, "0001")
    storage, _, text_down = asyncio.run(tsv_layout(pg_dsn))
    assert storage == "xx" and text_down == text


def test_0003_keeps_old_projects_and_builds_their_lexical_index_later(pg_dsn: str) -> None:
    from alembic import command

    from codebase_mcp.server import db

    cfg = alembic_config(pg_dsn)
    command.upgrade(cfg, "0002")
    asyncio.run(insert_big_chunk(pg_dsn))
    command.upgrade(cfg, "head")

    async def after_upgrade() -> tuple[Any, int, int]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            stats = await db.get_project_stats(conn, "p")
            built = await db.rebuild_lexical(conn, "p")  # what the next job of "p" does
            postings = await conn.fetchval("SELECT count(*) FROM lexical_postings")
            return stats, built, postings
        finally:
            await conn.close()

    stats, built, postings = asyncio.run(after_upgrade())
    # Counted, vectors kept, lexical index not built yet (nothing is re-embedded).
    assert (stats.chunks, stats.embedded, stats.lexical_ready) == (1, 1, False)
    assert stats.semantic_coverage == 1.0
    assert built == 1 and postings == 150  # the chunk's 150 distinct words

    command.downgrade(cfg, "0002")
    storage, _, text = asyncio.run(tsv_layout(pg_dsn))
    assert storage == "mm" and "wordaaxyz" in text  # tsv is back, computed from search_text


async def vector_layout(dsn: str) -> tuple[list[str], list[bool], list[str]]:
    """(chunks' reloptions, per row in id order whether its vector is out of line,
    the vectors' text)."""
    conn = await asyncpg.connect(dsn)
    try:
        options = await conn.fetchval(
            "SELECT reloptions FROM pg_class WHERE oid = 'chunks'::regclass"
        )
        rows = await conn.fetch(
            "SELECT pg_column_toast_chunk_id(embedding) IS NOT NULL AS external, "
            "embedding::text AS text FROM chunks ORDER BY id"
        )
    finally:
        await conn.close()
    return list(options or []), [bool(r["external"]) for r in rows], [r["text"] for r in rows]


async def copy_first_chunk(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO chunks (project_id, file_id, path, rel_path, extension, start_line, "
            "end_line, content, search_text, embedding_dim, embedding) "
            "SELECT project_id, file_id, path, rel_path, extension, start_line, end_line, "
            "content, search_text, embedding_dim, embedding FROM chunks ORDER BY id LIMIT 1"
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("rewrite", [True, False], ids=["small-table", "big-table"])
def test_0013_keeps_the_vector_in_the_row(pg_dsn: str, rewrite: bool) -> None:
    """A chunk of ordinary size (a 384-dimension vector, 1.2 kB of code) had its
    vector moved to TOAST; from 0013 on it stays in the row."""
    from alembic import command

    cfg = alembic_config(pg_dsn, **({} if rewrite else {"chunks_rewrite_max_rows": 0}))
    command.upgrade(cfg, "0012_chunk_filter_keys")
    asyncio.run(insert_big_chunk(pg_dsn))
    options, external, vectors = asyncio.run(vector_layout(pg_dsn))
    assert (options, external) == ([], [True])

    command.upgrade(cfg, "0013_embedding_inline")
    options, external, vectors_after = asyncio.run(vector_layout(pg_dsn))
    assert options == ["toast_tuple_target=8160"]
    assert vectors_after == vectors  # the data is unchanged
    # The existing row: rewritten into the row when the table is small, else as it was.
    assert external == [not rewrite]
    asyncio.run(copy_first_chunk(pg_dsn))
    assert asyncio.run(vector_layout(pg_dsn))[1] == [not rewrite, False]  # new rows: inline

    command.downgrade(cfg, "0012_chunk_filter_keys")
    options, _, vectors_down = asyncio.run(vector_layout(pg_dsn))
    assert options == [] and vectors_down == vectors * 2


def test_0012_indexes_the_chunks_file_type_keys_and_downgrades(pg_dsn: str) -> None:
    """0012: (project_id, extension) and (project_id, language), built over the rows
    already there; its downgrade drops them and leaves the chunks."""
    from alembic import command

    cfg = alembic_config(pg_dsn)
    command.upgrade(cfg, "0011_job_shards")
    asyncio.run(insert_big_chunk(pg_dsn))
    keys = {"chunks_project_extension", "chunks_project_language"}
    assert not keys & asyncio.run(tables(pg_dsn))
    command.upgrade(cfg, "0012_chunk_filter_keys")
    assert keys <= asyncio.run(tables(pg_dsn))

    async def py_chunks_by_index() -> tuple[int, str]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_seqscan = off")
                sql = "SELECT count(*) FROM chunks WHERE project_id = 'p' AND extension = 'py'"
                plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql))
                return int(await conn.fetchval(sql)), plan
        finally:
            await conn.close()

    count, plan = asyncio.run(py_chunks_by_index())
    assert count == 1 and any(key in plan for key in keys), plan
    command.downgrade(cfg, "0011_job_shards")
    assert not keys & asyncio.run(tables(pg_dsn))
    assert "chunks" in asyncio.run(tables(pg_dsn))
    command.upgrade(cfg, "head")
    assert keys <= asyncio.run(tables(pg_dsn))
