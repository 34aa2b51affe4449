"""The whole stack through the CLI, test profile, real podman:

up → healthy → index a small real repository through the MCP HTTP endpoint →
search finds the expected file → kill the server process (restarted, healthy,
same results) → delete the repository, up again (skipped with a warning naming
it, healthy, the index still there) → repo remove → down (keep volumes) → up →
the same search without re-indexing → down --volumes leaves nothing behind.

Needs the three images; the session fixture builds them (a no-op when cached)
and skips with the reason when they cannot be built here (fails under CI=true).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.errors import CodebaseMcpError

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("codebase-mcp"))
IMAGES = ["postgres", "embedder", "server"]
# A query only one file of the fixture repository answers well.
QUERY = "generate a random database password and keep it in a file readable only by its owner"
EXPECTED_FILE = "secret.py"


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    from codebase_mcp.builder import api

    try:
        api.build(IMAGES)
    except CodebaseMcpError as exc:
        pytest.skip(f"the stack's images cannot be built here: {exc.message}")
    return {name: api.image_ref(name) for name in IMAGES}


def cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"codebase-mcp {' '.join(args)} failed:\n{result.stderr}")
    return result


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def stack(built_images: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    name = f"codebase-mcp-e2e-{os.getpid() % 100000}"
    env = {"CODEBASE_MCP_DATA_DIR": str(tmp_path / "data"), "CODEBASE_MCP_POD": name}
    # A small real repository: this project's pod package (a git checkout of it).
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "src" / "codebase_mcp" / "pod", repo / "pod")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    try:
        yield {"name": name, "env": env, "repo": repo, "images": built_images}
    finally:
        cli("down", "--volumes", env=env, check=False)


async def mcp_call(endpoint: str, tool: str, arguments: dict[str, Any]) -> Any:
    from fastmcp import Client

    async with Client(endpoint) as client:
        result = await client.call_tool(tool, arguments, timeout=300)
        if result.structured_content is not None:
            return result.structured_content
        return "\n".join(getattr(block, "text", "") for block in result.content)


async def mcp_tools(endpoint: str) -> dict[str, Any]:
    from fastmcp import Client

    async with Client(endpoint) as client:
        return {tool.name: tool.input_schema for tool in await client.list_tools()}


def start_indexing(endpoint: str, repo: Path, project: str = "default") -> str:
    result = asyncio.run(
        mcp_call(
            endpoint, "start_indexing_background", {"repo_path": str(repo), "project_id": project}
        )
    )
    job = result.get("job_id") if isinstance(result, dict) else None
    assert job, f"no job id in {result!r}"
    return str(job)


def job_status(endpoint: str, job: str) -> dict[str, Any]:
    result = asyncio.run(mcp_call(endpoint, "get_indexing_status", {"job_id": job}))
    assert isinstance(result, dict), result
    return result


def wait_for_job(endpoint: str, job: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = job_status(endpoint, job)
        if status.get("status") in ("completed", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"job still {status}"
        time.sleep(0.5)


def search(endpoint: str, project: str = "default") -> str:
    found = asyncio.run(
        mcp_call(endpoint, "search_code", {"query": QUERY, "project_id": project, "limit": 5})
    )
    return json.dumps(found)


def up(stack: dict[str, Any], *extra: str) -> dict[str, Any]:
    result = cli("up", "--profile", "test", "--no-build", "--json", *extra, env=stack["env"])
    return json.loads(result.stdout)


def test_up_index_search_restart_down_up_down_volumes(stack: dict[str, Any]) -> None:
    env, repo, name = stack["env"], stack["repo"], stack["name"]
    state = up(stack, "--repo", str(repo))
    endpoint = state["endpoint"]
    assert endpoint.startswith("http://127.0.0.1:")
    assert state["images"] == stack["images"]
    report = json.loads(cli("status", "--json", env=env).stdout)
    assert report["status"] == "healthy"
    assert {c["name"] for c in report["containers"]} == set(IMAGES)

    tools = asyncio.run(mcp_tools(endpoint))
    assert {"start_indexing_background", "get_indexing_status", "search_code"} <= set(tools)
    done = wait_for_job(endpoint, start_indexing(endpoint, repo))
    assert done["status"] == "completed", done
    assert EXPECTED_FILE in search(endpoint)

    # Kill the server's process: the pod restarts it, healthy again, same data.
    container = state["server_container"]
    pid = podman("inspect", container, "--format", "{{.State.Pid}}").stdout.strip()
    os.kill(int(pid), 9)
    deadline = time.monotonic() + 60
    while cli("status", env=env, check=False).returncode != 0 or _restarts(container) < 1:
        assert time.monotonic() < deadline, cli("status", env=env, check=False).stdout
        time.sleep(0.5)
    assert EXPECTED_FILE in search(endpoint)

    # The repository goes away: `up` skips it with a warning that names it, the pod comes
    # up healthy again and the index is still there; `repo remove` forgets it.
    gone = str(repo.resolve())
    shutil.rmtree(repo)
    again = cli("up", "--profile", "test", "--no-build", "--json", env=env)
    assert f"repository {gone} no longer exists" in again.stderr, again.stderr
    assert f"codebase-mcp repo remove {gone}" in again.stderr
    assert json.loads(again.stdout)["skipped_repos"] == [gone]
    assert json.loads(cli("status", "--json", env=env).stdout)["status"] == "healthy"
    (project,) = asyncio.run(mcp_call(endpoint, "list_projects", {}))["projects"]
    assert project["project_id"] == "default" and project["chunks"] > 0, project
    assert EXPECTED_FILE in search(endpoint)
    assert f"missing  {gone}" in cli("repo", "list", env=env).stdout
    cli("repo", "remove", gone, env=env)

    # down keeps the data: after up, the same search works with no re-indexing.
    out = cli("down", env=env).stdout
    assert f"removed pod {name}" in out
    assert podman("volume", "exists", f"{name}-pgdata").returncode == 0
    again = up(stack)  # the port is remembered
    assert again["endpoint"] == endpoint and again["repos"] == []
    assert EXPECTED_FILE in search(endpoint)

    # down --volumes leaves nothing behind.
    cli("down", "--volumes", env=env)
    assert podman("pod", "exists", name).returncode != 0
    leftovers = podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert [v for v in leftovers if v.startswith(name)] == []
    assert podman("secret", "inspect", f"{name}-db").returncode != 0
    assert not (Path(env["CODEBASE_MCP_DATA_DIR"]) / "pods" / name).exists()


def _restarts(container: str) -> int:
    out = podman("inspect", container, "--format", "{{.RestartCount}}").stdout.strip()
    return int(out or 0)


OUTAGE_MODULES = ("decorators.py", "exceptions.py", "formatting.py", "parser.py", "types.py")


@pytest.mark.timeout(1200)  # the resumed job re-embeds on a CPU embedder
def test_postgres_stopped_mid_indexing_never_reports_a_silent_success(
    stack: dict[str, Any],
) -> None:
    env, name = stack["env"], stack["name"]
    # A larger real repository (five of click's modules, ~3,300 lines), so
    # indexing is still running when Postgres goes away: Postgres is stopped as soon
    # as the job leaves "pending", and embedding runs at ~10 chunks/s. (All of click
    # made this the slowest test of CI: 160 s, mostly embedding it after the outage.)
    big = stack["repo"].parent / "big"
    site = Path(__import__("click").__file__).parent
    (big / "click").mkdir(parents=True)
    for module in OUTAGE_MODULES:
        shutil.copy2(site / module, big / "click" / module)
    state = up(stack, "--repo", str(big))
    endpoint = state["endpoint"]
    job = start_indexing(endpoint, big, project="outage")
    deadline = time.monotonic() + 120
    while (status := job_status(endpoint, job)["status"]) == "pending":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    assert status == "running", f"the job ended before the outage: {status}"

    postgres = f"{name}-postgres"
    assert podman("stop", "--time", "10", postgres).returncode == 0
    time.sleep(3)  # the worker hits the outage
    assert podman("start", postgres).returncode == 0
    deadline = time.monotonic() + 120
    while cli("status", env=env, check=False).returncode != 0:
        assert time.monotonic() < deadline, cli("status", env=env, check=False).stdout
        time.sleep(0.5)

    final = wait_for_job(endpoint, job, timeout=600)
    assert final["status"] in ("completed", "failed"), final
    if final["status"] == "failed":
        assert final["error"], f"failed without saying why: {final}"
    else:
        # resumed: every file accounted for, nothing silently dropped
        assert final["files_scanned"] + final["files_skipped"] == final["files_total"], final
        assert final["chunks_created"] > 0 or final["files_unchanged"] > 0, final
        found = asyncio.run(
            mcp_call(
                endpoint,
                "search_code",
                {"query": "declare a command line option with a decorator", "project_id": "outage"},
            )
        )
        assert "click" in json.dumps(found)


def test_up_auth_answers_with_the_token_and_refuses_without(stack: dict[str, Any]) -> None:
    """`up --auth`: the pod's endpoint needs the token, and its probes still pass."""
    import httpx
    from fastmcp import Client

    env, name = stack["env"], stack["name"]
    state = up(stack, "--auth")
    endpoint = state["endpoint"]
    token_file = Path(state["auth_token_file"])
    assert state["auth"] is True
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    token = token_file.read_text().strip()
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"},
        },
    }
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}

    def post(**extra: str) -> httpx.Response:
        return httpx.post(endpoint, json=init, headers={**headers, **extra}, timeout=30)

    refused = post()
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert post(authorization="Bearer not-the-token-at-all-000000").status_code == 401
    assert post(authorization=f"Bearer {token}").status_code == 200
    # the published port is an allowed Host; DNS rebinding and foreign pages are not
    assert post(authorization=f"Bearer {token}", host="evil.example").status_code == 421
    assert post(authorization=f"Bearer {token}", origin="http://evil.example").status_code == 403

    async def tools(auth: str) -> set[str]:
        async with Client(endpoint, auth=auth) as client:
            return {t.name for t in await client.list_tools()}

    assert "search_code" in asyncio.run(tools(token))
    # the exec probe (GET /health inside the pod) needs no token: still healthy
    assert json.loads(cli("status", "--json", env=env).stdout)["status"] == "healthy"
    logs = subprocess.run(
        ["podman", "logs", f"{name}-server"], capture_output=True, text=True, check=False
    )
    assert "POST /mcp" in logs.stdout + logs.stderr
    assert token not in logs.stdout + logs.stderr

    cli("down", "--volumes", env=env)
    assert podman("secret", "inspect", f"{name}-auth").returncode != 0


