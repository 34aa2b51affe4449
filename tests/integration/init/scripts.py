"""Throwaway alembic script directories, so the init tests do not depend on the server's schema."""

from __future__ import annotations

from pathlib import Path

ENV_PY = """\
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
"""

REVISION = """\
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
"""


def _indent(sql_lines: list[str]) -> str:
    return "\n".join(f"    op.execute({line!r})" for line in sql_lines)


def write_scripts(root: Path, revisions: list[tuple[str, list[str]]]) -> Path:
    """An alembic script_location with ``revisions`` (rev id, SQL statements) in a chain."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "env.py").write_text(ENV_PY)
    down: str | None = None
    for rev, sql in revisions:
        body = REVISION.format(rev=rev, down=down, body=_indent(sql))
        (versions / f"{rev}.py").write_text(body)
        down = rev
    return root


GOOD = [
    ("r0001", ["CREATE TABLE items (id serial PRIMARY KEY, name text)"]),
    # The sleep widens the window in which a second init would race this one.
    ("r0002", ["SELECT pg_sleep(1)", "CREATE TABLE item_log (id int REFERENCES items(id))"]),
]
# r0003 creates a table, then fails: with one transaction per migration the
# table must be rolled back and alembic_version must stay at r0002.
BROKEN = [
    *GOOD,
    ("r0003", ["CREATE TABLE half_done (id int)", "SELECT * FROM no_such_table"]),
]
