"""Indexing git sources through the MCP tools, against real git servers on 127.0.0.1.

``start_indexing_background(repo_url=..., ref=...)`` over FastMCP's in-memory
client, real Postgres, the fake embedder (it counts what it embeds) and
``git http-backend`` behind a server that needs a token (tests/support/gitserver):
index a branch and find a file; push a commit and re-index: only the changed file
is embedded, the project records the new commit; a URL that cannot be reached,
a ref that does not exist and a host that is not allowed are refused at once and
write no row; the token is in no answer and no log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from codebase_mcp.server.app import ServerState, create_server
from tests.integration.server.conftest import make_state
from tests.integration.server.fake_embedder import FakeEmbedder
from tests.support.gitserver import HttpGitServer, commit, free_port, git_http, make_repo, publish

pytestmark = pytest.mark.integration

TOKEN = "glpat-Q1w2e3r4t5y6-gitwire-secret"
FILES: dict[str, str] = {
    "README.md": "# upstream\n\nA repository served over smart HTTP.\n",
    "src/config_loader.py": (
        "import json\n"
        + "".join(
            f"# header line {n}: padding, so that the chunker keeps this apart\n" for n in range(4)
        )
        + "\n"
        "def parse_config_file(path):\n"
        '    """Read a JSON configuration file and return the parsed settings as a dict,\n'
        "    raising a clear error when the file is missing, unreadable or not JSON at all,\n"
        '    so that the caller can say which file was wrong and what to do about it."""\n'
        "    return open(path).read()\n"
    ),
    "src/retry.py": (
        "class RetryPolicy:\n"
        "    def backoff_delay(self, attempt):\n"
        "        return 0.1 * 2 ** attempt\n"
    ),
    "cmd/checksum.go": "package main\n\nfunc computeChecksum(b []byte) int { return len(b) }\n",
}


@dataclass
class Upstream:
    work: Path
    bare: Path
    server: HttpGitServer
    first: str

    @property
    def url(self) -> str:
        return f"{self.server.url}/org/tools.git"

    def push(self, files: dict[str, str | None], message: str) -> str:
        new = commit(self.work, files, message)
        publish(self.work, self.bare)
        return new


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    work = make_repo(tmp_path / "work", FILES)
    base = tmp_path / "served"
    bare = base / "org" / "tools.git"
    publish(work, bare)
    first = (work / ".git" / "refs" / "heads" / "main").read_text().strip()
    with git_http(base, TOKEN) as server:
        yield Upstream(work, bare, server, first)


@pytest.fixture
async def git_state(
    migrated_dsn: str, fake_embedder: FakeEmbedder, tmp_path: Path
) -> AsyncIterator[ServerState]:
    secret = tmp_path / "secrets" / "git-token"
    secret.parent.mkdir()
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o600)
    st = make_state(
        migrated_dsn,
        fake_embedder,
        git_hosts="127.0.0.1",
        git_protocols="http",
        git_cache=tmp_path / "git-cache",
        git_token_file=secret,
        git_timeout=30,
    )
    yield st
    await st.stop()


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


async def counts(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM projects) AS p, "
            "(SELECT count(*) FROM files) AS f"
        )
        assert row is not None
        return int(row["jobs"]), int(row["p"]), int(row["f"])
    finally:
        await conn.close()


def embedded_paths(fake: FakeEmbedder) -> set[str]:
    """The files whose chunks the fake embedder was asked for (the text starts with the path)."""
    found = set()
    for text in fake.inputs:
        for rel in (*FILES, "src/new_module.py"):
            if rel in text:
                found.add(rel)
    return found


