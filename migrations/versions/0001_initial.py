"""Initial schema: projects, files, chunks (pgvector + full text), jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dimensions that get an HNSW index up front: all-minilm (384) and
# nomic-embed-text (768). Others are created on first use by the server.
PRESET_DIMENSIONS = (384, 768)


def hnsw_index_sql(dimension: int) -> str:
    # Kept in step with codebase_mcp.server.db.hnsw_index_sql (same name, same shape).
    return (
        f"CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_{dimension} ON chunks "
        f"USING hnsw ((embedding::vector({dimension})) vector_ip_ops) "
        f"WHERE embedding_dim = {dimension}"
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        """
        CREATE TABLE projects (
            id               text PRIMARY KEY,
            embedding_model  text NOT NULL,
            embedding_dim    integer NOT NULL CHECK (embedding_dim > 0),
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE files (
            id            bigserial PRIMARY KEY,
            project_id    text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            repo_root     text NOT NULL,   -- container path of the indexed repository
            path          text NOT NULL,   -- container path of the file
            rel_path      text NOT NULL,   -- relative to repo_root
            content_hash  text NOT NULL,   -- sha256 of the bytes
            language      text,
            size_bytes    bigint NOT NULL,
            chunk_count   integer NOT NULL DEFAULT 0,
            indexed_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (project_id, path)
        )
        """
    )
    op.execute("CREATE INDEX files_project_root ON files (project_id, repo_root)")
    op.execute(
        """
        CREATE TABLE chunks (
            id             bigserial PRIMARY KEY,
            project_id     text NOT NULL,
            file_id        bigint NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            path           text NOT NULL,
            rel_path       text NOT NULL,
            extension      text NOT NULL,
            language       text,
            start_line     integer NOT NULL,
            end_line       integer NOT NULL,
            symbol         text,
            content        text NOT NULL,
            search_text    text NOT NULL,
            embedding_dim  integer NOT NULL,
            embedding      vector NOT NULL,
            tsv            tsvector GENERATED ALWAYS AS (to_tsvector('english', search_text))
                           STORED
        )
        """
    )
    op.execute("CREATE INDEX chunks_file ON chunks (file_id)")
    op.execute("CREATE INDEX chunks_project ON chunks (project_id)")
    op.execute("CREATE INDEX chunks_tsv ON chunks USING gin (tsv)")
    for dimension in PRESET_DIMENSIONS:
        op.execute(hnsw_index_sql(dimension))
    op.execute(
        """
        CREATE TABLE jobs (
            id                uuid PRIMARY KEY,
            project_id        text NOT NULL,
            repo_path         text NOT NULL,   -- as the user gave it (host path)
            root_path         text NOT NULL,   -- container path the worker reads
            force_reindex     boolean NOT NULL DEFAULT false,
            embedding_model   text NOT NULL,
            status            text NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'running', 'completed', 'failed',
                                                'cancelled')),
            cancel_requested  boolean NOT NULL DEFAULT false,
            worker_id         text,
            attempts          integer NOT NULL DEFAULT 0,
            created_at        timestamptz NOT NULL DEFAULT now(),
            started_at        timestamptz,
            heartbeat_at      timestamptz,
            finished_at       timestamptz,
            files_total       integer NOT NULL DEFAULT 0,
            files_scanned     integer NOT NULL DEFAULT 0,
            files_indexed     integer NOT NULL DEFAULT 0,
            files_unchanged   integer NOT NULL DEFAULT 0,
            files_skipped     integer NOT NULL DEFAULT 0,
            files_deleted     integer NOT NULL DEFAULT 0,
            chunks_created    integer NOT NULL DEFAULT 0,
            errors            jsonb NOT NULL DEFAULT '[]'::jsonb,
            error             text,
            timings           jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute("CREATE INDEX jobs_pending ON jobs (created_at) WHERE status = 'pending'")
    op.execute("CREATE INDEX jobs_running ON jobs (heartbeat_at) WHERE status = 'running'")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS jobs")
    op.execute("DROP TABLE IF EXISTS chunks")
    op.execute("DROP TABLE IF EXISTS files")
    op.execute("DROP TABLE IF EXISTS projects")
