"""Just enough of the PostgreSQL wire protocol (v3) for the init's readiness probe, stdlib only.

Why: the probe ran on asyncpg, whose import (with asyncio) was the second largest part of
the init's start-up (docs/init.md, "Start-up time"); the server imports it anyway, later.
This client does one thing: connect over TCP, authenticate (trust, password, md5,
SCRAM-SHA-256), run simple queries, close.

It is deliberately narrow. Whatever it would not do exactly as asyncpg does raises
:class:`Unsupported` before a byte is sent: DSN query parameters, host lists, Unix
sockets, a missing password (asyncpg would read ``~/.pgpass``), non-ASCII passwords
(SASLprep), any ``PG*`` environment variable (asyncpg reads them). A server that
accepts TLS makes it stop too: asyncpg's default ``sslmode=prefer`` would use TLS there,
so no credential ever goes in clear where asyncpg would have encrypted it. The caller
(:class:`codebase_mcp.init.waits.PostgresProbe`) runs the asyncpg probe whenever this
one fails for any reason, so every failure and every unusual set-up behaves and reads
exactly as before; only the common success path is faster.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103
# asyncpg.serverversion's pattern: "major.minor" as asyncpg reports it (see server_version).
_VERSION = re.compile(
    r"(Postgre[^\s]*)?\s*(?P<major>[0-9]+)\.?((?P<minor>[0-9]+)\.?)?(?P<micro>[0-9]+)?"
)


class Unsupported(Exception):
    """Not something this client does the way asyncpg would: use asyncpg."""


class ServerError(Exception):
    """An ErrorResponse from the server."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(f"{fields.get('C', '?')}: {fields.get('M', 'error')}")
        self.fields = fields


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    database: str
    password: str = field(repr=False)


def target(dsn: str, environ: Mapping[str, str]) -> Target:
    """Where to connect, read from a plain ``postgresql://user:password@host[:port]/db`` DSN.

    Mirrors asyncpg's parsing for exactly these DSNs and refuses everything else.
    """
    if any(key.startswith("PG") for key in environ):
        raise Unsupported("PG* environment variables are set")
    parsed = urlparse(dsn)
    if parsed.scheme not in {"postgresql", "postgres"}:
        raise Unsupported("not a postgresql:// DSN")
    if parsed.params or parsed.query or parsed.fragment:
        raise Unsupported("DSN parameters")
    auth, at, hostspec = parsed.netloc.partition("@")
    raw_user, _, raw_password = auth.partition(":")
    user, password = unquote(raw_user), unquote(raw_password)
    if not (at and user and password):
        raise Unsupported("no user or password in the DSN")
    if not password.isascii():
        raise Unsupported("a non-ASCII password (asyncpg applies SASLprep)")
    if any(c in hostspec for c in ",[]%/"):
        raise Unsupported("a host list, IPv6 literal, quoted host or socket path")
    host, _, port = hostspec.partition(":")
    if not host or (port and not (port.isascii() and port.isdigit())):
        raise Unsupported("no host, or an unusual port")
    database = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
    if not database:
        raise Unsupported("no database name")
    return Target(host, int(port) if port else 5432, user, database, password)


def server_version(text: str) -> str:
    """``major.minor`` as asyncpg's ``get_server_version()`` gives it (17.2 reads as 17.0)."""
    match = _VERSION.search(text)
    if match is None:
        raise Unsupported(f"unparsable server_version {text!r}")
    major = int(match["major"])
    if major >= 10:  # asyncpg: "10.x really means 10.0.x"
        return f"{major}.0"
    return f"{major}.{int(match['minor'] or 0)}"


def _message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def _cstrings(payload: bytes) -> list[str]:
    return payload.decode().split("\0")


def _error_fields(payload: bytes) -> dict[str, str]:
    return {item[0]: item[1:] for item in _cstrings(payload) if item}


def scram_client_proof(
    password: str, client_first_bare: str, server_first: str, client_final_bare: str
) -> tuple[bytes, bytes]:
    """(ClientProof, expected ServerSignature) of SCRAM-SHA-256 (RFC 5802, RFC 7677)."""
    attrs = dict(item.split("=", 1) for item in server_first.split(","))
    salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = f"{client_first_bare},{server_first},{client_final_bare}".encode()
    signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return proof, hmac.digest(server_key, auth_message, "sha256")


