"""An embedder endpoint that is down while a job runs: the other one takes its work,
and get_indexing_status names the one it does without (issue 15).

Real Postgres, the MCP tools through FastMCP's in-memory client, two endpoints in
CODEBASE_MCP_EMBEDDER_URLS' order: a port on 127.0.0.1 where nothing listens, then
the fake Ollama-API embedder (slowed down so the job is seen running).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastmcp import Client

from codebase_mcp.server.app import ServerState, create_server
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.settings import DatabaseSettings
from tests.integration.server.fake_embedder import FakeEmbedder, free_port, running_fake_embedder
from tests.integration.server.test_server_lexical_first import wait_for
from tests.integration.server.test_server_mcp_memory import call, wait_done

pytestmark = pytest.mark.integration


@pytest.fixture
def fake_embedder() -> Iterator[FakeEmbedder]:
    # Several endpoints must report the digest of their weights (they are compared).
    with running_fake_embedder(digest="b2" * 32) as fake:
        yield fake


async def test_a_down_endpoint_is_named_in_the_status_and_the_other_does_the_work(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    fake_embedder.batch_delay = 0.4
    settings = ServerSettings(
        poll_interval=0.2,
        heartbeat_interval=0.5,
        embed_batch_size=2,
        text_search_budget_ms=0,
        embedder_urls=f"{dead},{fake_embedder.url}",
    )
    embedder = OllamaEmbedder([dead, fake_embedder.url], fake_embedder.model, batch_size=2)
    state = ServerState(settings, DatabaseSettings(url=migrated_dsn), embedder)  # type: ignore[arg-type]
    try:
        async with Client(create_server(state)) as client:
            started = await call(client, "start_indexing_background", repo_path=str(sample_repo))
            job = started["job_id"]
            running = await wait_for(
                client,
                job,
                lambda s: (
                    s["phase"] == "embedding"
                    and s.get("chunks_embedded", 0) > 0
                    and "embedders_down" in s
                ),
            )
            (down,) = running["embedders_down"]
            assert down["url"] == dead and down["status"] == "down"
            assert down["error"]  # why: the connection was refused

            final = await wait_done(client, job)
            assert final["status"] == "completed", final
            assert final["chunks_embedded"] == final["chunks_to_embed"] > 0
            assert "embedders_down" not in final  # only while the job runs
            assert fake_embedder.requests  # the live endpoint answered every batch
    finally:
        await state.stop()
