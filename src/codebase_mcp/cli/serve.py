"""``codebase-mcp serve``: run the MCP server (stdio, or streamable HTTP at /mcp)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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
    "--host", default=None, help="HTTP address. [env: CODEBASE_MCP_HOST; default 127.0.0.1]"
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
@click.option(
    "--auth-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Require `Authorization: Bearer <token>` on /mcp, the token read from this file. "
    "[env: CODEBASE_MCP_AUTH_TOKEN_FILE]",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=False,
    help="Serve a non-loopback address without a token (only behind a proxy that "
    "authenticates). [env: CODEBASE_MCP_INSECURE_NO_AUTH]",
)
def serve(
    transport: str,
    host: str | None,
    port: int | None,
    log_level: str,
    auth_token_file: Path | None,
    insecure_no_auth: bool,
) -> None:
    """Serve semantic code search over MCP (tools: start_indexing_background,
    get_indexing_status, cancel_indexing, search_code, list_projects, delete_project)
    and GET /health over HTTP. Database: DATABASE_*; embedder: EMBEDDER_URL/MODEL;
    path mapping: CODEBASE_MCP_ROOTS="/host/path=/container/path,...".

    Over HTTP the server answers only requests whose Host names it and whose
    Origin (if any) is allowed (CODEBASE_MCP_ALLOWED_HOSTS/_ORIGINS add more), and
    refuses to listen on a non-loopback address without a token. See docs/security.md.
    """
    from codebase_mcp.server.app import build_state, create_server
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.security import SecuritySettings, http_security

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
    if transport == "stdio":
        # One local client that started us: no network, nothing to check.
        create_server(build_state(settings)).run(transport="stdio", show_banner=False)
        return
    security_overrides: dict[str, object] = {}
    if auth_token_file is not None:
        security_overrides["auth_token_file"] = auth_token_file
    if insecure_no_auth:
        security_overrides["insecure_no_auth"] = True
    security = http_security(
        SecuritySettings(**security_overrides),  # type: ignore[arg-type]
        bind_host=settings.host,
        port=settings.port,
    )
    mcp = create_server(build_state(settings), auth=security.auth)
    mcp.run(
        transport="http",
        host=settings.host,
        port=settings.port,
        path="/mcp",
        show_banner=False,
        log_level=log_level,
        middleware=security.middleware,
    )
