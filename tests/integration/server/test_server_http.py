"""``codebase-mcp serve --transport http`` as a real process: /health, /mcp, path mapping."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from tests.integration.server.fake_embedder import FakeEmbedder, free_port
from tests.support.processes import stop

pytestmark = pytest.mark.integration

HOST_ROOT = "/home/someone/code"  # what the user knows; does not exist on this machine


@pytest.fixture
def server_process(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": migrated_dsn,
        "EMBEDDER_URL": fake_embedder.url,
        "EMBEDDER_MODEL": fake_embedder.model,
        "CODEBASE_MCP_HOST": "127.0.0.1",
        "CODEBASE_MCP_PORT": str(port),
        "CODEBASE_MCP_ROOTS": f"{HOST_ROOT}={sample_repo.parent}",
        "CODEBASE_MCP_POLL_INTERVAL": "0.2",
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "codebase-mcp"), "serve", "--transport", "http"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"serve exited: {process.stdout.read() if process.stdout else ''}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not answer /health in 30 s"
            time.sleep(0.2)
        yield url
    finally:
        stop(process)


async def call(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_http_index_and_search_with_host_paths(
    server_process: str, sample_repo: Path
) -> None:
    health = httpx.get(f"{server_process}/health", timeout=5)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["embedder"]["status"] == "ok"

    host_repo = f"{HOST_ROOT}/{sample_repo.name}"
    async with Client(f"{server_process}/mcp") as client:
        started = await call(client, "start_indexing_background", repo_path=host_repo)
        assert started["repo_path"] == host_repo
        for _ in range(300):
            status = await call(client, "get_indexing_status", job_id=started["job_id"])
            if status["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
        assert status["status"] == "completed", status
        assert status["errors"][0]["path"] == f"{host_repo}/data.txt"

        found = await call(client, "search_code", query="parse config file", limit=2)
        assert found["repo_path"] == host_repo
        assert found["results"][0]["relative_path"] == "src/config_loader.py"
        full = await call(client, "search_code", query="parse config file", limit=2, detail="full")
        assert full["results"][0]["path"] == f"{host_repo}/src/config_loader.py"

        # Outside the roots, or escaping them with "..": refused.
        with pytest.raises(ToolError, match="outside the allowed roots"):
            await client.call_tool("start_indexing_background", {"repo_path": "/etc"})
        with pytest.raises(ToolError, match="outside the allowed roots"):
            await client.call_tool(
                "start_indexing_background", {"repo_path": f"{HOST_ROOT}/../../../etc"}
            )
        # Still serving after errors.
        assert (await call(client, "list_projects"))["projects"][0]["project_id"] == "default"


async def test_symlink_escape_is_refused(server_process: str, sample_repo: Path) -> None:
    (sample_repo.parent / "escape").symlink_to("/etc")
    async with Client(f"{server_process}/mcp") as client:
        with pytest.raises(ToolError, match="through a symlink"):
            await client.call_tool(
                "start_indexing_background", {"repo_path": f"{HOST_ROOT}/escape"}
            )


def test_health_is_503_when_the_embedder_is_down(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    from codebase_mcp.server.app import health_report
    from tests.integration.server.conftest import make_state

    async def check() -> dict[str, Any]:
        down = FakeEmbedder(url=f"http://127.0.0.1:{free_port()}")
        st = make_state(migrated_dsn, down)
        try:
            return await health_report(st)
        finally:
            await st.stop()

    report = asyncio.run(check())
    assert report["status"] == "degraded"
    assert report["database"]["status"] == "ok"
    assert report["embedder"]["status"] == "down"


async def test_stdio_transport(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    from fastmcp.client.transports import StdioTransport

    transport = StdioTransport(
        command=str(Path(sys.executable).parent / "codebase-mcp"),
        args=["serve", "--transport", "stdio", "--log-level", "warning"],
        env={
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": migrated_dsn,
            "EMBEDDER_URL": fake_embedder.url,
            "CODEBASE_MCP_POLL_INTERVAL": "0.2",
        },
        log_file=tmp_path / "stderr.log",
    )
    async with Client(transport) as client:
        started = await call(client, "start_indexing_background", repo_path=str(sample_repo))
        for _ in range(300):
            status = await call(client, "get_indexing_status", job_id=started["job_id"])
            if status["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
        assert status["status"] == "completed", status
        found = await call(client, "search_code", query="compute checksum", limit=1)
        assert found["results"][0]["relative_path"] == "cmd/main.go"
