"""Keep what searches read in the row: chunks.tsv and chunks.content STORAGE MAIN.

Full-text ranking reads ``tsv`` for every chunk it ranks. With the default
storage (EXTENDED) Postgres moved the tsvector of bigger chunks (27 % of them
in the benchmark's 111k rows) out of line, so ranking one meant a TOAST index
lookup and page read. MAIN keeps it in the row (compressed if need be) and
moves search_text (read by nobody) and the embedding out first. Rarest-word
queries at 100k chunks: p50 20 -> 14 ms, p95 54-74 -> 34-36 ms. ``content``,
read for every result row, gets the same treatment: with tsv in the row it
would otherwise be the column moved out (small project, 90 results per
half: ~0.5 ms per search), and keeping it costs ranking nothing measurable
(matches are one per heap page either way).

The setting applies to rows written afterwards. Rows already there are
rewritten here (CLUSTER, which also rebuilds every index) when that is quick;
a bigger table keeps its rows as they are, which only costs speed, until its
projects are re-indexed or an operator runs ``CLUSTER chunks USING
chunks_pkey`` (or ``VACUUM FULL chunks``) in a quiet moment: a rewrite holds
an exclusive lock, and a long one at start-up would outlast the pod's probes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A rewrite of this many chunks (heap, TOAST, GIN, HNSW) takes ~15 s on the
# 2-core test VM; more is left to the operator.
REWRITE_MAX_ROWS = 20_000

log = logging.getLogger("alembic.runtime.migration")


def _rewrite_rows_if_quick() -> None:
    if context.is_offline_mode():
        return
    limit = int(context.config.attributes.get("chunks_rewrite_max_rows", REWRITE_MAX_ROWS))
    rows = op.get_bind().execute(sa.text("SELECT count(*) FROM chunks")).scalar_one()
    if not rows:
        return
    if rows > limit:
        log.warning(
            "chunks has %d rows: not rewritten now (it would lock the table for minutes). "
            "Search is faster once they are: re-index, or run "
            "CLUSTER chunks USING chunks_pkey in a quiet moment",
            rows,
        )
        return
    # A rewrite re-toasts every row under the new storage; ids in order keeps
    # the chunks of a file together, as they were written. No parallel index
    # builds: they need more shared memory than a container's 64 MB /dev/shm.
    op.execute("SET LOCAL max_parallel_maintenance_workers = 0")
    op.execute("CLUSTER chunks USING chunks_pkey")
    op.execute("ANALYZE chunks")


def upgrade() -> None:
    op.execute(
        "ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE MAIN, "
        "ALTER COLUMN content SET STORAGE MAIN"
    )
    _rewrite_rows_if_quick()


def downgrade() -> None:
    # Rows keep their layout; both layouts read the same.
    op.execute(
        "ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE EXTENDED, "
        "ALTER COLUMN content SET STORAGE EXTENDED"
    )
    op.execute("ALTER TABLE chunks SET WITHOUT CLUSTER")
