"""Lexical first: chunks without vectors, a BM25 index per project, embedding progress.

- ``chunks.embedding`` becomes nullable: the indexer writes chunks and their
  lexical index first (seconds) and fills the vectors in afterwards, so a
  project is searchable before embedding finishes. ``embed_rank`` orders the
  embedding (source code first, then docs, then tests); a partial index over
  the chunks still waiting keeps "the next batch to embed" cheap.
- BM25 over identifier words, scored in SQL from stored statistics:
  ``lexical_terms`` (document frequency per term and project, ``term_id``
  unique across projects), ``lexical_postings`` (term, chunk, term frequency,
  chunk length; a covering primary key, so a term's postings are one index
  range scan) and ``project_stats`` (chunks, chunks embedded, N and total
  length of the lexical documents). The indexer maintains them in the same
  transaction as the chunks (no foreign keys on postings: a per-row check
  would cost more than the insert).
- The generated ``tsv`` column and its GIN index go: postings are computed
  from ``search_text`` with the same ``to_tsvector('english', ...)`` when a
  chunk is written, and ``ts_rank_cd`` is no longer used.
- ``jobs`` gets ``chunks_to_embed`` and ``chunks_embedded``: status reports
  lexical and semantic progress separately.

Existing projects keep their vectors; their lexical index is built by the
next indexing job of the project (``project_stats.lexical_ready`` false until
then; nothing is embedded again).

Revision ID: 0003_lexical_index
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_lexical_index"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding DROP NOT NULL")
    op.execute("ALTER TABLE chunks ADD COLUMN embed_rank smallint NOT NULL DEFAULT 0")
    op.execute(
        "CREATE INDEX chunks_unembedded ON chunks (project_id, embed_rank, id) "
        "WHERE embedding IS NULL"
    )
    op.execute("DROP INDEX IF EXISTS chunks_tsv")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS tsv")
    op.execute(
        """
        CREATE TABLE project_stats (
            project_id      text PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
            chunks          bigint NOT NULL DEFAULT 0,  -- every chunk of the project
            embedded        bigint NOT NULL DEFAULT 0,  -- chunks with a vector
            lexical_docs    bigint NOT NULL DEFAULT 0,  -- BM25 N: chunks with at least one term
            lexical_length  bigint NOT NULL DEFAULT 0,  -- sum of their lengths (terms)
            lexical_ready   boolean NOT NULL DEFAULT true
        )
        """
    )
    op.execute(
        """
        CREATE TABLE lexical_terms (
            term_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            term        text NOT NULL,
            df          integer NOT NULL,
            UNIQUE (project_id, term)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE lexical_postings (
            term_id   integer NOT NULL,
            chunk_id  bigint NOT NULL,
            tf        smallint NOT NULL,
            dl        smallint NOT NULL,
            PRIMARY KEY (term_id, chunk_id) INCLUDE (tf, dl)
        )
        """
    )
    # Projects indexed before this migration: counts now, lexical index at the next job.
    op.execute(
        """
        INSERT INTO project_stats (project_id, chunks, embedded, lexical_ready)
        SELECT p.id, count(c.id), count(c.id), false
        FROM projects p LEFT JOIN chunks c ON c.project_id = p.id
        GROUP BY p.id
        """
    )
    op.execute(
        "ALTER TABLE jobs ADD COLUMN chunks_to_embed integer NOT NULL DEFAULT 0, "
        "ADD COLUMN chunks_embedded integer NOT NULL DEFAULT 0"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN chunks_to_embed, DROP COLUMN chunks_embedded")
    op.execute("DROP TABLE lexical_postings")
    op.execute("DROP TABLE lexical_terms")
    op.execute("DROP TABLE project_stats")
    # Chunks never embedded cannot satisfy NOT NULL again: they go (a re-index
    # under the old code writes them again).
    op.execute("DELETE FROM chunks WHERE embedding IS NULL")
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET NOT NULL")
    op.execute("DROP INDEX chunks_unembedded")
    op.execute("ALTER TABLE chunks DROP COLUMN embed_rank")
    op.execute(
        "ALTER TABLE chunks ADD COLUMN tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED"
    )
    op.execute("ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE MAIN")
    op.execute("CREATE INDEX chunks_tsv ON chunks USING gin (tsv)")
