"""The postgres image runs, initialises itself and serves pgvector."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

pytestmark = pytest.mark.integration


def test_pgvector_query_on_the_running_image(pg_dsn: str) -> None:
    async def query() -> tuple[str, list[int]]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            version = await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            )
            await conn.execute("CREATE TABLE items (id int, embedding vector(3))")
            await conn.execute(
                "INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')"
            )
            await conn.execute("CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops)")
            rows = await conn.fetch("SELECT id FROM items ORDER BY embedding <=> '[1,0,0]' LIMIT 2")
            return version, [r["id"] for r in rows]
        finally:
            await conn.close()

    version, nearest = asyncio.run(query())
    assert version.startswith("0.8")
    assert nearest == [1, 3]


def test_password_is_required(pg_server: object) -> None:
    import subprocess

    from tests.support.postgres import postgres_image

    result = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", postgres_image()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no password: set POSTGRES_PASSWORD_FILE" in result.stderr
