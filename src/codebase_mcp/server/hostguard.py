"""Host and Origin checks for the HTTP transport: DNS rebinding and cross-site requests.

A web page the user visits can point a name it controls at 127.0.0.1 (DNS
rebinding) and then talk to a server on localhost as if it were its own
origin. Its requests still carry the page's name in ``Host`` and its origin in
``Origin``, so the server answers only requests that name it:

- ``Host`` must be one of the allowed ``host:port`` pairs, else 421 (the
  request was meant for some other server). ``GET /health`` skips this one
  check: the kubelet probes it by pod IP.
- ``Origin``, when present, must be one of the allowed origins, else 403.
  Requests without one (CLI and desktop MCP clients) pass.

Both refusals carry a JSON body saying what to change. Everything here but
:class:`HostOriginGuard` is pure (parsing and matching), unit tested.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from codebase_mcp.errors import ConfigError

log = logging.getLogger("codebase_mcp.server.security")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}
HEALTH_PATH = "/health"
ANY_PORT = -1  # a pattern's port that matches every port


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8``, ``::1`` (with or without brackets)."""
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_unspecified(host: str) -> bool:
    """``0.0.0.0``, ``::`` and the empty address: every interface."""
    name = host.strip().strip("[]")
    if not name:
        return True
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False


def split_host_port(value: str) -> tuple[str, int | None] | None:
    """``Host`` header → (lower-case name, port or None); None when it is malformed.

    IPv6 addresses come in brackets (``[::1]:8000``); the name is returned
    without them. A port must be 1..65535.
    """
    text = value.strip().lower()
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        name, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        name, port_text = text.split(":")
    elif ":" in text:
        return None  # an IPv6 address without brackets
    else:
        name, port_text = text, None
    if not name or any(c in name for c in "/@?#\\ \t") or not name.isprintable():
        return None
    if port_text is None:
        return name, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return None
    return name, int(port_text)


@dataclass(frozen=True)
class HostPattern:
    """An allowed ``Host``: a name (``*`` globs allowed) and a port (ANY_PORT: all)."""

    name: str
    port: int

    def matches(self, name: str, port: int) -> bool:
        return (self.port in (ANY_PORT, port)) and fnmatchcase(name, self.name)

    def __str__(self) -> str:
        shown = f"[{self.name}]" if ":" in self.name else self.name
        return shown if self.port == ANY_PORT else f"{shown}:{self.port}"


@dataclass(frozen=True)
class OriginPattern:
    """An allowed ``Origin``: scheme, name (``*`` globs allowed), port (ANY_PORT: all)."""

    scheme: str
    name: str
    port: int

    def matches(self, scheme: str, name: str, port: int) -> bool:
        return (
            fnmatchcase(scheme, self.scheme)
            and self.port in (ANY_PORT, port)
            and fnmatchcase(name, self.name)
        )

    def __str__(self) -> str:
        shown = f"[{self.name}]" if ":" in self.name else self.name
        return f"{self.scheme}://{shown}" + ("" if self.port == ANY_PORT else f":{self.port}")


def parse_host_pattern(entry: str) -> HostPattern:
    """``name``/``name:*`` (any port), ``name:PORT``, ``[::1]:PORT``, ``*.example.com``."""
    text = entry.strip().lower()
    any_port = text.endswith(":*")
    parsed = split_host_port(text[:-2] if any_port else text)
    if parsed is None or "://" in entry:
        raise ConfigError(
            f"CODEBASE_MCP_ALLOWED_HOSTS entry {entry!r} is not a host name",
            hint="write names as the Host header carries them: mcp.example.com, "
            "mcp.example.com:8443, [::1]:8000, *.internal (no scheme, no path)",
        )
    name, port = parsed
    return HostPattern(name, ANY_PORT if any_port or port is None else port)


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """``Origin`` header → (scheme, lower-case name, port); None for ``null`` or garbage."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def parse_origin_pattern(entry: str) -> OriginPattern:
    """``http://name[:PORT|:*]`` or ``https://...``; ``*`` globs in the name; ``*``: any."""
    text = entry.strip()
    if text == "*":
        return OriginPattern("*", "*", ANY_PORT)
    any_port = text.endswith(":*")
    parsed = parse_origin(text[:-2] if any_port else text)
    if parsed is None:
        raise ConfigError(
            f"CODEBASE_MCP_ALLOWED_ORIGINS entry {entry!r} is not an origin",
            hint="write origins as browsers send them: https://app.example.com, "
            "http://localhost:6274 (scheme, name, optional port; no path)",
        )
    scheme, name, port = parsed
    return OriginPattern(scheme, name, ANY_PORT if any_port else port)


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_endpoints(value: str, variable: str) -> list[tuple[str, int]]:
    """``127.0.0.1:8000,[::1]:8000`` → [(address, port)]; every entry needs a port."""
    endpoints = []
    for item in split_list(value):
        parsed = split_host_port(item)
        if parsed is None or parsed[1] is None:
            raise ConfigError(
                f"{variable} entry {item!r} is not ADDRESS:PORT",
                hint="write the address and port the server is published on, e.g. 127.0.0.1:8000",
            )
        endpoints.append((parsed[0], parsed[1]))
    return endpoints


