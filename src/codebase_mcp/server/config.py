"""Server settings, read from ``CODEBASE_MCP_*`` environment variables.

Database and embedder locations live in :mod:`codebase_mcp.settings` (shared
with ``init`` and ``health``); everything only the server needs lives here.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codebase_mcp.errors import ConfigError
from codebase_mcp.server.gitsource.plan import GitConfig
from codebase_mcp.server.gitsource.urls import parse_host_rules, parse_protocols


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


def parse_embedder_urls(value: str) -> list[str]:
    """Parse ``"http://e1:11434,http://e2:11434"`` (empty string: none; duplicates refused)."""
    urls: list[str] = []
    for raw in value.split(","):
        item = raw.strip().rstrip("/")
        if not item:
            continue
        if not item.startswith(("http://", "https://")) or item.endswith("://"):
            raise ConfigError(
                f"CODEBASE_MCP_EMBEDDER_URLS entry {item!r} is not an http(s) URL",
                hint='write base URLs like "http://10.0.0.5:11434,http://10.0.0.6:11434"',
            )
        if item in urls:
            raise ConfigError(
                f"CODEBASE_MCP_EMBEDDER_URLS names {item} twice",
                hint="list each embedder once",
            )
        urls.append(item)
    return urls


def default_git_cache() -> Path:
    """``$XDG_CACHE_HOME/codebase-mcp/git`` (``~/.cache/...``); the pod mounts a volume."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codebase-mcp" / "git"


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
    # Several embedders: comma separated, overrides EMBEDDER_URL (docs/embedder.md, "Several").
    embedder_urls: str = Field(default="", description="embedder base URLs, comma separated")
    embedder_backoff_max: float = Field(default=30.0, gt=0, le=3600)
    write_batch_files: int = Field(default=200, ge=1)
    # A first index of at least this many chunks, when writing is slower than
    # embedding, loads without the HNSW index and builds it at the end (0: never).
    defer_index_min_chunks: int = Field(default=5000, ge=0)
    index_build_memory_mb: int = Field(default=256, ge=0)  # maintenance_work_mem of a build
    # The embedding cache shared by every project (docs/server.md, "Embedding cache"):
    # vectors keyed by the model's weights digest and the sha256 of the text embedded.
    embedding_cache: bool = Field(
        default=True, description="reuse vectors of identical texts across projects and paths"
    )
    # Entries no chunk uses are deleted once unused this long (seconds) ...
    embedding_cache_grace: float = Field(default=3 * 86400.0, ge=0)
    # ... by a collection run after a job at most this often (seconds), and after delete_project.
    embedding_cache_gc_interval: float = Field(default=600.0, ge=0)

    # Jobs.
    workers: int = Field(default=1, ge=0, le=16)  # 0: this replica never indexes
    poll_interval: float = Field(default=2.0, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    stale_after: float = Field(default=60.0, gt=0)  # a running job without heartbeat this long
    max_attempts: int = Field(default=3, ge=1)
    # A job's embedding work is cut into shards of about this many chunks, which
    # every worker of every replica claims (docs/server.md, "Jobs": scale-out).
    shard_chunks: int = Field(
        default=128, ge=1, le=100_000, description="chunks per embedding shard of a job"
    )

    # Watch mode (start_indexing_background(watch=true)): docs/server.md, "Watch mode".
    watch_debounce_ms: int = Field(
        default=300, ge=10, le=60_000, description="quiet time before a batch of changes syncs"
    )
    watch_reconcile_interval: float = Field(
        default=5.0, gt=0, description="seconds between re-reads of the watched projects"
    )
    watch_force_polling: bool | None = Field(
        default=None, description="poll instead of inotify (unset: inotify, polling if it fails)"
    )

    # Search.
    search_mode: Literal["vector", "lexical", "hybrid"] = "hybrid"
    # Hybrid fusion (chosen on eval/, see eval/README.md): weighted reciprocal rank
    # fusion (rrf: weight / (rrf_k + rank)) or a convex mix of cosine and normalised BM25.
    fusion: Literal["rrf", "convex"] = Field(
        default="rrf", description="hybrid fusion: rrf (weighted reciprocal rank) or convex"
    )
    rrf_k: int = Field(default=30, ge=1, le=1000, description="k of reciprocal rank fusion")
    fusion_weight: float = Field(
        default=0.7, ge=0.0, le=1.0, description="share of the vector half in hybrid fusion"
    )
    bm25_k1: float = Field(default=1.2, ge=0.0, le=10.0, description="BM25 term saturation")
    bm25_b: float = Field(default=0.4, ge=0.0, le=1.0, description="BM25 length normalisation")
    # Seconds a query's embedding may take; past it (or if the embedder fails) the
    # search answers from the lexical index and says so (0: wait as long as it takes).
    query_embed_timeout: float = Field(
        default=2.0, ge=0.0, description="seconds; past it a search answers lexically (0: wait)"
    )
    # Query vectors kept in memory (LRU): a text searched again is not embedded
    # again. 0: none.
    query_cache_size: int = Field(
        default=1024, ge=0, le=1_000_000, description="query vectors kept (LRU); 0: none"
    )
    ef_search: int = Field(default=100, ge=10, le=1000)
    # Time the full-text half of hybrid search may take; past it, vector-only (0: no limit).
    text_search_budget_ms: int = Field(default=40, ge=0)
    # Postings the lexical half may read to select candidates: the rarest query
    # terms that fit select them, the others only add to their scores (0: no cap).
    text_search_max_cost: int = Field(
        default=20000, ge=0, description="postings the lexical half reads to select (0: all)"
    )
    # Postings of each query term the lexical half reads, best first (impact order,
    # migration 0010_search_speed); the candidates are rescored exactly. 0: the
    # rarest terms within text_search_max_cost select (the earlier plan). Filtered
    # searches always use that plan.
    text_search_per_term: int = Field(
        default=1000, ge=0, description="postings per query term the lexical half reads (0: off)"
    )
    max_limit: int = Field(default=100, ge=1)
    context_lines: int = Field(default=2, ge=0, le=20)

    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)

    # Git sources (repo_url + ref): docs/server.md, "Git sources".
    git_hosts: str = Field(
        default="", description="hosts git URLs may name, comma separated; empty: git disabled"
    )
    git_protocols: str = Field(default="https,ssh", description="of https, ssh, http, git")
    git_cache: Path = Field(default_factory=default_git_cache, description="mirrors, checkouts")
    git_timeout: float = Field(default=300.0, gt=0, description="seconds, per git call")
    git_ssh_key_file: Path | None = Field(default=None, description="mounted SSH private key")
    git_known_hosts_file: Path | None = Field(default=None, description="ssh host keys")
    git_token_file: Path | None = Field(default=None, description="mounted https token")
    git_token_scheme: Literal["basic", "bearer"] = "basic"  # noqa: S105 - not a secret
    git_token_user: str = Field(default="x-access-token", min_length=1, pattern=r"^[^:\s]+$")

    @field_validator("roots")
    @classmethod
    def _roots_parse(cls, value: str) -> str:
        parse_roots(value)
        return value

    @field_validator("embedder_urls")
    @classmethod
    def _embedder_urls_parse(cls, value: str) -> str:
        parse_embedder_urls(value)
        return value

    @field_validator("git_hosts")
    @classmethod
    def _git_hosts_parse(cls, value: str) -> str:
        parse_host_rules(value)
        return value

    @field_validator("git_protocols")
    @classmethod
    def _git_protocols_parse(cls, value: str) -> str:
        parse_protocols(value)
        return value

    @model_validator(mode="after")
    def _git_files_exist(self) -> ServerSettings:
        for var, path in (
            ("CODEBASE_MCP_GIT_SSH_KEY_FILE", self.git_ssh_key_file),
            ("CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE", self.git_known_hosts_file),
            ("CODEBASE_MCP_GIT_TOKEN_FILE", self.git_token_file),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(
                    f"{var}={path} does not exist", hint=f"mount the secret there or unset {var}"
                )
        return self

    def root_mappings(self) -> list[RootMapping]:
        return parse_roots(self.roots)

    def git_config(self) -> GitConfig:
        """The git-source settings as plain data for ``gitsource.GitSources``."""
        return GitConfig(
            cache_dir=self.git_cache,
            hosts=parse_host_rules(self.git_hosts),
            protocols=parse_protocols(self.git_protocols),
            timeout=self.git_timeout,
            ssh_key_file=self.git_ssh_key_file,
            known_hosts_file=self.git_known_hosts_file,
            token_file=self.git_token_file,
            token_scheme=self.git_token_scheme,
            token_user=self.git_token_user,
        )
