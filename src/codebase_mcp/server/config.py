"""Server settings, read from ``CODEBASE_MCP_*`` environment variables.

Database and embedder locations live in :mod:`codebase_mcp.settings` (shared
with ``init`` and ``health``); everything only the server needs lives here.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codebase_mcp.errors import ConfigError


class RootMapping(BaseModel):
    """One mount: the path users know on the host and where the container sees it."""

    host: str
    container: str


def parse_roots(value: str) -> list[RootMapping]:
    """Parse ``"/host/a=/repos/a,/host/b=/repos/b"`` (empty string: no mapping)."""
    roots: list[RootMapping] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, container = item.partition("=")
        host, container = host.strip(), container.strip()
        if not sep or not host or not container:
            raise ConfigError(
                f"CODEBASE_MCP_ROOTS entry {item!r} is not HOST=CONTAINER",
                hint='write pairs like "/home/me/src=/repos/src,/srv/code=/repos/code"',
            )
        if not (host.startswith("/") and container.startswith("/")):
            raise ConfigError(
                f"CODEBASE_MCP_ROOTS entry {item!r} must use absolute paths on both sides",
                hint='write pairs like "/home/me/src=/repos/src"',
            )
        roots.append(
            RootMapping(host=posixpath.normpath(host), container=posixpath.normpath(container))
        )
    return roots


class ServerSettings(BaseSettings):
    """What the MCP server needs beyond the database and the embedder."""

    model_config = SettingsConfigDict(env_prefix="CODEBASE_MCP_", extra="ignore")

    # Loopback unless told otherwise: the images and the pod render set 0.0.0.0 (and
    # say how it is published, see codebase_mcp.server.security).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    roots: str = Field(default="", description="host=container pairs, comma separated")

    # Indexing.
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    max_chunk_chars: int = Field(default=1200, ge=200)  # all-minilm reads 256 tokens at most
    chunk_window_lines: int = Field(default=40, ge=5)
    embed_batch_size: int = Field(default=64, ge=1, le=2048)
    embed_timeout: float = Field(default=120.0, gt=0)
    write_batch_files: int = Field(default=200, ge=1)
    # A first index of at least this many chunks, when writing is slower than
    # embedding, loads without the HNSW index and builds it at the end (0: never).
    defer_index_min_chunks: int = Field(default=5000, ge=0)
    index_build_memory_mb: int = Field(default=256, ge=0)  # maintenance_work_mem of a build

    # Jobs.
    workers: int = Field(default=1, ge=0, le=16)  # 0: this replica never indexes
    poll_interval: float = Field(default=2.0, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    stale_after: float = Field(default=60.0, gt=0)  # a running job without heartbeat this long
    max_attempts: int = Field(default=3, ge=1)

    # Search.
    search_mode: Literal["vector", "hybrid"] = "hybrid"
    ef_search: int = Field(default=100, ge=10, le=1000)
    # Time the full-text half of hybrid search may take; past it, vector-only (0: no limit).
    text_search_budget_ms: int = Field(default=40, ge=0)
    # Chunks (estimated from Postgres' statistics) the full-text half may rank: the
    # rarest query words that fit select them (0: no cap, every word selects).
    text_search_max_cost: int = Field(default=2000, ge=0)
    max_limit: int = Field(default=100, ge=1)
    context_lines: int = Field(default=2, ge=0, le=20)

    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)

    @field_validator("roots")
    @classmethod
    def _roots_parse(cls, value: str) -> str:
        parse_roots(value)
        return value

    def root_mappings(self) -> list[RootMapping]:
        return parse_roots(self.roots)
