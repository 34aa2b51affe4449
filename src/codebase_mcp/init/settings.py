"""The init's settings as a pydantic-settings model (env prefix ``CODEBASE_MCP_INIT_``).

Derived from the one declaration, :class:`codebase_mcp.init.config.InitConfig`:
``codebase-mcp init`` reads its settings with that stdlib dataclass and builds this
model only when the dataclass cannot decide (an unusual spelling or an invalid value),
so its errors are pydantic's.
"""

from __future__ import annotations

from codebase_mcp.init.config import InitConfig
from codebase_mcp.settingsmodel import settings_model

ENV_PREFIX = InitConfig.PREFIX
InitSettings = settings_model(InitConfig)
