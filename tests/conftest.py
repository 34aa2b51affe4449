"""Shared fixtures: a real Postgres (the project's postgres image) for integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PgServer, scratch_database, start_postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One postgres container for the whole session (built by the builder if needed)."""
    with start_postgres() as server:
        yield server


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database with the vector extension; dropped afterwards."""
    with scratch_database(pg_server) as dsn:
        yield dsn
