"""Embedding shards: a job's embedding work split into pieces any worker claims (issue 15).

After its lexical phase, the job's owner cuts the chunks still waiting for a
vector into shards of about ``SHARD_CHUNKS`` chunks (``embed_rank`` order) and
writes them here. Every worker of every replica that finds no job to claim
claims a pending shard of a running job (``FOR UPDATE SKIP LOCKED``), embeds
it, heart-beats it and marks it done; a shard whose heartbeat is older than
``STALE_AFTER`` goes back to pending. The owner finishes the job when every
shard is done. ``chunk_ids``: the chunks of the shard (a vector is written only
by the worker holding the shard, and only where the chunk has none yet).
``model_digest``: the digest of the owner's model weights (NULL: its embedder
reports none); a replica claims a shard only if its own weights have that digest,
so a replica whose embedder serves other weights under the same name mixes nothing.

Revision ID: 0011_job_shards
Revises: 0010_search_speed
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_job_shards"
down_revision: str | Sequence[str] | None = "0010_search_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE job_shards (
            job_id           uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            shard_no         integer NOT NULL,
            project_id       text NOT NULL,
            dimension        integer NOT NULL CHECK (dimension > 0),
            model_digest     text,
            chunk_ids        bigint[] NOT NULL,
            status           text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'running', 'done', 'failed')),
            worker_id        text,
            heartbeat_at     timestamptz,
            attempts         integer NOT NULL DEFAULT 0,
            chunks_embedded  integer NOT NULL DEFAULT 0,
            chunks_reused    integer NOT NULL DEFAULT 0,
            created_at       timestamptz NOT NULL DEFAULT now(),
            started_at       timestamptz,
            finished_at      timestamptz,
            PRIMARY KEY (job_id, shard_no)
        )
        """
    )
    # What claims read (pending shards, oldest job first) and what recovery reads.
    op.execute("CREATE INDEX job_shards_pending ON job_shards (job_id, shard_no) "
               "WHERE status = 'pending'")  # fmt: skip
    op.execute("CREATE INDEX job_shards_running ON job_shards (heartbeat_at) "
               "WHERE status = 'running'")  # fmt: skip


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS job_shards")
