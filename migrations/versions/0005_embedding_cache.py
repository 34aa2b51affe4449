"""Content-addressed embedding cache, shared by every project and path.

- ``embedding_cache``: one vector per (text_sha256, model_key). ``text_sha256``
  is the sha256 of the exact text the model reads for a chunk
  (chunker.embedding_text); ``model_key`` names the model, its dimension and
  the digest of its weights (codebase_mcp.server.embedcache.cache_key), so two
  different weights never share an entry. The key leads with the text hash:
  the same index serves a job's lookups (``model_key = $1 AND text_sha256 =
  ANY($2)``) and the garbage collector's "does a chunk still use this text".
  ``last_used``: set when an entry is written, used, or when the last chunks
  using it go away; the collector keeps unreferenced entries this long
  (``CODEBASE_MCP_EMBEDDING_CACHE_GRACE``).
- ``chunks.text_sha256``: the same hash on every chunk written from now on (NULL
  for chunks written before; set when they get their vector).
- ``jobs.chunks_reused``: chunks whose vector came from the cache.
- ``embedding_models``: the vector length each (model, weights digest) answered,
  so a new project of known weights needs no probe request to the embedder.

Revision ID: 0005_embedding_cache
Revises: 0004_watches
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_embedding_cache"
down_revision: str | Sequence[str] | None = "0004_watches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE embedding_cache (
            text_sha256  bytea NOT NULL CHECK (length(text_sha256) = 32),
            model_key    text NOT NULL,
            embedding    vector NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            last_used    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (text_sha256, model_key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE embedding_models (
            model       text NOT NULL,
            digest      text NOT NULL,
            dimension   integer NOT NULL CHECK (dimension > 0),
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (model, digest)
        )
        """
    )
    op.execute("ALTER TABLE chunks ADD COLUMN text_sha256 bytea")
    op.execute("CREATE INDEX chunks_text_sha256 ON chunks (text_sha256)")
    op.execute("ALTER TABLE jobs ADD COLUMN chunks_reused integer NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN IF EXISTS chunks_reused")
    op.execute("DROP INDEX IF EXISTS chunks_text_sha256")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS text_sha256")
    op.execute("DROP TABLE IF EXISTS embedding_models")
    op.execute("DROP TABLE IF EXISTS embedding_cache")
