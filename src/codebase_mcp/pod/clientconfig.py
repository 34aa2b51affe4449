"""Ready-to-paste MCP client configuration for a running pod: pure data."""

from __future__ import annotations

import json
from typing import Any

from codebase_mcp.server import tools

SERVER_KEY = "codebase"


def http_config(endpoint: str, token: str | None = None) -> dict[str, Any]:
    """Claude Code (.mcp.json), Cursor (~/.cursor/mcp.json) and other streamable-HTTP clients.

    With ``token`` the entry carries ``Authorization: Bearer <token>`` (``up --auth``).
    """
    server: dict[str, Any] = {"type": "http", "url": endpoint}
    if token:
        server["headers"] = {"Authorization": f"Bearer {token}"}
    return {"mcpServers": {SERVER_KEY: server}}


def stdio_argv(server_container: str) -> list[str]:
    """``podman exec -i``: the server's own environment (database, embedder) comes along."""
    return [
        "podman",
        "exec",
        "-i",
        server_container,
        "codebase-mcp",
        "serve",
        "--transport",
        "stdio",
    ]


def stdio_config(server_container: str) -> dict[str, Any]:
    """Claude Desktop (claude_desktop_config.json) and any client that spawns a command."""
    argv = stdio_argv(server_container)
    return {"mcpServers": {SERVER_KEY: {"command": argv[0], "args": argv[1:]}}}


def instructions(
    endpoint: str,
    server_container: str,
    repos: list[str],
    token: str | None = None,
    token_file: str | None = None,
) -> str:
    """What ``up`` prints once the pod is healthy (with ``token``: the header to send)."""
    indent = "  "
    http = json.dumps(http_config(endpoint, token), indent=2).replace("\n", "\n" + indent)
    stdio = json.dumps(stdio_config(server_container), indent=2).replace("\n", "\n" + indent)
    repo = repos[0] if repos else "/path/to/your/repo"
    lines = [
        f"MCP endpoint: {endpoint}",
        "",
        "Claude Code / Cursor (HTTP), e.g. .mcp.json:",
        indent + http,
        f"  or: claude mcp add --transport http {SERVER_KEY} {endpoint}"
        + (f' --header "Authorization: Bearer {token}"' if token else ""),
        "",
        "Claude Desktop (stdio through podman exec), claude_desktop_config.json:",
        indent + stdio,
        "",
        "Index a repository (it must be mounted: `codebase-mcp up --repo PATH`):",
        f'  ask your assistant: "index the repository {repo}" (tool {tools.START_INDEXING};',
        f"  {tools.INDEXING_STATUS} shows its progress), then search it ({tools.SEARCH}).",
    ]
    if token:
        where = f"{token_file} (mode 0600) and " if token_file else ""
        lines[1:1] = [
            "Auth: on. Every request needs `Authorization: Bearer <token>`; the token is in",
            f"  {where}the config below: keep them private.",
        ]
    if not repos:
        lines.append(
            "  no repository is mounted yet: `codebase-mcp repo add /abs/path` (or "
            "`up --repo /abs/path`), then `codebase-mcp up`."
        )
    return "\n".join(lines)
