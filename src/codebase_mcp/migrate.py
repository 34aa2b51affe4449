"""``alembic upgrade head`` in-process, under a Postgres advisory lock.

Several replicas (or a restarted pod) may start together: each takes the same
session-level advisory lock on one connection before migrating, so exactly
one runs the migrations and the others find the schema already at head.
Alembic runs on that same connection (the cookbook recipe "Sharing a
Connection across one or more programmatic migration commands"): the sync
connection goes into ``cfg.attributes["connection"]`` and ``migrations/env.py``
uses it with ``transaction_per_migration=True``, so a failing revision rolls
back alone and the schema stays at the last good revision.

Imports of alembic/SQLAlchemy happen inside the functions: ``codebase-mcp
health`` and ``init --no-migrate`` must not pay for them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebase_mcp.errors import ConfigError, MigrationFailed

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

# pg_advisory_lock takes a bigint; this is b"cbmcpmig" read as a big-endian
# int64 (positive), so it is recognisable in pg_locks (classid/objid halves).
DEFAULT_LOCK_KEY = 0x63626D63706D6967


@dataclass(frozen=True)
class MigrationResult:
    """The schema revision before and after; ``applied`` when anything ran."""

    before: str | None
    after: str | None
    applied: bool


def default_script_location() -> Path:
    """Where the alembic scripts are: package data in a wheel, ``<repo>/migrations`` otherwise.

    Wheels carry ``migrations/`` as ``codebase_mcp/_migrations`` (pyproject
    force-include); a source checkout or editable install has it at the repo root.
    """
    # The package directory itself, not importlib.resources: alembic needs real files
    # anyway, and importlib.resources costs the init ~10 ms of start-up.
    packaged = Path(__file__).parent / "_migrations"
    if (packaged / "env.py").is_file():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "migrations"
    if (source_tree / "env.py").is_file():
        return source_tree
    raise ConfigError(
        "no alembic migrations found (neither codebase_mcp/_migrations in the installed "
        f"package nor {source_tree}/env.py)",
        hint="reinstall codebase-mcp, or run init with --no-migrate",
    )


def async_url(dsn: str) -> str:
    """``postgresql://…`` → ``postgresql+asyncpg://…`` (password kept: never log the result)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        raise ConfigError(f"not a database URL: {scheme[:20]!r}…", hint="check DATABASE_URL")
    base = scheme.split("+", 1)[0]
    if base not in {"postgresql", "postgres"}:
        raise ConfigError(
            f"unsupported database URL scheme {scheme!r}",
            hint="DATABASE_URL must start with postgresql://",
        )
    return f"postgresql+asyncpg://{rest}"


def alembic_config(script_location: Path) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


def head_revision(cfg: Config) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def script_heads(script_location: Path) -> frozenset[str] | None:
    """The head revisions, read with :mod:`ast` from ``versions/*.py`` without importing alembic.

    ``None`` when a file does not have the usual literal ``revision`` /
    ``down_revision`` assignments: callers then fall back to alembic itself.
    """
    revisions: set[str] = set()
    downs: set[str] = set()
    versions = script_location / "versions"
    if not versions.is_dir():
        return None
    for path in sorted(versions.glob("*.py")):
        values: dict[str, object] = {}
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            return None
        for node in tree.body:
            target: ast.expr | None = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"}:
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            downs.add(down)
        elif isinstance(down, (tuple, list)) and all(isinstance(d, str) for d in down):
            downs.update(str(d) for d in down)
        elif down is not None:
            return None
    return frozenset(revisions - downs)


async def read_versions(conn: Any) -> frozenset[str]:
    """The rows of ``alembic_version`` on an open asyncpg connection (empty before migrating)."""
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return frozenset()
    rows = await conn.fetch("SELECT version_num FROM alembic_version")
    return frozenset(str(row["version_num"]) for row in rows)


async def database_versions(database_url: str, *, timeout: float = 5.0) -> frozenset[str]:
    """:func:`read_versions` on a connection of its own."""
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=timeout)
    try:
        return await read_versions(conn)
    finally:
        await conn.close()


def at_head(versions: frozenset[str], script_location: Path) -> str | None:
    """The current revision when ``versions`` is exactly the single head, else ``None``.

    Any doubt (branches, unusual revision files) answers ``None``: the caller
    then runs :func:`upgrade_head`, which is always right, only slower.
    """
    heads = script_heads(script_location)
    if heads is None or len(heads) != 1 or versions != heads:
        return None
    return next(iter(versions))


async def is_up_to_date(database_url: str, script_location: Path) -> str | None:
    """The init's fast path: :func:`at_head` with one asyncpg query, no alembic import."""
    if script_heads(script_location) is None:
        return None
    return at_head(await database_versions(database_url), script_location)


def _message(exc: BaseException) -> str:
    """alembic's/the driver's message without SQLAlchemy's "Background on this error" link."""
    lines = [ln for ln in str(exc).splitlines() if not ln.startswith("(Background on this error")]
    return f"{type(exc).__name__}: " + "\n".join(lines).strip()


def _upgrade(connection: Connection, cfg: Config) -> None:
    from alembic import command

    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade_head(
    database_url: str,
    *,
    script_location: Path | None = None,
    lock_key: int = DEFAULT_LOCK_KEY,
) -> MigrationResult:
    """Upgrade the database to the head revision, once across racing callers.

    Raises :class:`MigrationFailed` with alembic's message when a revision
    fails; earlier revisions of the same run stay applied.
    """
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    location = script_location if script_location is not None else default_script_location()
    cfg = alembic_config(location)
    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            # Session-level lock: it survives the per-migration commits below
            # and is released explicitly (or when the connection closes).
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key})
            await conn.commit()
            try:
                before = await conn.run_sync(current_revision)
                # env.py must see a connection with no open transaction, or
                # alembic treats it as external and skips per-migration commits.
                await conn.commit()
                try:
                    if before != head_revision(cfg):
                        await conn.run_sync(_upgrade, cfg)
                    await conn.commit()
                except Exception as exc:
                    await conn.rollback()
                    reached = await conn.run_sync(current_revision)
                    await conn.rollback()
                    raise MigrationFailed(
                        f"alembic upgrade head failed: {_message(exc)}",
                        hint=f"the schema stays at revision {reached or '<none>'}; fix the "
                        f"migration in {location} and restart",
                    ) from exc
                after = await conn.run_sync(current_revision)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
                await conn.commit()
    except (MigrationFailed, ConfigError):
        raise
    except Exception as exc:
        raise MigrationFailed(
            f"could not run migrations: {_message(exc)}",
            hint="check that the database is reachable and the role may create tables",
        ) from exc
    finally:
        await engine.dispose()
    return MigrationResult(before=before, after=after, applied=before != after)
