"""A plain-socket HTTP GET for the init's embedder probe, stdlib only and no urllib.

Why: importing ``urllib.request`` (with ``http.client``, ``email`` and ``ssl``) is a
large share of the init's start-up once pydantic and asyncpg are gone (docs/init.md,
"Start-up time"); the probe only needs two GETs on a plain-HTTP address, usually loopback.

Narrow on purpose, like :mod:`codebase_mcp.init.pgwire`: :func:`get` sends the request
urllib would send to ``http://host[:port]/path`` and takes an HTTP 200 answer
(Content-Length, chunked or close-delimited body). It raises :class:`Unsupported` for
anything else (https, user info, IPv6 literals, ``*_proxy`` variables, 1xx, other 2xx
and redirects, other transfer encodings, malformed answers); the caller then makes the
same request with urllib, so these behave and read as they always did. Answers urllib
turns into ``HTTPError`` (4xx, 5xx: an embedder still starting) raise
:class:`HTTPStatus` rather than asking the server twice, and timeouts are not retried
(that would double the attempt): :class:`ConnectTimeout` while connecting or sending,
``TimeoutError`` while reading. The caller reports both as urllib would.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

# What urllib sends, so the embedder sees the same request either way.
USER_AGENT = f"Python-urllib/{sys.version_info[0]}.{sys.version_info[1]}"
MAX_BODY = 16 * 1024 * 1024  # /api/tags is a few KB; anything huge is urllib's problem
REDIRECTS = frozenset({301, 302, 303, 307, 308})  # urllib's HTTPRedirectHandler follows these


class Unsupported(Exception):
    """Not a request this client makes the way urllib would: use urllib."""


class HTTPStatus(Exception):
    """An answer urllib's default handlers raise ``HTTPError`` for (not 2xx, not a redirect)."""

    def __init__(self, code: int, reason: str, headers: list[tuple[str, str]]) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.headers = headers


class ConnectTimeout(TimeoutError):
    """No connection (or the request not sent) in time: urllib says ``URLError`` here."""


def uses_proxy(environ: Mapping[str, str]) -> bool:
    """Whether urllib could route the request through a proxy (``getproxies_environment``)."""
    return any(value and key.lower().endswith("_proxy") for key, value in environ.items())


def get(url: str, timeout: float, environ: Mapping[str, str]) -> bytes:
    """The body of ``GET url`` when it answers 200; ``timeout`` bounds the whole exchange."""
    parts = urlsplit(url)
    if parts.scheme != "http" or "@" in parts.netloc or "[" in parts.netloc:
        raise Unsupported("not a plain http://host[:port] URL")
    if not parts.netloc.isascii() or not parts.hostname or uses_proxy(environ):
        raise Unsupported("a non-ASCII host, no host, or a proxy in the environment")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise Unsupported(str(exc)) from exc
    selector = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not selector.isascii() or any(c <= " " or c == "\x7f" for c in selector):
        raise Unsupported("a path http.client would quote or refuse")
    # The request urllib sends (HTTP/1.1, Connection: close), header for header.
    request = (
        f"GET {selector} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept-Encoding: identity\r\n"
        f"User-Agent: {USER_AGENT}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    except TimeoutError as exc:
        raise ConnectTimeout(*exc.args) from None
    with sock:
        try:
            sock.settimeout(_left(deadline))
            sock.sendall(request.encode())
        except TimeoutError as exc:
            raise ConnectTimeout(*exc.args) from None
        return _response(_Reader(sock, deadline))


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


class _Reader:
    """Buffered reads from the socket, each bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buffer = sock, deadline, b""

    def _more(self) -> bool:
        if len(self.buffer) > MAX_BODY:
            raise Unsupported("an answer larger than 16 MiB")
        self.sock.settimeout(_left(self.deadline))
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._more():
                raise Unsupported("the server closed the connection early")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._more():
                raise Unsupported("the server closed the connection early")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest(self) -> bytes:
        while self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data


def _response(reader: _Reader) -> bytes:
    code, reason = _status(reader.line().decode("latin-1"))
    pairs: list[tuple[str, str]] = []
    while line := reader.line().decode("latin-1"):
        name, _, value = line.partition(":")
        pairs.append((name.strip(), value.strip()))
    if code >= 300 and code not in REDIRECTS:
        raise HTTPStatus(code, reason, pairs)  # urllib: HTTPError
    if code != 200:
        raise Unsupported(f"HTTP {code}: urllib reads or follows it")
    headers = {name.lower(): value for name, value in pairs}
    encoding = headers.get("transfer-encoding", "").lower()
    if encoding == "chunked":
        return _chunked(reader)
    if encoding:
        raise Unsupported(f"Transfer-Encoding {encoding!r}")
    length = headers.get("content-length")
    if length is None:
        return reader.rest()  # the body ends when the server closes (Connection: close)
    if not length.isdigit():
        raise Unsupported(f"Content-Length {length!r}")
    return reader.exactly(int(length))


def _chunked(reader: _Reader) -> bytes:
    body = b""
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Unsupported(f"chunk size {size_text[:20]!r}") from None
        if size == 0:
            while reader.line():  # trailers, up to the empty line
                pass
            return body
        body += reader.exactly(size)
        if reader.exactly(2) != b"\r\n":
            raise Unsupported("a chunk without its CRLF")


def _status(line: str) -> tuple[int, str]:
    """(code, reason) of a status line, split as http.client splits it."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Unsupported(f"status line {line[:60]!r}")
    code = int(parts[1])
    if len(parts[1]) != 3 or code < 200:  # 1xx: http.client skips them, urllib's business
        raise Unsupported(f"status line {line[:60]!r}")
    return code, parts[2].strip() if len(parts) == 3 else ""
