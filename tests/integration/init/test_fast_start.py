"""The init's fast start against the real postgres image: the stdlib client agrees with asyncpg.

pgwire (the probe's quick path) must give what the asyncpg probe gives, for every
authentication method a real Postgres 17 offers by password; when it cannot, the
asyncpg probe answers, with asyncpg's own errors. End to end, an init whose schema is
at head imports none of pydantic, click, asyncio/asyncpg, SQLAlchemy or alembic.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.init import pgwire
from codebase_mcp.init.waits import PostgresProbe, describe
from tests.integration.init.scripts import GOOD, write_scripts
from tests.integration.init.support import events, start_init
from tests.support.postgres import PgServer, podman, start_postgres

pytestmark = pytest.mark.integration

HEAVY = {"pydantic", "pydantic_settings", "click", "asyncio", "asyncpg", "sqlalchemy", "alembic"}


@pytest.fixture(autouse=True)
def no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(key)


async def admin(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def show(dsn: str, setting: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval(f"SHOW {setting}"))
    finally:
        await conn.close()


def both(dsn: str, read_versions: bool = True) -> tuple[tuple[str, object], tuple[str, object]]:
    """(detail, versions) from the stdlib quick path and from the asyncpg probe."""
    quick = PostgresProbe(dsn, read_versions=read_versions)
    slow = PostgresProbe(dsn, read_versions=read_versions)
    return (quick._quick(5.0), quick.versions), (asyncio.run(slow._once(5.0)), slow.versions)


def test_quick_probe_agrees_with_asyncpg_on_the_real_image(pg_dsn: str) -> None:
    quick, slow = both(pg_dsn)
    assert quick == slow
    assert quick[1] == frozenset()  # no alembic_version yet
    asyncio.run(
        admin(
            pg_dsn,
            "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
            "INSERT INTO alembic_version VALUES ('r0002')",
            "CREATE EXTENSION IF NOT EXISTS vector",
        )
    )
    quick, slow = both(pg_dsn)
    assert quick == slow
    assert quick[1] == frozenset({"r0002"})
    assert "installed" in quick[0]


def test_a_wrong_password_reads_as_asyncpgs_error(pg_server: PgServer) -> None:
    dsn = f"postgresql://{pg_server.user}:wrong@{pg_server.host}:{pg_server.port}/postgres"
    with pytest.raises(Exception) as through_probe:
        PostgresProbe(dsn)(5.0)
    with pytest.raises(Exception) as asyncpg_alone:
        asyncio.run(PostgresProbe(dsn)._once(5.0))
    assert describe(through_probe.value) == describe(asyncpg_alone.value)
    assert "password authentication failed" in describe(through_probe.value)


@pytest.fixture(scope="module")
def hba_server() -> Iterator[PgServer]:
    """A container of its own whose pg_hba.conf asks md5, cleartext password or trust."""
    with start_postgres(name=f"codebase-mcp-test-pgwire-{secrets.token_hex(4)}") as server:
        asyncio.run(
            admin(
                server.admin_dsn,
                "SET password_encryption = 'md5'",
                "CREATE ROLE md5user LOGIN PASSWORD 'md5-pass'",
                "RESET password_encryption",
                "CREATE ROLE plainuser LOGIN PASSWORD 'plain-pass'",
                "CREATE ROLE trustuser LOGIN PASSWORD 'trust-pass'",
            )
        )
        hba_file = asyncio.run(show(server.admin_dsn, "hba_file"))
        rules = ["host all md5user all md5", "host all plainuser all password"]
        rules.append("host all trustuser all trust")
        quoted = " ".join(f"'{rule}'" for rule in rules)
        script = f'{{ printf "%s\\n" {quoted}; cat "$1"; }} > "$1.new" && cat "$1.new" > "$1"'
        podman("exec", server.container, "sh", "-c", script, "sh", hba_file)
        asyncio.run(admin(server.admin_dsn, "SELECT pg_reload_conf()"))
        yield server


@pytest.mark.parametrize(
    ("user", "password", "method"),
    [
        ("md5user", "md5-pass", "md5"),
        ("plainuser", "plain-pass", "password"),
        ("trustuser", "trust-pass", "trust"),
        ("codebase", None, "scram-sha-256"),  # the image's own rule
    ],
)
def test_every_password_auth_method_agrees_with_asyncpg(
    hba_server: PgServer, user: str, password: str | None, method: str
) -> None:
    password = password or hba_server.password
    dsn = f"postgresql://{user}:{password}@{hba_server.host}:{hba_server.port}/postgres"
    conn = pgwire.Connection.open(pgwire.target(dsn, {}), 5.0)
    conn.close()
    assert conn.auth_method == method
    quick, slow = both(dsn, read_versions=False)
    assert quick == slow
    if method != "trust":  # and a bad password fails with the server's error
        bad = f"postgresql://{user}:nope@{hba_server.host}:{hba_server.port}/postgres"
        with pytest.raises(Exception, match="password authentication failed"):
            PostgresProbe(bad)._quick(5.0)


def imported_modules(stderr: str) -> set[str]:
    return {
        line.split("|")[-1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


def test_init_at_head_imports_nothing_heavy(pg_dsn: str, tmp_path: Path) -> None:
    scripts = write_scripts(tmp_path / "good", GOOD)
    options = ["--no-wait-embedder", "--migrations", str(scripts)]
    first = start_init(options, ["true"], {"DATABASE_URL": pg_dsn})
    assert first.wait(timeout=60) == 0  # migrates to head (the full path)

    started = tmp_path / "started"
    init = start_init(
        options, ["touch", str(started)], {"DATABASE_URL": pg_dsn, "PYTHONPROFILEIMPORTTIME": "1"}
    )
    _, stderr = init.communicate(timeout=60)
    assert init.returncode == 0, stderr
    assert started.exists()
    modules = imported_modules(stderr)
    assert "codebase_mcp" in modules  # the import profile is really there
    assert not modules & HEAVY
    assert [e["event"] for e in events(stderr) if str(e["event"]).startswith("migrate.")] == [
        "migrate.skip"
    ]


def test_init_with_pg_variables_takes_asyncpg_and_still_starts(pg_dsn: str, tmp_path: Path) -> None:
    # PGCONNECT_TIMEOUT is one asyncpg does not even read: any PG* variable means asyncpg.
    env = {"DATABASE_URL": pg_dsn, "PYTHONPROFILEIMPORTTIME": "1", "PGCONNECT_TIMEOUT": "5"}
    argv = [str(Path(sys.executable).with_name("codebase-mcp")), "init", "--no-wait-embedder"]
    done = subprocess.run(
        [*argv, "--no-migrate", "--", "true"],
        env={**os.environ, "CODEBASE_MCP_INIT_LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "asyncpg" in imported_modules(done.stderr)
    ready = next(e for e in events(done.stderr) if e["event"] == "wait.ready")
    assert str(ready["detail"]).startswith("PostgreSQL 17.0, vector")
