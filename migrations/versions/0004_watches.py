"""Watch mode: the projects kept in sync from filesystem events.

A row per watched repository of a project. It lives in the database, not in a server process,
so a watch survives a restart and every replica sees the same set (each one
watches the rows whose repository it can see). ``state`` is what status shows:
``watching``, or why watching stopped (asked to, repository gone, ...).

Revision ID: 0004_watches
Revises: 0003_lexical_index
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_watches"
down_revision: str | Sequence[str] | None = "0003_lexical_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE watches (
            project_id      text NOT NULL,
            root_path       text NOT NULL,   -- where the server sees the repository
            repo_path       text NOT NULL,   -- as the user named it (host path)
            enabled         boolean NOT NULL DEFAULT true,
            state           text NOT NULL DEFAULT 'watching',
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            last_change_at  timestamptz,     -- the last batch of relevant events
            last_job_id     uuid,            -- the job that batch queued
            PRIMARY KEY (project_id, root_path)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS watches")
