"""``codebase-mcp serve``: run the MCP server (stdio, or streamable HTTP at /mcp)."""

from __future__ import annotations

import logging
import sys

import click


@click.command()
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="http",
    show_default=True,
    envvar="CODEBASE_MCP_TRANSPORT",
    help="stdio for one local client, http for streamable HTTP at /mcp. "
    "[env: CODEBASE_MCP_TRANSPORT]",
)
@click.option(
    "--host", default=None, help="HTTP address. [env: CODEBASE_MCP_HOST; default 0.0.0.0]"
)
@click.option(
    "--port", type=int, default=None, help="HTTP port. [env: CODEBASE_MCP_PORT; default 8000]"
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="CODEBASE_MCP_LOG_LEVEL",
    help="Log level of the server's own log lines (stderr). [env: CODEBASE_MCP_LOG_LEVEL]",
)
def serve(transport: str, host: str | None, port: int | None, log_level: str) -> None:
    """Serve semantic code search over MCP (tools: start_indexing_background,
    get_indexing_status, cancel_indexing, search_code, list_projects, delete_project)
    and GET /health over HTTP. Database: DATABASE_*; embedder: EMBEDDER_URL/MODEL;
    path mapping: CODEBASE_MCP_ROOTS="/host/path=/container/path,..."."""
    from codebase_mcp.server.app import build_state, create_server
    from codebase_mcp.server.config import ServerSettings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = ServerSettings(**overrides)  # type: ignore[arg-type]
    # Logs go to stderr: on stdio, stdout belongs to the protocol.
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    mcp = create_server(build_state(settings))
    if transport == "stdio":
        mcp.run(transport="stdio", show_banner=False)
    else:
        mcp.run(
            transport="http",
            host=settings.host,
            port=settings.port,
            path="/mcp",
            show_banner=False,
            log_level=log_level,
        )
