"""Shared fixtures: a real Postgres (the project's postgres image) for integration tests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from tests.support.postgres import PgServer, start_postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One postgres container for the whole session (built by the builder if needed)."""
    with start_postgres() as server:
        yield server


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database with the vector extension; dropped afterwards."""
    import asyncpg

    name = f"test_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # template1 carries the vector extension (created by the image's entrypoint).
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_server.dsn(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
