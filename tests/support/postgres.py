"""Start the project's own postgres image (built by the builder) for tests."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.pod import podman

REPO = Path(__file__).resolve().parents[2]
# Postgres settings that make tests faster; durability does not matter here.
FAST_ARGS = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


@dataclass(frozen=True)
class PgServer:
    container: str
    host: str
    port: int
    user: str
    password: str

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"


def postgres_image() -> str:
    """The postgres image ref, built (or found cached) by the project's builder."""
    from codebase_mcp.builder.build import Builder

    (result,) = Builder.create(REPO).build(["postgres"])
    return result.ref


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_container(image: str, name: str, port: int, password: str, user: str = "codebase") -> None:
    podman(
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "-p",
        f"127.0.0.1:{port}:5432",
        "-e",
        f"POSTGRES_PASSWORD={password}",
        "-e",
        f"POSTGRES_USER={user}",
        "--label",
        "codebase-mcp.test=1",
        image,
        *FAST_ARGS,
    )


def wait_ready(server: PgServer, timeout: float = 60.0) -> None:
    import asyncpg

    async def attempt() -> None:
        conn = await asyncpg.connect(server.admin_dsn, timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            asyncio.run(attempt())
            return
        except Exception as exc:  # retried until the deadline
            last = exc
            time.sleep(0.3)
    logs = podman("logs", server.container, check=False).stdout[-2000:]
    raise RuntimeError(f"postgres in {server.container} not ready after {timeout}s: {last}\n{logs}")


@contextmanager
def start_postgres(
    *, port: int | None = None, name: str | None = None, wait: bool = True
) -> Iterator[PgServer]:
    """A throwaway postgres container on 127.0.0.1; removed afterwards."""
    image = postgres_image()
    server = PgServer(
        container=name or f"codebase-mcp-test-pg-{secrets.token_hex(4)}",
        host="127.0.0.1",
        port=port or free_port(),
        user="codebase",
        password=secrets.token_urlsafe(16),
    )
    run_container(image, server.container, server.port, server.password, server.user)
    try:
        if wait:
            wait_ready(server)
        yield server
    finally:
        # -v: the image declares a VOLUME; its anonymous volume goes with the container
        # (--rm alone left one behind when the removal raced the container's exit).
        podman("rm", "-f", "-v", "-t", "0", server.container, check=False)


@contextmanager
def scratch_database(
    server: PgServer, *, prefix: str = "test", migrate: bool = False
) -> Iterator[str]:
    """A fresh database (the vector extension comes from template1, created by the
    image's entrypoint), migrated to head if ``migrate``; dropped afterwards."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        if migrate:
            from codebase_mcp.migrate import upgrade_head

            asyncio.run(upgrade_head(server.dsn(name)))
        yield server.dsn(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
