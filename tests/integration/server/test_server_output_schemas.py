"""Every tool's published output schema, read through a real MCP client from a real
``serve`` (HTTP, real Postgres, fake embedder), and every real answer validated
against it: indexing (pending, running, completed, cancelled), search (compact and
full, with filters), projects, deletion."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastmcp import Client

from codebase_mcp.server import tools
from tests.integration.server.conftest import SAMPLE_FILES, write_repo
from tests.integration.server.fake_embedder import FakeEmbedder, free_port, running_fake_embedder
from tests.integration.server.serve_process import Served, migrated_database, serving
from tests.support.postgres import PgServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("schemas")
    port = free_port()
    fake: FakeEmbedder
    with (
        running_fake_embedder() as fake,
        migrated_database(pg_server) as dsn,
        serving(
            [],
            {
                "DATABASE_URL": dsn,
                "EMBEDDER_URL": fake.url,
                "EMBEDDER_MODEL": fake.model,
                "CODEBASE_MCP_HOST": "127.0.0.1",
                "CODEBASE_MCP_PORT": str(port),
                "CODEBASE_MCP_POLL_INTERVAL": "0.2",
                # the lexical half must not drop out on a busy machine: the test is
                # about shapes, not budgets
                "CODEBASE_MCP_TEXT_SEARCH_BUDGET_MS": "0",
            },
            base / "server.log",
            port,
        ) as server,
    ):
        yield server


def undescribed(schema: dict[str, Any], where: str = "") -> list[str]:
    """Properties without a description, anywhere in the schema (its $defs included)."""
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            missing.append(f"{where}.{name}")
    for name, sub in schema.get("$defs", {}).items():
        missing += undescribed(sub, f"$defs.{name}")
    return missing


class Checked:
    """Calls tools and validates each structured answer against the tool's schema."""

    def __init__(self, client: Client[Any], schemas: dict[str, dict[str, Any]]) -> None:
        self.client = client
        self.validators = {
            name: jsonschema.Draft202012Validator(schema) for name, schema in schemas.items()
        }
        self.validated: dict[str, int] = {}

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        data = result.structured_content
        assert isinstance(data, dict), result
        errors = [e.message for e in self.validators[tool].iter_errors(data)]
        assert not errors, f"{tool} answer does not match its schema: {errors}\n{data}"
        # the text block carries the same JSON, for clients that read text only
        assert json.loads(result.content[0].text) == data  # type: ignore[union-attr]
        self.validated[tool] = self.validated.get(tool, 0) + 1
        return data

    async def wait(self, job_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            status = await self.call(tools.INDEXING_STATUS, job_id=job_id)
            seen.append(status)
            if status["status"] in ("completed", "failed", "cancelled"):
                return seen
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)


async def test_every_answer_matches_its_published_schema(served: Served, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", SAMPLE_FILES)
    async with Client(f"{served.url}/mcp", timeout=60) as client:
        listed = {t.name: t for t in await client.list_tools()}
        assert set(listed) == set(tools.TOOLS)
        schemas = {}
        for name, tool in listed.items():
            schema = tool.output_schema
            assert schema is not None, f"{name} publishes no output schema"
            jsonschema.Draft202012Validator.check_schema(schema)
            assert schema["type"] == "object"
            assert schema.get("additionalProperties") is False, (name, schema)
            assert schema.get("properties"), name
            assert not undescribed(schema), (name, undescribed(schema))
            schemas[name] = schema
        checked = Checked(client, schemas)

        started = await checked.call(tools.START_INDEXING, repo_path=str(repo))
        assert started["status"] == "pending"
        statuses = await checked.wait(started["job_id"])
        assert statuses[-1]["status"] == "completed", statuses[-1]
        assert statuses[-1]["progress"] == 1.0

        compact = await checked.call(tools.SEARCH, query="parse config file")
        full = await checked.call(tools.SEARCH, query="parse config file", detail="full")
        assert compact["detail"] == "compact" and full["detail"] == "full"
        assert compact["repo_path"] == str(repo)
        assert compact["results"][0]["relative_path"] == "src/config_loader.py"
        order = list(dict.fromkeys(h["relative_path"] for h in full["results"]))
        assert list(dict.fromkeys(h["relative_path"] for h in compact["results"])) == order
        assert len(json.dumps(compact)) < len(json.dumps(full))
        for arguments in (
            {"file_type": "go"},
            {"directory": "src/web"},
            {"directory": str(repo / "lib"), "detail": "full"},
            {"limit": 1},
        ):
            found = await checked.call(tools.SEARCH, query="router checksum tokens", **arguments)
            assert found["results"], arguments
        # an empty answer is still a valid answer
        nothing = await checked.call(tools.SEARCH, query="anything", file_type="java")
        assert nothing["results"] == []

        projects = await checked.call(tools.LIST_PROJECTS)
        assert [p["project_id"] for p in projects["projects"]] == ["default"]

        # a job cancelled while pending (no worker can take it before the cancel: the
        # project "other" is new, but the cancel races only the poll interval)
        other = await checked.call(tools.START_INDEXING, repo_path=str(repo), project_id="other")
        cancelled = await checked.call(tools.CANCEL_INDEXING, job_id=other["job_id"])
        assert cancelled["cancel_requested"] is True
        final = (await checked.wait(other["job_id"]))[-1]
        assert final["status"] in ("cancelled", "completed"), final

        deleted = await checked.call(tools.DELETE_PROJECT, project_id="default")
        assert deleted["deleted"] is True and deleted["chunks"] > 0

        assert set(checked.validated) == set(tools.TOOLS), checked.validated

        # The validation can fail: a key the schema does not name, or a missing one.
        validator = checked.validators[tools.SEARCH]
        assert not validator.is_valid({**compact, "surprise": 1})
        assert not validator.is_valid({k: v for k, v in compact.items() if k != "results"})
        hit = {**compact["results"][0], "content": "whole chunk"}
        assert not validator.is_valid({**compact, "results": [hit]})
