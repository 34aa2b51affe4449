"""Git sources: the URL and commit a job indexes, and the last a project indexed.

A job started with ``repo_url`` + ``ref`` carries the credential-free URL
(``source_url``), the ref as resolved (``source_ref``) and the commit it was
pinned to when it was queued (``source_commit``): every replica that runs it
fetches that commit. A project records the URL and commit of its last completed
git job, so the next one can tell what changed.

Revision ID: 0007_git_source
Revises: 0005_embedding_cache
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_git_source"
down_revision: str | Sequence[str] | None = "0005_embedding_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE jobs
            ADD COLUMN source_url    text,   -- canonical git URL, never a credential
            ADD COLUMN source_ref    text,   -- the ref it named (refs/heads/main, a tag, HEAD)
            ADD COLUMN source_commit text    -- the commit it is pinned to (NULL: found at fetch)
        """
    )
    op.execute(
        """
        ALTER TABLE projects
            ADD COLUMN source_url        text,
            ADD COLUMN source_ref        text,
            ADD COLUMN source_commit     text,   -- the commit last indexed completely
            ADD COLUMN source_indexed_at timestamptz
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE projects DROP COLUMN IF EXISTS source_url, DROP COLUMN IF EXISTS source_ref, "
        "DROP COLUMN IF EXISTS source_commit, DROP COLUMN IF EXISTS source_indexed_at"
    )
    op.execute(
        "ALTER TABLE jobs DROP COLUMN IF EXISTS source_url, DROP COLUMN IF EXISTS source_ref, "
        "DROP COLUMN IF EXISTS source_commit"
    )