async def test_index_by_url_then_only_the_changed_file_is_embedded(
    git_state: ServerState,
    fake_embedder: FakeEmbedder,
    upstream: Upstream,
    migrated_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[dict[str, Any]] = []
    async with Client(create_server(git_state)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "start_indexing_background")
        assert {"repo_url", "ref", "repo_path"} <= set(tool.input_schema["properties"])

        started = await call(client, "start_indexing_background", repo_url=upstream.url, ref="main")
        answers.append(started)
        assert started["project_id"] == "127.0.0.1:org:tools"
        assert started["source_url"] == upstream.url
        assert started["ref"] == "refs/heads/main"
        assert started["commit"] == upstream.first
        status = await wait_done(client, started["job_id"])
        answers.append(status)
        assert status["status"] == "completed", status
        assert status["files_indexed"] == len(FILES)
        assert status["source_commit"] == upstream.first
        assert status["source_url"] == upstream.url
        assert status["timings"]["fetch_s"] >= 0
        assert embedded_paths(fake_embedder) == set(FILES)

        found = await call(
            client, "search_code", query="parse config file", project_id="127.0.0.1:org:tools"
        )
        answers.append(found)
        assert found["results"][0]["relative_path"] == "src/config_loader.py"
        assert found["repo_path"] == upstream.url
        projects = await call(client, "list_projects")
        answers.append(projects)
        (project,) = projects["projects"]
        assert project["source_url"] == upstream.url
        assert project["source_commit"] == upstream.first
        assert project["repositories"] == [upstream.url]

        # A new commit: one file changed, one added, one deleted. Only two are embedded.
        second = upstream.push(
            {
                "src/retry.py": "class RetryPolicy:\n    def jittered_backoff(self, n):\n"
                "        return n\n",
                "src/new_module.py": "def freshly_added_helper():\n    return 42\n",
                "cmd/checksum.go": None,
            },
            "two",
        )
        fake_embedder.reset()
        again = await call(client, "start_indexing_background", repo_url=upstream.url, ref="main")
        answers.append(again)
        assert again["commit"] == second
        status = await wait_done(client, again["job_id"])
        answers.append(status)
        assert status["status"] == "completed", status
        assert status["files_indexed"] == 2, status
        assert status["files_unchanged"] == len(FILES) - 2
        assert status["files_deleted"] == 1
        assert embedded_paths(fake_embedder) == {"src/retry.py", "src/new_module.py"}
        projects = await call(client, "list_projects")
        (project,) = projects["projects"]
        assert project["source_commit"] == second
        assert project["files"] == len(FILES)  # one root: the URL, not a checkout path

        found = await call(
            client, "search_code", query="jittered backoff", project_id="127.0.0.1:org:tools"
        )
        assert found["results"][0]["relative_path"] == "src/retry.py"
        assert "jittered_backoff" in found["results"][0]["snippet"]
        gone = await call(
            client, "search_code", query="compute checksum", project_id="127.0.0.1:org:tools"
        )
        assert "cmd/checksum.go" not in [r["relative_path"] for r in gone["results"]]
        full = await call(
            client,
            "search_code",
            query="parse config file",
            project_id="127.0.0.1:org:tools",
            detail="full",
        )
        top = full["results"][0]
        assert top["path"] == f"{upstream.url}/src/config_loader.py"
        assert top["start_line"] == 7, top
        assert top["context_before"].startswith("# header line 3"), top  # read from the checkout

        # The ref moved on after the job was queued: the job still indexes its commit.
        pinned = await call(client, "start_indexing_background", repo_url=upstream.url, ref="main")
        upstream.push({"README.md": "# moved on\n"}, "three")
        status = await wait_done(client, pinned["job_id"])
        assert status["status"] == "completed"
        assert status["source_commit"] == second
        assert status["files_indexed"] == 0

    jobs, projects_n, _ = await counts(migrated_dsn)
    assert (jobs, projects_n) == (3, 1)
    for answer in answers:
        assert TOKEN not in json.dumps(answer)
    assert TOKEN not in caplog.text
    assert upstream.server.statuses and 401 not in upstream.server.statuses[-3:]


async def test_bad_sources_are_refused_and_write_nothing(
    git_state: ServerState,
    upstream: Upstream,
    migrated_dsn: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    before = await counts(migrated_dsn)
    dead = f"http://127.0.0.1:{free_port()}/org/tools.git"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"repo_url": dead, "ref": "main"}, "127.0.0.1"),
        ({"repo_url": upstream.url, "ref": "no-such-branch"}, "no branch or tag 'no-such-branch'"),
        ({"repo_url": "http://example.com/org/tools.git"}, "CODEBASE_MCP_GIT_HOSTS"),
        ({"repo_url": f"http://user:{TOKEN}@127.0.0.1/org/tools.git"}, "credential"),
        ({"repo_url": upstream.url, "repo_path": str(tmp_path)}, "not both"),
        ({"repo_path": str(tmp_path), "ref": "main"}, "ref is only for repo_url"),
        ({"repo_url": upstream.url, "watch": True}, "watch=true needs a repo_path"),
        ({}, "no repository given"),
    ]
    messages = []
    async with Client(create_server(git_state)) as client:
        for arguments, expected in cases:
            with pytest.raises(ToolError) as caught:
                await client.call_tool("start_indexing_background", arguments)
            message = str(caught.value)
            messages.append(message)
            assert expected.lower() in message.lower(), (arguments, message)
            assert "Hint:" in message
            assert TOKEN not in message
    assert await counts(migrated_dsn) == before
    assert not (tmp_path / "git-cache" / "checkouts").exists()
    assert TOKEN not in caplog.text
    print("\n".join(messages))


async def test_git_sources_disabled_without_hosts(
    migrated_dsn: str, fake_embedder: FakeEmbedder, upstream: Upstream
) -> None:
    state = make_state(migrated_dsn, fake_embedder)  # CODEBASE_MCP_GIT_HOSTS unset
    try:
        before = await counts(migrated_dsn)
        async with Client(create_server(state)) as client:
            with pytest.raises(ToolError, match="CODEBASE_MCP_GIT_HOSTS"):
                await client.call_tool("start_indexing_background", {"repo_url": upstream.url})
        assert await counts(migrated_dsn) == before
    finally:
        await state.stop()
