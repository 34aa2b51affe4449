"""The init's settings, declared once: every option of ``codebase-mcp init`` is a field here.

Each field is one option: its name (``--grace-period``, ``CODEBASE_MCP_INIT_GRACE_PERIOD``),
type, default, bounds and one line of help. Everything else is derived from this table:

- the click options of ``codebase-mcp init`` (:mod:`codebase_mcp.cli.init`),
- the stdlib command-line reader of its fast path (:mod:`codebase_mcp.cli.initcmd`),
- the pydantic model that validates what the fast path defers
  (:class:`codebase_mcp.init.settings.InitSettings`),
- ``codebase-mcp config`` and ``docs/env.example``.

Stdlib only (it is what ``codebase-mcp init`` runs with, read without pydantic: see
:mod:`codebase_mcp.envconfig`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal

from codebase_mcp.envconfig import setting
from codebase_mcp.init.backoff import Backoff


@dataclasses.dataclass(frozen=True)
class InitConfig:
    """How long to wait, how to back off, what to do before starting the server."""

    PREFIX: ClassVar[str] = "CODEBASE_MCP_INIT_"
    MODEL: ClassVar[str] = "codebase_mcp.init.settings:InitSettings"

    deadline: float = setting(60.0, "Seconds to wait for Postgres and the embedder together.", gt=0)
    grace_period: float = setting(
        10.0, "Seconds the command gets after SIGTERM/SIGINT/SIGQUIT before SIGKILL.", ge=0
    )
    backoff_base: float = setting(0.2, "First retry delay in seconds (doubles per attempt).", gt=0)
    backoff_max: float = setting(5.0, "Largest retry delay in seconds.", gt=0)
    attempt_timeout: float = setting(5.0, "Timeout of one probe in seconds.", gt=0)
    log_format: Literal["json", "text"] = setting(
        "text", "One line per event, as JSON or key=value text."
    )
    wait_database: bool = setting(True, "Wait for Postgres (DATABASE_URL or DATABASE_*).")
    wait_embedder: bool = setting(
        True,
        "Wait for the embedder (EMBEDDER_URL) and its model (EMBEDDER_MODEL; pulled when "
        "EMBEDDER_PULL=true).",
    )
    migrate: bool = setting(True, "Run `alembic upgrade head` under an advisory lock.")
    migrations: Path | None = setting(
        None,
        "Alembic script directory to apply.",
        default_text="the migrations shipped with codebase-mcp",
    )

    def check(self) -> None:
        """The settings' cross-field rule (the model raises this as its validation error)."""
        if self.backoff_max < self.backoff_base:
            raise ValueError(
                f"backoff_max ({self.backoff_max}) must be >= backoff_base ({self.backoff_base})"
            )

    def consistent(self) -> bool:
        try:
            self.check()
        except ValueError:
            return False
        return True

    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, max=self.backoff_max)
