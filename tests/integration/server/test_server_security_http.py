"""Raw HTTP (httpx) against a real ``codebase-mcp serve`` (real Postgres, fake embedder):
every Host, Origin and token case, /health for the probes, the exposure rule, and the
server's whole log scanned for the token at the end.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client

from tests.integration.server.fake_embedder import FakeEmbedder, free_port, running_fake_embedder
from tests.integration.server.serve_process import (
    CLI,
    Served,
    migrated_database,
    run_serve,
    serving,
)
from tests.support.postgres import PgServer

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(32)
WRONG_TOKENS = [secrets.token_urlsafe(32), TOKEN[:-1], TOKEN + "A"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-httpx", "version": "1"},
    },
}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def embedder() -> Iterator[FakeEmbedder]:
    with running_fake_embedder() as fake:
        yield fake


@pytest.fixture(scope="module")
def database(pg_server: PgServer) -> Iterator[str]:
    with migrated_database(pg_server) as dsn:
        yield dsn


def base_env(dsn: str, fake: FakeEmbedder, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "EMBEDDER_URL": fake.url,
        "EMBEDDER_MODEL": fake.model,
        "CODEBASE_MCP_HOST": "127.0.0.1",
        "CODEBASE_MCP_PORT": str(port),
    }


@pytest.fixture(scope="module")
def server(
    database: str, embedder: FakeEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A token-protected server at debug log level (the most it would ever log)."""
    work = tmp_path_factory.mktemp("security")
    token_file = work / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    env = {
        **base_env(database, embedder, port),
        "CODEBASE_MCP_ALLOWED_HOSTS": "mcp.example.test,*.internal.test:9443",
        "CODEBASE_MCP_ALLOWED_ORIGINS": "https://app.example.test",
    }
    args = ["--auth-token-file", str(token_file), "--log-level", "debug"]
    with serving(args, env, work / "server.log", port) as served:
        yield served


def post_mcp(server: Served, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10
    )


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_json_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body["message"] and body["hint"]
    return body


# --- Host ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_loopback_hosts_on_the_port_are_answered(server: Served, host: str) -> None:
    response = post_mcp(server, {**bearer(), "host": host.format(port=server.port)})
    assert response.status_code == 200, response.text
    assert response.headers.get("mcp-session-id")


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",  # DNS rebinding: the page's own name, our port
        "localhost:{other}",
        "localhost",
        "127.0.0.2:{port}",
        "[::1]",
        "mcp.example.test.evil.example:{port}",
        "garbage:with:colons",
    ],
)
def test_foreign_hosts_get_421_with_a_json_body(server: Served, host: str) -> None:
    value = host.format(port=server.port, other=server.port + 1)
    body = assert_json_error(
        post_mcp(server, {**bearer(), "host": value}), 421, "misdirected_request"
    )
    assert "CODEBASE_MCP_ALLOWED_HOSTS" in body["hint"]


@pytest.mark.parametrize(
    "host", ["mcp.example.test", "mcp.example.test:443", "a.internal.test:9443"]
)
def test_hosts_allowed_by_the_operator_are_answered(server: Served, host: str) -> None:
    assert post_mcp(server, {**bearer(), "host": host}).status_code == 200


def test_allowed_host_pattern_ports_are_kept(server: Served) -> None:
    assert_json_error(
        post_mcp(server, {**bearer(), "host": "a.internal.test:9444"}), 421, "misdirected_request"
    )


# --- Origin -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://localhost:{port}", "http://127.0.0.1:{port}", "https://app.example.test"]
)
def test_allowed_origins_pass(server: Served, origin: str) -> None:
    response = post_mcp(server, {**bearer(), "origin": origin.format(port=server.port)})
    assert response.status_code == 200, response.text


def test_no_origin_passes(server: Served) -> None:
    # what CLI and desktop clients send: no Origin at all
    assert post_mcp(server, bearer()).status_code == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://evil.example:{port}",
        "http://localhost:3000",  # another web app on this machine
        "https://localhost:{port}",
        "null",
        "http://app.example.test",  # http, not the allowed https
        "file://",
    ],
)
def test_foreign_origins_get_403_with_a_json_body(server: Served, origin: str) -> None:
    value = origin.format(port=server.port)
    body = assert_json_error(
        post_mcp(server, {**bearer(), "origin": value}), 403, "forbidden_origin"
    )
    assert "CODEBASE_MCP_ALLOWED_ORIGINS" in body["hint"]


def test_a_foreign_origin_is_refused_before_the_token_is_looked_at(server: Served) -> None:
    # a rebinding page has no token: it learns nothing about auth either
    assert_json_error(post_mcp(server, {"origin": "http://evil.example"}), 403, "forbidden_origin")


# --- token --------------------------------------------------------------------------


def test_no_token_gets_401_with_a_bearer_challenge(server: Served) -> None:
    response = post_mcp(server, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [
        *(f"Bearer {t}" for t in WRONG_TOKENS),
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        "Bearer",
        f"Bearer  {TOKEN}",
        TOKEN,
    ],
)
def test_anything_but_the_token_gets_401(server: Served, authorization: str) -> None:
    response = post_mcp(server, {"authorization": authorization})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert not response.headers.get("mcp-session-id")


