"""The init's own settings (env prefix ``CODEBASE_MCP_INIT_``); the CLI options override them.

The source of truth for the init's settings. ``codebase-mcp init`` reads them through the
stdlib mirror :class:`codebase_mcp.init.config.InitConfig` and builds this model only when
the mirror cannot decide (unusual spelling or invalid value); a change here must be
mirrored there, which ``tests/unit/init/test_envconfig.py`` enforces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codebase_mcp.init.backoff import Backoff

ENV_PREFIX = "CODEBASE_MCP_INIT_"


class InitSettings(BaseSettings):
    """How long to wait, how to back off, what to do before starting the server."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    deadline: float = Field(default=60.0, gt=0, description="seconds to wait for all dependencies")
    grace_period: float = Field(
        default=10.0, ge=0, description="seconds between SIGTERM and SIGKILL"
    )
    backoff_base: float = Field(default=0.2, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(default=5.0, gt=0, description="largest retry delay, seconds")
    attempt_timeout: float = Field(default=5.0, gt=0, description="timeout of one probe, seconds")
    log_format: Literal["json", "text"] = "text"
    wait_database: bool = True
    wait_embedder: bool = True
    migrate: bool = True
    migrations: Path | None = Field(
        default=None, description="alembic script directory (default: the packaged migrations)"
    )

    @model_validator(mode="after")
    def _backoff_ordered(self) -> InitSettings:
        if self.backoff_max < self.backoff_base:
            raise ValueError(
                f"backoff_max ({self.backoff_max}) must be >= backoff_base ({self.backoff_base})"
            )
        return self

    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, max=self.backoff_max)
