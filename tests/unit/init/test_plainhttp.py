"""The embedder probe's socket GET (plainhttp) against urllib, answer for answer.

A scripted server replays raw HTTP answers; for each, the probe's ``_get`` (plainhttp,
then urllib when it declines) must return what urllib returns or raise what urllib
raises (same ``describe`` text), and ask the server once unless urllib has to redo it.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from codebase_mcp.init import plainhttp, waits
from codebase_mcp.init.waits import describe


@dataclass
class Script:
    answer: bytes
    hang: bool = False
    requests: list[bytes] = field(default_factory=list)


@contextmanager
def scripted(script: Script) -> Iterator[str]:
    """Answer every connection with ``script.answer`` (raw bytes), then close."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            script.requests.append(data)
            if script.hang:
                stop.wait(5)
                return
            conn.sendall(script.answer)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def urllib_get(url: str, timeout: float) -> bytes:
    """What the probe did before: urllib only."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def outcome(get: object, url: str, timeout: float = 5.0) -> str:
    try:
        return "body " + get(url, timeout).decode()  # type: ignore[operator]
    except Exception as exc:
        return "error " + describe(exc)


BODY = b'{"models": [{"name": "all-minilm:latest"}]}'
ANSWERS = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "close-delimited": b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\n" + BODY[:5] + b"\r\n%x\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n"
    % (len(BODY) - 5, BODY[5:]),
    "503": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n\r\nstarting",
    "404-no-reason": b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
    "500-odd-reason": b"HTTP/1.0 500  Internal  Trouble \r\n\r\n",
}  # fmt: skip
# Answers plainhttp leaves to urllib: it asks again and decides.
DECLINED = {
    "204": b"HTTP/1.1 204 No Content\r\n\r\n",
    "redirect": b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
    "gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "garbage": b"SSH-2.0-OpenSSH_9.2\r\n",
    "short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "early-close": b"HTTP/1.1 200 OK\r\nContent-",
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_answers_read_as_urllib_reads_them_with_one_request(name: str) -> None:
    script = Script(ANSWERS[name])
    with scripted(script) as base:
        expected = outcome(urllib_get, f"{base}/api/tags")
        script.requests.clear()
        assert outcome(waits._get, f"{base}/api/tags") == expected
    assert len(script.requests) == 1  # plainhttp answered: no second request
    if name in {"content-length", "close-delimited", "chunked"}:
        assert expected == "body " + BODY.decode()
    else:
        assert expected.startswith("error HTTPError: HTTP Error ")


@pytest.mark.parametrize("name", list(DECLINED))
def test_unusual_answers_are_left_to_urllib(name: str) -> None:
    script = Script(DECLINED[name])
    with scripted(script) as base:
        expected = outcome(urllib_get, f"{base}/api/tags")
        script.requests.clear()
        assert outcome(waits._get, f"{base}/api/tags") == expected
        with pytest.raises(plainhttp.Unsupported):
            plainhttp.get(f"{base}/api/tags", 5.0, {})


def test_the_request_is_the_one_urllib_sends() -> None:
    script = Script(ANSWERS["content-length"])
    with scripted(script) as base:
        urllib_get(f"{base}/api/tags?x=1", 5.0)
        plainhttp.get(f"{base}/api/tags?x=1", 5.0, {})
    theirs, ours = (r.split(b"\r\n") for r in script.requests)
    assert ours[0] == theirs[0] == b"GET /api/tags?x=1 HTTP/1.1"
    assert sorted(ours[1:]) == sorted(theirs[1:])


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("https://127.0.0.1:1/", {}),
        ("http://user:pw@127.0.0.1:1/", {}),
        ("http://[::1]:1/", {}),
        ("http://127.0.0.1:1/", {"http_proxy": "http://proxy:3128"}),
        ("http://127.0.0.1:1/", {"HTTPS_PROXY": "http://proxy:3128"}),
        ("http://127.0.0.1:99999/", {}),
        ("http://127.0.0.1:1/a b", {}),
    ],
)
def test_urls_and_environments_urllib_treats_differently_are_declined(
    url: str, env: dict[str, str]
) -> None:
    with pytest.raises(plainhttp.Unsupported):
        plainhttp.get(url, 1.0, env)


def test_a_refused_connection_reads_as_urllib_reports_it() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    assert outcome(waits._get, url) == outcome(urllib_get, url)
    assert "Connection refused" in outcome(waits._get, url)


def test_a_silent_server_times_out_as_urllib_says_without_a_second_request() -> None:
    script = Script(b"", hang=True)
    with scripted(script) as base:
        expected = outcome(urllib_get, f"{base}/", timeout=0.3)
        script.requests.clear()
        assert (
            outcome(waits._get, f"{base}/", timeout=0.3)
            == expected
            == "error TimeoutError: timed out"
        )
    assert len(script.requests) == 1


def test_a_connect_timeout_reads_as_urllib_says(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connection(*args: object, **kwargs: object) -> socket.socket:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    expected = outcome(urllib_get, "http://127.0.0.1:9/", timeout=0.3)
    assert expected == "error URLError: <urlopen error timed out>"
    assert outcome(waits._get, "http://127.0.0.1:9/", timeout=0.3) == expected
