"""The FastMCP application: thin tool adapters over codebase_mcp.server.service,
the lifespan (pool, embedder, workers) and ``/health``.

Each tool declares its parameters (descriptions, bounds) and returns the answer
model of codebase_mcp.server.models, from which FastMCP publishes the tool's
output schema. The logic is in the service; state in codebase_mcp.server.state.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import asyncpg
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthProvider
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from codebase_mcp.errors import CodebaseMcpError
from codebase_mcp.server import service
from codebase_mcp.server.models import (
    CancelAnswer,
    DeletedProject,
    Detail,
    IndexingStarted,
    JobStatus,
    ProjectList,
    SearchAnswer,
)
from codebase_mcp.server.service import health_report
from codebase_mcp.server.state import ServerState, build_state
from codebase_mcp.server.toolguard import RejectUnusableArguments

__all__ = ["ServerState", "build_state", "create_server", "health_report", "tool_errors"]

log = logging.getLogger("codebase_mcp.server")
P = ParamSpec("P")
R = TypeVar("R")

# Parameters as clients see them. Bounds the server checks itself (limit against
# CODEBASE_MCP_MAX_LIMIT, the project id pattern) are published, not enforced by
# pydantic, so a bad value gets the server's own message and hint.
RepoPath = Annotated[
    str | None,
    Field(
        description="the repository to index: an absolute path on your machine "
        "(or give repo_url instead)"
    ),
]
RepoUrl = Annotated[
    str | None,
    Field(
        description="a git repository to index instead of repo_path: https://host/org/repo.git "
        "or ssh://git@host/org/repo.git, on a host the server allows (CODEBASE_MCP_GIT_HOSTS); "
        "no credentials in it (the server has its own)"
    ),
]
Ref = Annotated[
    str | None,
    Field(
        description="with repo_url: the branch, tag or commit to index (default: the "
        "remote's HEAD); resolved to one commit when the job is queued"
    ),
]
IndexProjectId = Annotated[
    str | None,
    Field(
        description="project to index into (letters, digits and . _ : -, at most 128 "
        "characters); default: 'default' for repo_path, host:org:repo for repo_url",
        json_schema_extra={"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
    ),
]
ProjectId = Annotated[
    str,
    Field(
        description="project to index into / search (letters, digits and . _ : -, "
        "at most 128 characters)",
        json_schema_extra={"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
    ),
]
ForceReindex = Annotated[
    bool, Field(description="rebuild everything, even unchanged files (also: switch models)")
]
Watch = Annotated[
    bool | None,
    Field(
        description="true: keep the repository in sync from filesystem events from now on "
        "(saved files searchable within seconds; survives restarts); false: stop that; "
        "unset: leave it as it is"
    ),
]
JobId = Annotated[str, Field(description="the job_id start_indexing_background returned")]
Query = Annotated[
    str,
    Field(
        description="what the code does, in words, or identifiers it uses (at most 4000 characters)"
    ),
]
Limit = Annotated[
    int,
    Field(
        description="how many hits to rank (1..100, or the server's CODEBASE_MCP_MAX_LIMIT); "
        "compact answers merge adjacent hits of one file",
        json_schema_extra={"minimum": 1},
    ),
]
FileType = Annotated[
    str | None, Field(description='only this extension ("py") or language ("python")')
]
Directory = Annotated[
    str | None,
    Field(
        description="only files under this directory: an absolute path on your machine "
        "or one relative to the repository"
    ),
]
DetailArg = Annotated[
    Detail,
    Field(
        description="'compact' (default): per hit the relative path, lines, symbol, score "
        "and a few matching lines; 'full': whole chunks with host paths and context"
    ),
]


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our errors into MCP tool errors with the message and what to do."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except CodebaseMcpError as exc:
            text = exc.message + (f". Hint: {exc.hint}" if exc.hint else "")
            raise ToolError(text) from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(
                f"the database failed: {type(exc).__name__}: {exc}. "
                "Hint: check the server's /health and its log"
            ) from exc

    return wrapper


def create_server(state: ServerState, *, auth: AuthProvider | None = None) -> FastMCP[Any]:
    """The MCP server; ``auth`` (codebase_mcp.server.security) guards /mcp over HTTP."""

    @contextlib.asynccontextmanager
    async def lifespan(server: FastMCP[Any]) -> AsyncIterator[dict[str, Any]]:
        await state.start()
        try:
            yield {"state": state}
        finally:
            await state.stop()

    mcp: FastMCP[Any] = FastMCP(
        "codebase-mcp",
        instructions=(
            "Semantic code search. Index a repository with start_indexing_background "
            "(watch=true keeps it in sync with its files). search_code answers within "
            "seconds, by words first and by meaning as embedding proceeds "
            "(semantic_coverage; get_indexing_status shows both). Answers are compact "
            "(path, lines, a few matching lines); pass detail='full' for whole chunks."
        ),
        lifespan=lifespan,
        auth=auth,
        middleware=[RejectUnusableArguments()],
    )

    @mcp.tool
    @tool_errors
    async def start_indexing_background(
        repo_path: RepoPath = None,
        project_id: IndexProjectId = None,
        force_reindex: ForceReindex = False,
        watch: Watch = None,
        repo_url: RepoUrl = None,
        ref: Ref = None,
    ) -> IndexingStarted:
        """Queue indexing of a repository: an absolute path on your machine (repo_path), or
        a git repository (repo_url + ref, pinned to the commit ref names now); returns a job
        id at once. Unchanged files are skipped; force_reindex rebuilds everything.
        Searchable by words within seconds, by meaning as embedding proceeds (see the job's
        status). watch=true keeps a repo_path in sync with its files from then on."""
        return await service.start_indexing(
            state, repo_path, project_id, force_reindex, watch, repo_url=repo_url, ref=ref
        )

    @mcp.tool
    @tool_errors
    async def get_indexing_status(job_id: JobId) -> JobStatus:
        """Status of an indexing job: pending/running/completed/failed/cancelled, counters,
        errors, timings and progress (0..1)."""
        return await service.indexing_status(state, job_id)

    @mcp.tool
    @tool_errors
    async def cancel_indexing(job_id: JobId) -> CancelAnswer:
        """Cancel an indexing job (pending: at once; running: after its current batch)."""
        return await service.cancel_indexing(state, job_id)

    @mcp.tool
    @tool_errors
    async def search_code(
        query: Query,
        project_id: ProjectId = "default",
        limit: Limit = 10,
        file_type: FileType = None,
        directory: Directory = None,
        detail: DetailArg = "compact",
    ) -> SearchAnswer:
        """Find code by meaning. file_type: an extension ("py") or language ("python");
        directory: an absolute path on your machine or one relative to the repository.
        Compact by default (relative path, lines, symbol, score, a few matching lines);
        detail="full" returns whole chunks."""
        return await service.search_code(
            state, query, project_id, limit, file_type, directory, detail
        )

    @mcp.tool
    @tool_errors
    async def list_projects() -> ProjectList:
        """Projects in this server: embedding model, dimension, files, chunks, roots."""
        return await service.list_projects(state)

    @mcp.tool
    @tool_errors
    async def delete_project(project_id: ProjectId) -> DeletedProject:
        """Delete a project's index (files, chunks, vectors); running jobs are cancelled."""
        return await service.delete_project(state, project_id)

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> Response:
        report = await health_report(state)
        code = 200 if report["status"] == "ok" else 503
        return JSONResponse(report, status_code=code)

    return mcp
