"""Keep a chunk's vector in its row: chunks toast_tuple_target = 8160.

A row of ``chunks`` (a 384-dimension vector is 1.5 kB, the content ~0.75 kB)
passed Postgres' default 2 kB target, so the toaster moved the biggest column
that may go out of line, the vector (pgvector stores it EXTERNAL), into the
TOAST table. Every exact vector scan then paid a TOAST index lookup and page
read per chunk: the plan for every project up to a few thousand chunks, and for
filtered searches. On a 596-chunk project (click) the scan read 3,770 buffers
and took 3.9 ms idle, 13.8 ms on average under 16 concurrent clients
(pg_stat_statements); with the vectors in the row it reads ~270 and takes
1.05 ms. Hits' similarities (the lexical half computes them) read the vector
too. With a target of 8160 bytes (the maximum) the toaster moves nothing until
a row no longer fits a page; bigger rows are toasted as before.

The setting applies to rows written afterwards. Rows already there are
rewritten here (CLUSTER, as in 0002) when that is quick; a bigger table keeps
its rows until its projects are re-indexed or an operator runs
``CLUSTER chunks USING chunks_pkey`` in a quiet moment.

Revision ID: 0013_embedding_inline
Revises: 0012_chunk_filter_keys
Create Date: 2026-12-04
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0013_embedding_inline"
down_revision: str | Sequence[str] | None = "0012_chunk_filter_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0002: a rewrite of this many chunks takes ~15 s on the 2-core test VM.
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
            "chunks has %d rows: their vectors stay out of line for now (a rewrite would "
            "lock the table for minutes). Vector search is faster once they are rewritten: "
            "re-index, or run CLUSTER chunks USING chunks_pkey in a quiet moment",
            rows,
        )
        return
    op.execute("SET LOCAL max_parallel_maintenance_workers = 0")
    op.execute("CLUSTER chunks USING chunks_pkey")
    op.execute("ANALYZE chunks")


def upgrade() -> None:
    op.execute("ALTER TABLE chunks SET (toast_tuple_target = 8160)")
    _rewrite_rows_if_quick()


def downgrade() -> None:
    # Rows keep their layout; both layouts read the same.
    op.execute("ALTER TABLE chunks RESET (toast_tuple_target)")
