"""Stdlib mirror of :class:`codebase_mcp.init.settings.InitSettings` (see ``envconfig``).

What ``codebase-mcp init`` actually runs with: read from ``CODEBASE_MCP_INIT_*`` and the
CLI options without importing pydantic, or converted from the pydantic model when the
mirror defers to it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal

from codebase_mcp.init.backoff import Backoff


@dataclasses.dataclass(frozen=True)
class InitConfig:
    PREFIX: ClassVar[str] = "CODEBASE_MCP_INIT_"
    MODEL: ClassVar[str] = "codebase_mcp.init.settings:InitSettings"

    deadline: float = dataclasses.field(default=60.0, metadata={"gt": 0})
    grace_period: float = dataclasses.field(default=10.0, metadata={"ge": 0})
    backoff_base: float = dataclasses.field(default=0.2, metadata={"gt": 0})
    backoff_max: float = dataclasses.field(default=5.0, metadata={"gt": 0})
    attempt_timeout: float = dataclasses.field(default=5.0, metadata={"gt": 0})
    log_format: Literal["json", "text"] = "text"
    wait_database: bool = True
    wait_embedder: bool = True
    migrate: bool = True
    migrations: Path | None = None

    def consistent(self) -> bool:
        # InitSettings._backoff_ordered raises ValueError otherwise.
        return self.backoff_max >= self.backoff_base

    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, max=self.backoff_max)
