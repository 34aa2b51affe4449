"""A tiny fake PostgreSQL server on a loopback port: SSLRequest, start-up, auth, simple queries.

Server side of what :mod:`codebase_mcp.init.pgwire` speaks, written from the protocol
documentation (and RFC 5802/7677 for SCRAM). The real server is exercised by
tests/integration/init/test_pgwire_real.py; this one makes the odd cases reproducible:
every auth method, TLS offered, a server that never answers, errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

Rows = list[tuple[str | None, ...]]


@dataclass
class PgState:
    auth: str = "scram"  # trust | password | md5 | scram | gss | scram-plus-only
    user: str = "codebase"
    password: str = "s3cret"
    ssl_answer: bytes = b"N"
    server_version: str = "17.2 (Debian 17.2-1.pgdg120+1)"
    queries: dict[str, Rows | str] = field(default_factory=dict)  # str: an error message
    hang_after_accept: bool = False
    startup_error: str | None = None  # e.g. "the database system is starting up"
    received: list[str] = field(default_factory=list)  # what each connection sent, in order
    startup_params: list[dict[str, str]] = field(default_factory=list)


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def error(code: str, text: str) -> bytes:
    return message(b"E", f"SFATAL\0VFATAL\0C{code}\0M{text}\0\0".encode())


def auth(code: int, data: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + data)


class Session:
    def __init__(self, sock: socket.socket, state: PgState) -> None:
        self.sock = sock
        self.state = state

    def exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def typed(self) -> tuple[bytes, bytes]:
        kind = self.exactly(1)
        (length,) = struct.unpack("!i", self.exactly(4))
        return kind, self.exactly(length - 4)

    def run(self) -> None:
        state = self.state
        if state.hang_after_accept:
            self.exactly(8)  # read the SSLRequest, answer nothing
            self.exactly(1)  # blocks until the client gives up
            return
        (length,) = struct.unpack("!i", self.exactly(4))
        (code,) = struct.unpack("!i", self.exactly(length - 4)[:4])
        assert code == 80877103, "expected an SSLRequest first"
        state.received.append("SSLRequest")
        self.sock.sendall(state.ssl_answer)
        if state.ssl_answer != b"N":
            return  # a real server would start TLS here; the client must leave
        (length,) = struct.unpack("!i", self.exactly(4))
        body = self.exactly(length - 4)
        parts = body[4:].split(b"\0")
        params = {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 2, 2)}
        state.startup_params.append(params)
        state.received.append("StartupMessage")
        if not self.authenticate(params["user"]):
            return
        if state.startup_error:
            self.sock.sendall(error("57P03", state.startup_error))
            return
        self.sock.sendall(
            message(b"S", f"server_version\0{state.server_version}\0".encode())
            + message(b"S", b"client_encoding\0UTF8\0")
            + message(b"K", struct.pack("!ii", 1234, 5678))
            + message(b"N", b"SNOTICE\0Mhello\0\0")
            + message(b"Z", b"I")
        )
        while True:
            kind, payload = self.typed()
            if kind == b"X":
                state.received.append("Terminate")
                return
            assert kind == b"Q"
            sql = payload[:-1].decode()
            state.received.append(f"Query {sql}")
            self.answer(sql)

    def answer(self, sql: str) -> None:
        result = self.state.queries.get(sql, f'relation "{sql}" does not exist')
        if isinstance(result, str):
            self.sock.sendall(error("42P01", result) + message(b"Z", b"I"))
            return
        width = len(result[0]) if result else 1
        out = message(
            b"T", struct.pack("!h", width) + b"".join(b"c\0" + bytes(18) for _ in range(width))
        )
        for row in result:
            cells = b"".join(
                struct.pack("!i", -1)
                if v is None
                else struct.pack("!i", len(v.encode())) + v.encode()
                for v in row
            )
            out += message(b"D", struct.pack("!h", len(row)) + cells)
        out += message(b"C", f"SELECT {len(result)}\0".encode()) + message(b"Z", b"I")
        self.sock.sendall(out)

    def authenticate(self, user: str) -> bool:
        state = self.state
        ok = user == state.user
        if state.auth == "trust":
            pass
        elif state.auth == "password":
            self.sock.sendall(auth(3))
            _, payload = self.typed()
            state.received.append("PasswordMessage")
            ok = ok and payload == state.password.encode() + b"\0"
        elif state.auth == "md5":
            salt = os.urandom(4)
            self.sock.sendall(auth(5, salt))
            _, payload = self.typed()
            state.received.append("PasswordMessage")
            inner = hashlib.md5((state.password + user).encode()).hexdigest()
            expected = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
            ok = ok and payload == expected.encode() + b"\0"
        elif state.auth == "gss":
            self.sock.sendall(auth(7))
            return False
        elif state.auth == "scram-plus-only":
            self.sock.sendall(auth(10, b"SCRAM-SHA-256-PLUS\0\0"))
            return False
        else:
            ok = ok and self.scram()
        if not ok:
            self.sock.sendall(error("28P01", f'password authentication failed for user "{user}"'))
            return False
        self.sock.sendall(auth(0))
        return True

    def scram(self) -> bool:
        self.sock.sendall(auth(10, b"SCRAM-SHA-256\0\0"))
        _, payload = self.typed()
        mechanism, rest = payload.split(b"\0", 1)
        assert mechanism == b"SCRAM-SHA-256"
        client_first = rest[4:].decode()
        self.state.received.append("SASLInitialResponse")
        assert client_first.startswith("n,,")
        client_first_bare = client_first[3:]
        client_nonce = dict(a.split("=", 1) for a in client_first_bare.split(","))["r"]
        salt, iterations = os.urandom(16), 4096
        salted = hashlib.pbkdf2_hmac("sha256", self.state.password.encode(), salt, iterations)
        stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        nonce = client_nonce + base64.b64encode(os.urandom(12)).decode()
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        self.sock.sendall(auth(11, server_first.encode()))
        _, payload = self.typed()
        client_final = payload.decode()
        self.state.received.append("SASLResponse")
        without_proof, _, proof_b64 = client_final.rpartition(",p=")
        if without_proof != f"c=biws,r={nonce}":
            return False
        auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = base64.b64decode(proof_b64)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if hashlib.sha256(client_key).digest() != stored_key:
            return False
        server_signature = hmac.digest(server_key, auth_message, "sha256")
        self.sock.sendall(auth(12, b"v=" + base64.b64encode(server_signature)))
        return True


@contextmanager
def fake_postgres(state: PgState) -> Iterator[int]:
    """Serve ``state`` on 127.0.0.1; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn, suppress(ConnectionError, OSError):
            Session(conn, state).run()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
