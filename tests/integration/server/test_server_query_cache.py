"""A query text searched again is not embedded again (QueryVectors), through MCP,
against real Postgres and an embedder over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client

from codebase_mcp.server.app import create_server
from tests.integration.server.conftest import make_state
from tests.integration.server.fake_embedder import FakeEmbedder
from tests.integration.server.test_server_mcp_memory import call, index

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("size", [1024, 0], ids=["cache", "no-cache"])
async def test_a_repeated_query_is_embedded_once_and_answers_the_same(
    migrated_dsn: str, fake_embedder: FakeEmbedder, sample_repo: Path, size: int
) -> None:
    state = make_state(migrated_dsn, fake_embedder, query_cache_size=size)
    try:
        async with Client(create_server(state)) as client:
            assert (await index(client, sample_repo))["status"] == "completed"
            fake_embedder.reset()
            first = await call(client, "search_code", query="parse config file")
            other = await call(client, "search_code", query="increment count")
            again = await call(client, "search_code", query="parse config file")
    finally:
        await state.stop()
    assert first["results"] == again["results"] and first["mode"] == "hybrid"
    assert other["results"] != first["results"]
    asked = [text for text in fake_embedder.inputs if "parse config file" in text]
    assert len(asked) == (1 if size else 2)
    assert fake_embedder.requests == (2 if size else 3)