def test_up_watch_keeps_a_mounted_repository_in_sync(stack: dict[str, Any]) -> None:
    """`up --watch`: the mounted repository is indexed, then a save is searchable on its own.

    Real inotify on a bind mount into the server container, the real embedder.
    """
    env, repo = stack["env"], stack["repo"]
    state = up(stack, "--repo", str(repo), "--watch")
    endpoint = state["endpoint"]
    (started,) = state["watching"]
    assert started["repo_path"] == str(repo.resolve()) and started["job_id"]
    assert wait_for_job(endpoint, started["job_id"])["status"] == "completed"

    marker = "pangolin_watch_marker"
    (repo / "pod" / "watched_edit.py").write_text(
        f"def {marker}():\n    '''Saved after the pod came up.'''\n    return 42\n"
    )
    saved = time.monotonic()
    deadline = saved + 60
    while marker not in json.dumps(
        asyncio.run(mcp_call(endpoint, "search_code", {"query": marker, "limit": 3}))
    ):
        assert time.monotonic() < deadline, "the saved file never became searchable"
        time.sleep(0.2)
    print(f"saved file searchable after {time.monotonic() - saved:.2f}s")
    (project,) = asyncio.run(mcp_call(endpoint, "list_projects", {}))["projects"]
    (watch,) = project["watches"]
    assert watch["watching"] is True and watch["state"] == "watching", watch
    cli("down", "--volumes", env=env)
