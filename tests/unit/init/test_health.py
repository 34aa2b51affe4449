"""`codebase-mcp health` against a loopback HTTP server answering like the MCP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codebase_mcp.cli import main
from codebase_mcp.cli.init import health_url, unhealthy_reason


def serve(code: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(code if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield str(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def healthy() -> Iterator[str]:
    yield from serve(200, json.dumps({"status": "ok", "database": {"status": "ok"}}).encode())


@pytest.fixture
def degraded() -> Iterator[str]:
    body = {
        "status": "degraded",
        "database": {"status": "down", "error": "connection refused"},
        "embedder": {"status": "ok", "model": "all-minilm"},
    }
    yield from serve(503, json.dumps(body).encode())


def run_health(monkeypatch: pytest.MonkeyPatch, port: str) -> int:
    monkeypatch.setenv("CODEBASE_MCP_PORT", port)
    monkeypatch.delenv("CODEBASE_MCP_HEALTH_URL", raising=False)
    try:
        main(["health", "--timeout", "2"])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_healthy_server_exits_0(
    monkeypatch: pytest.MonkeyPatch, healthy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_health(monkeypatch, healthy) == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_degraded_server_exits_8_with_one_line_reason(
    monkeypatch: pytest.MonkeyPatch, degraded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_health(monkeypatch, degraded) == 8
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "HTTP 503" in err
    assert "database: down (connection refused)" in err
    assert "embedder" not in err  # only what is not ok


def test_unreachable_server_exits_8(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    assert run_health(monkeypatch, port) == 8
    err = capsys.readouterr().err.strip()
    assert "unreachable" in err
    assert len(err.splitlines()) == 1


def test_health_url_and_reason() -> None:
    assert health_url(None) == "http://127.0.0.1:8000/health"
    assert health_url("9000") == "http://127.0.0.1:9000/health"
    assert unhealthy_reason(["x"]).startswith("unexpected answer")


def test_health_imports_nothing_heavy() -> None:
    # It runs as an exec probe every few seconds: no pydantic, SQLAlchemy, FastMCP, asyncpg.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from codebase_mcp.cli import main\n"
        "try:\n"
        "    main(['health', '--url', 'http://127.0.0.1:9/health', '--timeout', '0.5'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ['pydantic', 'sqlalchemy', 'fastmcp', 'asyncpg', 'alembic', 'httpx']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "unreachable" in out.stderr
