"""The names of the server's MCP tools: the registry the CLI's hints read.

Kept apart from :mod:`codebase_mcp.server.app` (which imports FastMCP, slow to load)
so that ``codebase-mcp up`` can name the tools without importing the server.
``tests/unit/server/test_server_tools.py`` fails when this list and the tools the
server registers drift apart.
"""

from __future__ import annotations

START_INDEXING = "start_indexing_background"
INDEXING_STATUS = "get_indexing_status"
CANCEL_INDEXING = "cancel_indexing"
SEARCH = "search_code"
LIST_PROJECTS = "list_projects"
DELETE_PROJECT = "delete_project"

TOOLS: tuple[str, ...] = (
    START_INDEXING,
    INDEXING_STATUS,
    CANCEL_INDEXING,
    SEARCH,
    LIST_PROJECTS,
    DELETE_PROJECT,
)