def test_the_token_is_needed_on_every_request_not_only_the_first(server: Served) -> None:
    opened = post_mcp(server, bearer())
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    without = httpx.post(f"{server.url}/mcp", json=listing, headers=headers, timeout=10)
    assert without.status_code == 401  # a session id is no credential
    with_token = httpx.post(
        f"{server.url}/mcp", json=listing, headers={**headers, **bearer()}, timeout=10
    )
    assert with_token.status_code == 200


def test_the_scheme_is_case_insensitive(server: Served) -> None:
    assert post_mcp(server, {"authorization": f"bearer {TOKEN}"}).status_code == 200


def test_an_mcp_client_with_the_token_lists_the_tools(server: Served) -> None:
    async def tools(auth: str | None) -> set[str]:
        async with Client(f"{server.url}/mcp", auth=auth) as client:
            return {t.name for t in await client.list_tools()}

    assert "search_code" in asyncio.run(tools(TOKEN))
    with pytest.raises(Exception):  # noqa: B017 - the client's own error for a 401
        asyncio.run(tools(WRONG_TOKENS[0]))


# --- /health ------------------------------------------------------------------------


@pytest.mark.parametrize("host", [None, "10.88.0.7:8000", "codebase-mcp-server:8000"])
def test_health_answers_probes_without_a_token_whatever_the_host(
    server: Served, host: str | None
) -> None:
    # the kubelet's httpGet probe sends the pod IP as Host and no token
    headers = {"host": host} if host else {}
    response = httpx.get(f"{server.url}/health", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_health_still_refuses_a_foreign_origin(server: Served) -> None:
    response = httpx.get(
        f"{server.url}/health", headers={"origin": "http://evil.example"}, timeout=10
    )
    assert_json_error(response, 403, "forbidden_origin")


def test_the_health_command_passes(server: Served) -> None:
    result = subprocess.run(
        [CLI, "health", "--url", f"{server.url}/health"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# --- exposure -----------------------------------------------------------------------


def test_a_reachable_address_without_a_token_is_refused(
    database: str, embedder: FakeEmbedder, tmp_path: Path
) -> None:
    env = base_env(database, embedder, free_port())
    result = run_serve(["--transport", "http", "--host", "0.0.0.0"], env, tmp_path / "log")
    assert result.returncode == 2, result.stderr
    assert "refusing to serve 0.0.0.0" in result.stderr
    assert "--insecure-no-auth" in result.stderr
    assert "Traceback" not in result.stderr


def test_published_on_loopback_counts_as_local_and_adds_its_port(
    database: str, embedder: FakeEmbedder, tmp_path: Path
) -> None:
    # The pod: 0.0.0.0 inside, published on 127.0.0.1:PUBLISHED by the runtime.
    port = free_port()
    published = free_port()
    env = {
        **base_env(database, embedder, port),
        "CODEBASE_MCP_HOST": "0.0.0.0",
        "CODEBASE_MCP_PUBLISHED_ON": f"127.0.0.1:{published}",
    }
    with serving([], env, tmp_path / "log", port) as served:
        assert post_mcp(served, {"host": f"127.0.0.1:{published}"}).status_code == 200
        assert post_mcp(served, {"host": f"localhost:{port}"}).status_code == 200
        assert post_mcp(served, {"host": "evil.example"}).status_code == 421


def test_insecure_no_auth_serves_and_says_so(
    database: str, embedder: FakeEmbedder, tmp_path: Path
) -> None:
    port = free_port()
    env = {**base_env(database, embedder, port), "CODEBASE_MCP_HOST": "0.0.0.0"}
    with serving(["--insecure-no-auth"], env, tmp_path / "log", port) as served:
        assert post_mcp(served, {}).status_code == 200
        assert "without authentication (--insecure-no-auth)" in served.log_text()


def test_a_bad_token_file_stops_serve_with_a_clear_error(
    database: str, embedder: FakeEmbedder, tmp_path: Path
) -> None:
    short = tmp_path / "short"
    short.write_text("tooshort")
    env = base_env(database, embedder, free_port())
    for path in [short, tmp_path / "missing"]:
        result = run_serve(["--auth-token-file", str(path)], env, tmp_path / "log")
        assert result.returncode == 2, result.stderr
        assert "auth token" in result.stderr
        assert "tooshort" not in result.stderr


# --- the log ------------------------------------------------------------------------


def test_zz_the_servers_log_never_contains_a_token(server: Served) -> None:
    """Runs last in this module (zz): by now the server saw every case above."""
    # one more round of each kind, so this test stands on its own when run alone
    post_mcp(server, bearer())
    post_mcp(server, bearer(WRONG_TOKENS[0]))
    post_mcp(server, {**bearer(), "origin": "http://evil.example"})
    log = server.log_text()
    # it is the real, verbose log: requests, refusals and auth failures are all in it
    assert "DEBUG" in log
    assert "refused POST" in log
    assert '"POST /mcp HTTP/1.1" 401' in log
    assert '"POST /mcp HTTP/1.1" 200' in log
    for secret in [TOKEN, *WRONG_TOKENS]:
        assert secret not in log
        assert json.dumps(secret)[1:-1] not in log
    assert TOKEN[:12] not in log  # not even a prefix of it
