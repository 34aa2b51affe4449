"""Alembic environment for the server schema (plain SQL migrations, no ORM models).

Follows alembic's cookbook "Sharing a Connection across one or more
programmatic migration commands": the init process (``codebase_mcp.migrate``)
opens an asyncpg-backed SQLAlchemy connection, takes an advisory lock and hands
its *sync* facade in ``config.attributes["connection"]``. Run standalone
(``alembic upgrade head``), we build our own async engine from
``sqlalchemy.url``. Each migration runs in its own transaction.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config
target_metadata = None


def asyncpg_url(url: str) -> str:
    """``postgresql://`` (libpq style) -> ``postgresql+asyncpg://`` (SQLAlchemy)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(asyncpg_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=asyncpg_url(config.get_main_option("sqlalchemy.url") or ""),
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    shared = config.attributes.get("connection")
    if shared is not None:
        do_run_migrations(shared)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database: pass a connection in config.attributes['connection'] "
            "or set sqlalchemy.url (alembic -x / alembic.ini)"
        )
    asyncio.run(run_async_migrations(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