@dataclass(frozen=True)
class HostOriginPolicy:
    """Which ``Host`` and ``Origin`` values this server answers."""

    hosts: tuple[HostPattern, ...]
    origins: tuple[OriginPattern, ...]

    @classmethod
    def build(
        cls,
        *,
        bind_host: str,
        port: int,
        published: Iterable[tuple[str, int]] = (),
        extra_hosts: Iterable[str] = (),
        extra_origins: Iterable[str] = (),
    ) -> HostOriginPolicy:
        """The defaults (loopback names and the bind address, on the listening port and
        every published port) plus what the operator allowed."""
        published = list(published)
        names = list(LOOPBACK_NAMES)
        for name in [bind_host.strip().lower().strip("[]"), *(a for a, _ in published)]:
            if not is_unspecified(name) and name not in names:
                names.append(name)
        ports = sorted({port, *(p for _, p in published)})
        hosts = [HostPattern(n, p) for n in names for p in ports]
        hosts += [parse_host_pattern(e) for e in extra_hosts]
        origins = [OriginPattern("http", n, p) for n in names for p in ports]
        origins += [parse_origin_pattern(e) for e in extra_origins]
        return cls(tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(origins)))

    def host_allowed(self, header: str | None, scheme: str) -> bool:
        parsed = split_host_port(header or "")
        if parsed is None:
            return False
        name, port = parsed
        actual = port if port is not None else DEFAULT_PORTS.get(scheme, 80)
        return any(p.matches(name, actual) for p in self.hosts)

    def origin_allowed(self, header: str | None) -> bool:
        if header is None:
            return True  # not a browser: CLI and desktop clients send no Origin
        parsed = parse_origin(header)
        return parsed is not None and any(p.matches(*parsed) for p in self.origins)

    def refusal(self, scope: Scope) -> tuple[int, dict[str, str]] | None:
        """None when the request may go on, else (status, JSON body)."""
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        host = headers.get("host")
        skip_host = path == HEALTH_PATH and method in ("GET", "HEAD")
        if not skip_host and not self.host_allowed(host, scope.get("scheme", "http")):
            return 421, {
                "error": "misdirected_request",
                "message": f"this server does not answer for Host {_shown(host)}",
                "hint": "use the address the server printed (e.g. http://127.0.0.1:PORT/mcp); "
                "an operator can allow more names with CODEBASE_MCP_ALLOWED_HOSTS",
            }
        origin = headers.get("origin")
        if not self.origin_allowed(origin):
            return 403, {
                "error": "forbidden_origin",
                "message": f"requests from Origin {_shown(origin)} are not allowed",
                "hint": "browser pages may call this server only from an allowed origin; "
                "an operator can allow one with CODEBASE_MCP_ALLOWED_ORIGINS",
            }
        return None


def _shown(value: str | None) -> str:
    """A header value safe to echo in a message or a log line (quoted, cut short)."""
    if value is None:
        return "(none)"
    return json.dumps(value[:100] + ("..." if len(value) > 100 else ""))


class HostOriginGuard:
    """ASGI middleware applying a :class:`HostOriginPolicy` to every HTTP request."""

    def __init__(self, app: ASGIApp, policy: HostOriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.policy.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, body = refused
        log.warning(
            "refused %s %s: %s",
            scope.get("method", "WEBSOCKET"),
            _shown(scope.get("path", "")),
            body["message"],
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _send_json(send, status, body)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
