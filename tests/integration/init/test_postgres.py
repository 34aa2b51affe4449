"""The init against the project's real postgres image: waits, migrations, races, failures.

Migrations here are throwaway alembic scripts (tests/integration/init/scripts.py),
not the server's schema; one test runs the shipped migrations end to end.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp import migrate
from tests.integration.init.scripts import BROKEN, GOOD, write_scripts
from tests.integration.init.support import events, start_init
from tests.support.postgres import free_port, podman, postgres_image, run_container

pytestmark = pytest.mark.integration

FAST = ["--no-wait-embedder", "--backoff-base", "0.1", "--backoff-max", "1"]


async def query(dsn: str, sql: str) -> list[tuple[object, ...]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def tables(dsn: str) -> set[str]:
    rows = asyncio.run(query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    return {str(r[0]) for r in rows}


def versions(dsn: str) -> list[str]:
    return [str(r[0]) for r in asyncio.run(query(dsn, "SELECT version_num FROM alembic_version"))]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_scripts(tmp_path / "good", GOOD)


@pytest.fixture
def late_postgres(tmp_path: Path) -> Iterator[tuple[int, str, Path]]:
    """A port, the name a container will get and a password file; the container is removed."""
    postgres_image()  # built (or found) before any timing starts
    name = f"codebase-mcp-test-init-{secrets.token_hex(4)}"
    password_file = tmp_path / "db-password"
    password_file.write_text(secrets.token_urlsafe(16) + "\n")
    try:
        yield free_port(), name, password_file
    finally:
        # Retried: podman 4.3 here sometimes fails once with "shm: device or resource busy".
        for _ in range(3):
            podman("rm", "-f", "-v", "-t", "0", name, check=False)  # and its anonymous volume
            if podman("container", "exists", name, check=False).returncode != 0:
                break
            time.sleep(1)


def test_postgres_started_5s_after_init_is_waited_for(
    late_postgres: tuple[int, str, Path], good: Path, tmp_path: Path
) -> None:
    port, name, password_file = late_postgres
    started = tmp_path / "server-started"
    env = {  # the parts, with the password from a file (as a mounted secret)
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(port),
        "DATABASE_USER": "codebase",
        "DATABASE_NAME": "codebase",
        "DATABASE_PASSWORD_FILE": str(password_file),
    }
    init = start_init(
        [*FAST, "--deadline", "90", "--migrations", str(good)], ["touch", str(started)], env
    )
    time.sleep(5)
    assert init.poll() is None, "init gave up before Postgres started"
    assert not started.exists()
    run_container(postgres_image(), name, port, password_file.read_text().strip())
    _, stderr = init.communicate(timeout=120)
    assert init.returncode == 0, stderr
    assert started.exists()
    log = events(stderr)
    ready = next(e for e in log if e["event"] == "wait.ready")
    assert ready["dependency"] == "postgres"
    assert isinstance(ready["attempt"], int) and ready["attempt"] > 3
    assert isinstance(ready["elapsed_s"], float) and ready["elapsed_s"] >= 5.0
    assert "vector" in str(ready["detail"])
    done = next(e for e in log if e["event"] == "migrate.done")
    assert (done["before"], done["after"], done["applied"]) == (None, "r0002", True)
    assert password_file.read_text().strip() not in stderr


def test_postgres_never_starting_exits_3_before_deadline_plus_one_step(
    unused_port: int, good: Path
) -> None:
    deadline, step = 3.0, 1.0
    start = time.monotonic()
    init = start_init(
        [*FAST, "--deadline", str(deadline), "--migrations", str(good)],
        ["true"],
        {"DATABASE_URL": f"postgresql://codebase:hunter2@127.0.0.1:{unused_port}/codebase"},
    )
    _, stderr = init.communicate(timeout=30)
    wall = time.monotonic() - start
    assert init.returncode == 3, stderr
    timeout = next(e for e in events(stderr) if e["event"] == "wait.timeout")
    assert isinstance(timeout["elapsed_s"], float)
    assert deadline <= timeout["elapsed_s"] < deadline + step
    assert wall < deadline + step + 4.0  # + interpreter start-up on a loaded machine
    address = f"postgresql://codebase:***@127.0.0.1:{unused_port}/codebase"
    assert f"error: postgres at {address} not ready after" in stderr
    assert "Connect call failed" in stderr  # the last error
    assert "hint: check DATABASE_URL" in stderr  # the setting to check
    assert "hunter2" not in stderr


def test_two_inits_racing_on_a_fresh_database_migrate_once(pg_dsn: str, good: Path) -> None:
    env = {"DATABASE_URL": pg_dsn}
    inits = [start_init([*FAST, "--migrations", str(good)], ["true"], env) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[1] for p in inits]
    assert [p.returncode for p in inits] == [0, 0], outputs
    done = [e for out in outputs for e in events(out) if str(e["event"]).startswith("migrate.")]
    applied = [e for e in done if e["event"] == "migrate.done" and e["applied"]]
    assert len(applied) == 1, done
    assert versions(pg_dsn) == ["r0002"]
    assert {"items", "item_log", "alembic_version"} <= tables(pg_dsn)
    # A third start finds the schema at head and skips alembic altogether.
    third = start_init([*FAST, "--migrations", str(good)], ["true"], env)
    _, stderr = third.communicate(timeout=60)
    assert third.returncode == 0, stderr
    assert [e["event"] for e in events(stderr) if str(e["event"]).startswith("migrate.")] == [
        "migrate.skip"
    ]


def test_broken_migration_exits_7_and_leaves_the_schema_unchanged(
    pg_dsn: str, good: Path, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": pg_dsn}
    first = start_init([*FAST, "--migrations", str(good)], ["true"], env)
    assert first.wait(timeout=60) == 0
    before = tables(pg_dsn)
    broken = write_scripts(tmp_path / "broken", BROKEN)
    started = tmp_path / "server-started"
    init = start_init([*FAST, "--migrations", str(broken)], ["touch", str(started)], env)
    _, stderr = init.communicate(timeout=60)
    assert init.returncode == 7, stderr
    assert 'relation "no_such_table" does not exist' in stderr  # alembic's/Postgres' message
    assert "schema stays at revision r0002" in stderr
    assert not started.exists()  # the server is not started on a half-migrated schema
    assert versions(pg_dsn) == ["r0002"]
    assert tables(pg_dsn) == before
    assert "half_done" not in tables(pg_dsn)


def test_shipped_migrations_reach_their_head(pg_dsn: str) -> None:
    location = migrate.default_script_location()
    heads = migrate.script_heads(location)
    assert heads is not None
    result = asyncio.run(migrate.upgrade_head(pg_dsn))
    assert result.applied
    assert result.after in heads
    again = asyncio.run(migrate.upgrade_head(pg_dsn))
    assert (again.before, again.after, again.applied) == (result.after, result.after, False)
    assert asyncio.run(migrate.is_up_to_date(pg_dsn, location)) == result.after
