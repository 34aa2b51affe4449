"""Impact-ordered postings: each term's best postings first (issue 12, BM25 at 100k).

``lexical_postings_impact`` orders every term's postings by their BM25 term-frequency
part (``tf / (tf + k1 (1 - b + b dl / avgdl))``) with the default k1 = 1.2, b = 0.4
and a fixed avgdl of 80 terms (the order only; the scores are computed exactly
from the stored statistics, with the project's own avgdl). The lexical half reads
at most ``TEXT_SEARCH_PER_TERM`` postings of each query term from it (an index-only
scan: chunk, tf and dl are included) instead of every posting of the rarest
terms, then rescores its best candidates exactly over every term.

Revision ID: 0010_search_speed
Revises: 0007_git_source
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_search_speed"
down_revision: str | Sequence[str] | None = "0007_git_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same text as codebase_mcp.server.db.POSTING_IMPACT (the planner matches it).
IMPACT = "(tf::float4 / (tf::float4 + 0.72 + 0.006 * dl::float4))"


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX lexical_postings_impact ON lexical_postings "
        f"(term_id, {IMPACT} DESC) INCLUDE (chunk_id, tf, dl)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX lexical_postings_impact")
