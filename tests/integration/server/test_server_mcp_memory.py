"""The MCP tools end to end through FastMCP's in-memory client, against real Postgres."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from codebase_mcp.server.app import ServerState, create_server
from tests.integration.server.fake_embedder import FakeEmbedder

pytestmark = pytest.mark.integration


async def call(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def wait_done(client: Client[Any], job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await call(client, "get_indexing_status", job_id=job_id)
        if status["status"] in ("completed", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"job still {status['status']}: {status}"
        await asyncio.sleep(0.1)


async def index(client: Client[Any], repo: Path, **options: Any) -> dict[str, Any]:
    started = await call(client, "start_indexing_background", repo_path=str(repo), **options)
    assert started["status"] == "pending"
    return await wait_done(client, started["job_id"])


def paths(search: dict[str, Any]) -> list[str]:
    return [r["relative_path"] for r in search["results"]]


async def test_index_search_reindex(
    state: ServerState, fake_embedder: FakeEmbedder, sample_repo: Path
) -> None:
    async with Client(create_server(state)) as client:
        tools = {t.name for t in await client.list_tools()}
        assert tools == {
            "start_indexing_background",
            "get_indexing_status",
            "cancel_indexing",
            "search_code",
            "list_projects",
            "delete_project",
        }
        status = await index(client, sample_repo)
        assert status["status"] == "completed", status
        assert status["progress"] == 1.0
        # Indexed: 4 code files, README, .gitignore, keep/important.log (negation)
        # and nested/secret/ok.py (/secret/ is root-anchored). Skipped: logo.png
        # (binary suffix) and data.txt (NUL bytes). Ignored, not counted:
        # build/ (default), logs/debug.log (*.log), secret/ (anchored).
        assert status["files_indexed"] == 8, status
        assert status["files_skipped"] == 2
        assert {e["path"] for e in status["errors"]} == {str(sample_repo / "data.txt")}
        assert status["chunks_created"] >= 8
        assert status["timings"]["embed_s"] >= 0
        embedded_first = len(fake_embedder.inputs)
        # Every chunk once, and the probe that gives a new project its vector length.
        assert embedded_first == status["chunks_created"] + 1
        assert status["chunks_embedded"] == status["chunks_created"]
        assert status["semantic_progress"] == status["lexical_progress"] == 1.0
        indexed_text = "\n".join(fake_embedder.inputs)
        assert "never index me" not in indexed_text
        assert "generated_output" not in indexed_text
        assert "nested_secret_is_not_root_anchored" in indexed_text
        assert "negated ignore rule" in indexed_text

        found = await call(client, "search_code", query="parse config file", limit=3)
        assert found["results"][0]["relative_path"] == "src/config_loader.py"
        assert (found["mode"], found["lexical"]) == ("hybrid", "ranked")
        top = found["results"][0]
        assert top["path"] == str(sample_repo / "src/config_loader.py")
        assert top["language"] == "python"
        assert "parse_config_file" in top["content"]
        assert 1 <= top["start_line"] <= top["end_line"]

        go = await call(client, "search_code", query="compute checksum", file_type="go")
        assert set(paths(go)) == {"cmd/main.go"}
        in_dir = await call(client, "search_code", query="router", directory="src/web")
        assert set(paths(in_dir)) == {"src/web/server.js"}
        abs_dir = await call(
            client, "search_code", query="router", directory=str(sample_repo / "lib")
        )
        assert set(paths(abs_dir)) == {"lib/tokenizer.rs"}

        # Edit one file, delete one, add one: only their chunks are embedded again.
        (sample_repo / "cmd/main.go").unlink()
        (sample_repo / "src/config_loader.py").write_text(
            "def load_yaml_settings(path):\n    return open(path).read()\n"
        )
        (sample_repo / "src/extra.py").write_text("def brand_new_helper():\n    return 42\n")
        fake_embedder.reset()
        second = await index(client, sample_repo)
        assert second["status"] == "completed", second
        assert second["files_deleted"] == 1
        assert second["files_indexed"] == 2
        assert second["files_unchanged"] == 6
        assert len(fake_embedder.inputs) == second["chunks_created"] == 2
        gone = await call(client, "search_code", query="compute checksum", limit=20)
        assert "cmd/main.go" not in paths(gone)
        new = await call(client, "search_code", query="load yaml settings", limit=1)
        assert paths(new) == ["src/config_loader.py"]

        # Nothing changed: nothing embedded.
        fake_embedder.reset()
        third = await index(client, sample_repo)
        assert third["files_indexed"] == 0 and fake_embedder.inputs == []

        # force_reindex embeds everything again.
        forced = await index(client, sample_repo, force_reindex=True)
        assert forced["files_indexed"] == 8
        assert len(fake_embedder.inputs) == forced["chunks_created"]

        projects = (await call(client, "list_projects"))["projects"]
        assert [p["project_id"] for p in projects] == ["default"]
        assert projects[0]["embedding_model"] == "all-minilm"
        assert projects[0]["embedding_dim"] == 384
        assert projects[0]["repositories"] == [str(sample_repo)]

        deleted = await call(client, "delete_project", project_id="default")
        assert deleted["chunks"] == forced["chunks_created"]
        with pytest.raises(ToolError, match="no project 'default'"):
            await call(client, "search_code", query="parse config")


async def test_projects_are_isolated(state: ServerState, sample_repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "only_here.py").write_text("def parse_config_file_elsewhere():\n    pass\n")
    async with Client(create_server(state)) as client:
        assert (await index(client, sample_repo, project_id="a"))["status"] == "completed"
        assert (await index(client, other, project_id="b"))["status"] == "completed"
        in_b = await call(client, "search_code", query="parse config file", project_id="b")
        assert paths(in_b) == ["only_here.py"]
        in_a = await call(client, "search_code", query="parse config file", project_id="a")
        assert "only_here.py" not in paths(in_a)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("start_indexing_background", {"repo_path": "/does/not/exist"}, "does not exist"),
        ("start_indexing_background", {"repo_path": "relative/path"}, "not absolute"),
        ("search_code", {"query": "   "}, "query is empty"),
        ("search_code", {"query": "x", "limit": 0}, "limit must be between 1 and 100"),
        ("search_code", {"query": "x", "limit": 100000}, "limit must be between"),
        ("search_code", {"query": "x", "project_id": "nope"}, "no project 'nope'"),
        ("search_code", {"query": "x", "project_id": "bad id!"}, "project_id 'bad id!'"),
        ("search_code", {"query": "x", "file_type": "p y"}, "not an extension"),
        ("search_code", {"query": "x", "directory": "../etc"}, "contains '..'"),
        ("get_indexing_status", {"job_id": "42"}, "is not a job id"),
        (
            "get_indexing_status",
            {"job_id": "00000000-0000-0000-0000-000000000000"},
            "no indexing job",
        ),
        ("cancel_indexing", {"job_id": "00000000-0000-0000-0000-000000000000"}, "no indexing"),
        ("delete_project", {"project_id": "ghost"}, "no project 'ghost'"),
    ],
)
async def test_bad_input_gives_tool_errors(
    state: ServerState, tool: str, arguments: dict[str, Any], message: str
) -> None:
    async with Client(create_server(state)) as client:
        with pytest.raises(ToolError, match=message):
            await client.call_tool(tool, arguments)
        # The server keeps serving.
        assert (await call(client, "list_projects"))["projects"] == []


async def test_file_path_is_not_a_directory(state: ServerState, sample_repo: Path) -> None:
    async with Client(create_server(state)) as client:
        with pytest.raises(ToolError, match="is not a directory"):
            await client.call_tool(
                "start_indexing_background", {"repo_path": str(sample_repo / "README.md")}
            )


async def test_unreadable_file_is_skipped(state: ServerState, sample_repo: Path) -> None:
    import os

    locked = sample_repo / "src" / "locked.py"
    locked.write_text("def hidden():\n    pass\n")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make it a dangling symlink instead
        locked.unlink()
        locked.symlink_to(sample_repo / "missing.py")
    async with Client(create_server(state)) as client:
        status = await index(client, sample_repo)
    assert status["status"] == "completed"
    assert status["files_skipped"] == 3  # png, NUL bytes, and the unreadable one
    assert status["files_indexed"] == 8


async def test_concurrent_searches_while_indexing(
    migrated_dsn: str, sample_repo: Path, tmp_path: Path
) -> None:
    from tests.integration.server.conftest import make_state
    from tests.integration.server.fake_embedder import running_fake_embedder

    big = tmp_path / "big"
    for n in range(60):
        module = big / f"pkg{n % 6}" / f"module_{n}.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(
            "\n\n".join(
                f"def function_{n}_{i}(value):\n    return value * {i} + {n}\n" for i in range(30)
            )
        )
    with running_fake_embedder(delay=0.05) as fake:
        st = make_state(migrated_dsn, fake, write_batch_files=10, embed_batch_size=16)
        try:
            async with Client(create_server(st)) as client:
                assert (await index(client, sample_repo))["status"] == "completed"
                started = await call(client, "start_indexing_background", repo_path=str(big))
                latencies = []
                seen_running = False
                while True:
                    status = await call(client, "get_indexing_status", job_id=started["job_id"])
                    if status["status"] != "running" and seen_running:
                        break
                    seen_running = seen_running or status["status"] == "running"
                    t = time.perf_counter()
                    results = await asyncio.gather(
                        *(
                            call(client, "search_code", query="parse config file", limit=3)
                            for _ in range(4)
                        )
                    )
                    latencies.append(time.perf_counter() - t)
                    for found in results:
                        assert found["results"][0]["relative_path"] == "src/config_loader.py"
                    if status["status"] == "running":
                        assert 0.0 <= status["progress"] <= 1.0
                assert status["status"] == "completed", status
                assert len(latencies) >= 3
                assert max(latencies) < 5.0
        finally:
            await st.stop()
