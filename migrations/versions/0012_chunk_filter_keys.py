"""The project's chunks of one file type, from an index (issue 12, filtered BM25 at 100k).

A filtered BM25 search tests the filter on its best unfiltered candidates first
(``db.bm25_postfilter_sql``). When too few of them pass, the filter is rare among
the candidates; with a file type, the rest are then kept by a hash of the ids of
the project's chunks of that type (``extension = $t OR language = $t``: a bitmap
OR of these two indexes) instead of a lookup of each remaining candidate's chunk.
Two more index entries per chunk written.

Revision ID: 0012_chunk_filter_keys
Revises: 0011_job_shards
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012_chunk_filter_keys"
down_revision: str | Sequence[str] | None = "0011_job_shards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX chunks_project_extension ON chunks (project_id, extension)")
    op.execute("CREATE INDEX chunks_project_language ON chunks (project_id, language)")


def downgrade() -> None:
    op.execute("DROP INDEX chunks_project_language")
    op.execute("DROP INDEX chunks_project_extension")
