"""The alembic migrations: through init's upgrade_head, and standalone via env.py's own engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
    first = asyncio.run(upgrade_head(pg_dsn, script_location=MIGRATIONS))
    assert first.applied and first.after == "0001"
    again = asyncio.run(upgrade_head(pg_dsn, script_location=MIGRATIONS))
    assert not again.applied
    created = asyncio.run(tables(pg_dsn))
    assert {"projects", "files", "chunks", "jobs", "alembic_version"} <= created
    assert {"chunks_embedding_hnsw_384", "chunks_embedding_hnsw_768", "chunks_tsv"} <= created

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
