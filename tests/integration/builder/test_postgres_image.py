"""The postgres image runs, initialises itself and serves pgvector."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


def test_interrupted_first_start_is_completed_not_looping(tmp_path: Path) -> None:
    """A first start killed after initdb (no marker) is finished by the next start."""
    import subprocess

    from tests.support.postgres import free_port, postgres_image

    image = postgres_image()
    volume = f"codebase-mcp-test-interrupted-{tmp_path.name[-8:].lower()}"
    name = f"{volume}-pg"
    port = free_port()
    run = [
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "-v",
        f"{volume}:/var/lib/postgresql/data",
        "-p",
        f"127.0.0.1:{port}:5432",
        "-e",
        "POSTGRES_PASSWORD=pw",
        image,
    ]
    try:
        subprocess.run(run, check=True, capture_output=True)
        # Simulate a kill right after initdb: the marker is not there yet.
        for _ in range(100):
            out = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
            if "pg-entrypoint: initialised" in out.stdout + out.stderr:
                break
            __import__("time").sleep(0.2)
        subprocess.run(
            ["podman", "exec", name, "rm", "/var/lib/postgresql/data/.codebase-mcp-initialised"],
            check=True,
        )
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=True, capture_output=True)
        subprocess.run(run, check=True, capture_output=True)

        async def ready() -> str:
            for _ in range(100):
                try:
                    conn = await asyncpg.connect(
                        f"postgresql://codebase:pw@127.0.0.1:{port}/codebase"
                    )
                except (OSError, asyncpg.PostgresError):
                    await asyncio.sleep(0.2)
                    continue
                try:
                    return str(
                        await conn.fetchval(
                            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                        )
                    )
                finally:
                    await conn.close()
            raise AssertionError("postgres did not come back")

        assert asyncio.run(ready()).startswith("0.8")
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
        assert "interrupted initdb" not in logs.stdout  # configured: completed, not cleared
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
        subprocess.run(["podman", "volume", "rm", "-f", volume], capture_output=True)
