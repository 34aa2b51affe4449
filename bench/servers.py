"""Processes the benchmarks start: one copy of each helper, shared by bench/*.py.

- :func:`free_port`: a free loopback port;
- :func:`start_embedder` / :func:`stop_embedder` / :func:`embedder`: a real
  ``embedder serve`` from the code under a ``src`` directory (this checkout's, or an
  older one's via ``git archive``: :func:`archive_tree`);
- :func:`postgres`: a server URL (given, or a throwaway container of the project's
  postgres image named ``PREFIX-pg-*``) and :func:`create_database`;
- :func:`mcp_server`: ``codebase-mcp serve --transport http`` as a real process
  (the integration tests' :func:`tests.integration.server.serve_process.serving`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))  # tests.support, tests.integration.server (after PYTHONPATH)

SERVE_EMBEDDER = (
    "import sys\n"
    "from codebase_mcp.embedder.config import ServeSettings\n"
    "from codebase_mcp.embedder.server import serve\n"
    "serve(ServeSettings(port=int(sys.argv[1]), log_level='warning'))\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def archive_tree(commit: str, dest: Path, parts: tuple[str, ...] = ("src", "migrations")) -> Path:
    """``parts`` of ``commit`` of this repository, unpacked in ``dest``: ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, *parts], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def start_embedder(
    src: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[subprocess.Popen[bytes], str]:
    """``embedder serve`` from the code under ``src`` (PYTHONPATH precedes the venv's own)."""
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_EMBEDDER, str(port)],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"embedder from {src} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"embedder from {src} did not start in {timeout:g} s")


def stop_embedder(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def embedder(src: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A running ``embedder serve`` (see :func:`start_embedder`): its base URL."""
    proc, url = start_embedder(src, env)
    try:
        yield url
    finally:
        stop_embedder(proc)


async def create_database(admin_dsn: str, name: str) -> None:
    """Drop and create database ``name`` (``admin_dsn``: any database of the server)."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@contextmanager
def postgres(database_url: str | None, prefix: str) -> Iterator[str]:
    """A Postgres server URL without a database (no trailing slash): ``database_url``
    if given, else a throwaway container ``PREFIX-pg-*`` of the project's image."""
    if database_url:
        yield database_url.rstrip("/")
        return
    from tests.support.postgres import start_postgres

    with start_postgres(name=f"{prefix}-pg-{secrets.token_hex(4)}") as server:
        yield server.admin_dsn.rsplit("/", 1)[0]


def database_dsn(server_url: str, name: str) -> str:
    asyncio.run(create_database(server_url + "/postgres", name))
    return f"{server_url}/{name}"


@contextmanager
def mcp_server(env: dict[str, str], log: Path, startup_timeout: float = 120) -> Iterator[str]:
    """``codebase-mcp serve --transport http`` on a free loopback port with ``env``
    (DATABASE_URL, EMBEDDER_URL, ...): the URL of its MCP endpoint (``.../mcp``)."""
    from tests.integration.server.serve_process import serving

    port = free_port()
    full = {"CODEBASE_MCP_HOST": "127.0.0.1", "CODEBASE_MCP_PORT": str(port), **env}
    with serving([], full, log, port, startup_timeout) as served:
        yield f"{served.url}/mcp"
