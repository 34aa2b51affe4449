"""``up --watch``: ask the running pod to index and watch every mounted repository.

Through the pod's own MCP endpoint, the way an assistant would call it, so the
server decides everything (paths, models, coalescing) and the CLI only asks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from codebase_mcp.errors import PodError


async def _watch_all(
    endpoint: str, repos: list[str], project_id: str, token: str | None
) -> list[dict[str, Any]]:
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport
    from fastmcp.exceptions import ToolError

    headers = {"Authorization": f"Bearer {token}"} if token else None
    started: list[dict[str, Any]] = []
    async with Client(StreamableHttpTransport(endpoint, headers=headers)) as client:
        for repo in repos:
            arguments = {"repo_path": repo, "project_id": project_id, "watch": True}
            try:
                result = await client.call_tool("start_indexing_background", arguments)
            except ToolError as exc:
                raise PodError(
                    f"the pod refused to watch {repo}: {exc}",
                    hint="see `codebase-mcp logs server`; `codebase-mcp repo list` shows "
                    "what is mounted",
                ) from exc
            answer = dict(result.structured_content or {})
            started.append({"repo_path": repo, "job_id": answer.get("job_id")})
    return started


def watch_repositories(
    endpoint: str, repos: list[str], *, project_id: str, token: str | None
) -> list[dict[str, Any]]:
    """Queue an index of each repository with watch=true; returns repo and job id each."""
    if not repos:
        return []
    try:
        return asyncio.run(_watch_all(endpoint, repos, project_id, token))
    except PodError:
        raise
    except Exception as exc:  # transport failures: the pod was healthy a moment ago
        raise PodError(
            f"cannot reach the pod's MCP endpoint {endpoint} to start watching: {exc}",
            hint="run `codebase-mcp status`; then `codebase-mcp up --watch` again",
        ) from exc
