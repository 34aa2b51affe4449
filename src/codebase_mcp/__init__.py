"""codebase-mcp: semantic code search over MCP and the reproducible image builder that ships it."""

__version__ = "0.1.0"