class Connection:
    """One authenticated connection; every read and write is bounded by ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.parameters: dict[str, str] = {}
        self.auth_method = "trust"  # what the server asked for (tests, debugging)

    @classmethod
    def open(cls, where: Target, timeout: float) -> Connection:
        deadline = time.monotonic() + timeout
        sock = socket.create_connection((where.host, where.port), timeout=timeout)
        conn = cls(sock, deadline)
        try:
            conn._startup(where)
        except BaseException:
            sock.close()
            raise
        return conn

    def close(self) -> None:
        try:
            self.sock.sendall(_message(b"X"))
        except OSError:
            pass  # closing anyway
        finally:
            self.sock.close()

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        """One statement with the simple query protocol; values as text (None for NULL)."""
        self._send(_message(b"Q", sql.encode() + b"\0"))
        rows: list[tuple[str | None, ...]] = []
        error: ServerError | None = None
        while True:
            kind, payload = self._receive()
            if kind == b"D":
                rows.append(_data_row(payload))
            elif kind == b"E":
                error = ServerError(_error_fields(payload))
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows
            elif kind not in b"TCINS":  # row description, complete, empty, notice, parameter
                raise Unsupported(f"unexpected message {kind!r} after a query")

    # --- start-up and authentication ---------------------------------------------------------

    def _startup(self, where: Target) -> None:
        self._send(struct.pack("!ii", 8, SSL_REQUEST))
        answer = self._exactly(1)
        if answer != b"N":  # b"S": TLS, which asyncpg would use; b"E": a pre-7.0 server
            raise Unsupported(f"the server answered {answer!r} to SSLRequest")
        params = {"user": where.user, "database": where.database, "client_encoding": "UTF8"}
        body = b"".join(f"{k}\0{v}\0".encode() for k, v in params.items()) + b"\0"
        self._send(struct.pack("!ii", len(body) + 8, PROTOCOL_3_0) + body)
        self._authenticate(where)
        while True:
            kind, payload = self._receive()
            if kind == b"S":
                name, value = _cstrings(payload)[:2]
                self.parameters[name] = value
            elif kind == b"E":
                raise ServerError(_error_fields(payload))
            elif kind == b"Z":
                return
            elif kind not in b"KN":  # backend key data, notice
                raise Unsupported(f"unexpected message {kind!r} during start-up")

    def _authenticate(self, where: Target) -> None:
        while True:
            code, data = self._auth_request()
            if code == 0:  # AuthenticationOk
                return
            if code == 3:  # cleartext password
                self.auth_method = "password"
                self._password(where.password.encode())
            elif code == 5:  # md5 password, salted
                self.auth_method = "md5"
                inner = hashlib.md5((where.password + where.user).encode()).hexdigest()  # noqa: S324 - the protocol's
                outer = hashlib.md5(inner.encode() + data[:4]).hexdigest()  # noqa: S324
                self._password(f"md5{outer}".encode())
            elif code == 10:  # SASL
                mechanisms = [m for m in data.decode().split("\0") if m]
                if "SCRAM-SHA-256" not in mechanisms:
                    raise Unsupported(f"SASL mechanisms {mechanisms}")
                self.auth_method = "scram-sha-256"
                self._scram(where.password)
                return
            else:  # Kerberos, GSSAPI, SSPI: asyncpg's business
                raise Unsupported(f"authentication method {code}")

    def _auth_request(self) -> tuple[int, bytes]:
        kind, payload = self._receive()
        if kind == b"E":
            raise ServerError(_error_fields(payload))
        if kind != b"R":
            raise Unsupported(f"unexpected message {kind!r} during authentication")
        return struct.unpack("!i", payload[:4])[0], payload[4:]

    def _password(self, secret: bytes) -> None:
        self._send(_message(b"p", secret + b"\0"))

    def _scram(self, password: str) -> None:
        nonce = base64.b64encode(os.urandom(18)).decode()
        client_first_bare = f"n=,r={nonce}"
        first = f"n,,{client_first_bare}".encode()
        self._send(_message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        code, data = self._auth_request()
        server_first = data.decode()
        if code != 11 or not server_first.startswith(f"r={nonce}"):
            raise Unsupported("unexpected SCRAM server-first message")
        server_nonce = server_first.split(",", 1)[0][2:]
        client_final_bare = f"c=biws,r={server_nonce}"
        proof, expected = scram_client_proof(
            password, client_first_bare, server_first, client_final_bare
        )
        final = f"{client_final_bare},p={base64.b64encode(proof).decode()}"
        self._send(_message(b"p", final.encode()))
        code, data = self._auth_request()
        attrs = dict(item.split("=", 1) for item in data.decode().split(",") if "=" in item)
        if code != 12 or not hmac.compare_digest(base64.b64decode(attrs.get("v", "")), expected):
            raise Unsupported("the server's SCRAM signature does not verify")
        code, _ = self._auth_request()
        if code != 0:
            raise Unsupported(f"no AuthenticationOk after SCRAM (got {code})")

    # --- bytes --------------------------------------------------------------------------------

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def _send(self, data: bytes) -> None:
        self.sock.settimeout(self._left())
        self.sock.sendall(data)

    def _exactly(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size:
            self.sock.settimeout(self._left())
            chunk = self.sock.recv(size)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _receive(self) -> tuple[bytes, bytes]:
        header = self._exactly(5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        return kind, self._exactly(length - 4)


def _data_row(payload: bytes) -> tuple[str | None, ...]:
    (count,) = struct.unpack("!h", payload[:2])
    values: list[str | None] = []
    offset = 2
    for _ in range(count):
        (size,) = struct.unpack("!i", payload[offset : offset + 4])
        offset += 4
        if size < 0:
            values.append(None)
        else:
            values.append(payload[offset : offset + size].decode())
            offset += size
    return tuple(values)
