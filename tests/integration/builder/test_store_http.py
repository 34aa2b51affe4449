"""The store's downloads over real HTTP: a local server that fails, then answers.

A fresh CI host once lost its resolver for seconds and a whole build failed on
one Debian package. These tests run `Store.fetch` through urllib against a real
server on 127.0.0.1 that answers 503 a few times before it serves the file, or
404 for good, and check what lands in the store.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codebase_mcp.builder.store import Store, Wanted
from codebase_mcp.errors import FetchError

pytestmark = pytest.mark.integration

BODY = b"package bytes\n" * 4096


@dataclass
class Flaky:
    """How the server behaves: fail the first ``failures`` GETs with ``status``."""

    failures: int = 0
    status: int = 503
    seen: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Flaky]]:
    flaky = Flaky()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            flaky.seen.append(self.path)
            if flaky.failures > 0:
                flaky.failures -= 1
                self.send_error(flaky.status)
                return
            if self.path != "/pool/pkg.deb":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", flaky
    finally:
        httpd.shutdown()
        httpd.server_close()


def wanted(url: str) -> Wanted:
    return Wanted("pkg_1.0_amd64.deb", hashlib.sha256(BODY).hexdigest(), (url,))


def test_server_errors_are_retried_until_the_file_arrives(
    tmp_path: Path, server: tuple[str, Flaky]
) -> None:
    base, flaky = server
    flaky.failures = 2
    waits: list[float] = []
    store = Store(tmp_path, retry_delays=(0.01, 0.02, 0.03), sleep=waits.append)

    path = store.fetch(wanted(f"{base}/pool/pkg.deb"))

    assert path.read_bytes() == BODY
    assert flaky.seen == ["/pool/pkg.deb"] * 3
    assert waits == [0.01, 0.02]
    assert not list(path.parent.glob(".partial-*"))


def test_a_missing_file_fails_at_once_and_stores_nothing(
    tmp_path: Path, server: tuple[str, Flaky]
) -> None:
    base, flaky = server
    waits: list[float] = []
    store = Store(tmp_path, retry_delays=(0.01, 0.02), sleep=waits.append)

    with pytest.raises(FetchError, match=r"404") as info:
        store.fetch(wanted(f"{base}/pool/gone.deb"))

    assert "attempts" not in str(info.value)
    assert waits == []
    assert flaky.seen == ["/pool/gone.deb"]
    assert not list((tmp_path / "sha256").glob("*"))


def test_an_outage_longer_than_the_patience_names_every_attempt(
    tmp_path: Path, server: tuple[str, Flaky]
) -> None:
    base, flaky = server
    flaky.failures = 10
    store = Store(tmp_path, retry_delays=(0.01, 0.01), sleep=lambda _s: None)

    with pytest.raises(FetchError, match=r"after 3 attempts") as info:
        store.fetch(wanted(f"{base}/pool/pkg.deb"))

    assert "503" in str(info.value)
    assert len(flaky.seen) == 3
    assert not list((tmp_path / "sha256").glob("*"))
