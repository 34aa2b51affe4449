"""Real git servers on 127.0.0.1 for the git-source tests.

- :func:`git_daemon`: ``git daemon --export-all`` over a base path (``git://``).
- :func:`git_http`: ``git http-backend`` (smart HTTP) behind a stdlib HTTP server
  that requires ``Authorization`` (Basic or Bearer) with one token, answers 401
  otherwise, and counts the bytes of every upload-pack answer (so a test can see
  that a second fetch transferred only the delta).

Both serve bare repositories under a base directory; :func:`make_repo` creates
a small work repository and :func:`publish` pushes it into the base.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.processes import stop

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(*args: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """Run git for test set-up (never the code under test) and return its stdout."""
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *map(os.fspath, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(f"git {args} failed: {done.stderr}")
    return done.stdout.strip()


def make_repo(path: Path, files: Mapping[str, str]) -> Path:
    """A work repository on branch main with ``files`` committed as "one"."""
    git("init", "-q", "-b", "main", path)
    commit(path, files, "one")
    return path


def commit(repo: Path, files: Mapping[str, str | None], message: str) -> str:
    """Write (or, for None, delete) ``files`` and commit them; returns the new commit."""
    for rel, text in files.items():
        target = repo / rel
        if text is None:
            git("rm", "-q", rel, cwd=repo)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git("add", rel, cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def publish(repo: Path, bare: Path) -> None:
    """Push every branch and tag of ``repo`` into the bare repository ``bare`` (created)."""
    if not bare.exists():
        git("init", "-q", "--bare", "-b", "main", bare)
    refspecs = ("refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
    git("push", "-q", "--force", bare, *refspecs, cwd=repo)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """``git daemon`` exporting every repository under ``base``; yields ``git://127.0.0.1:PORT``."""
    port = free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={base}",
            str(base),
        ],
        env={**os.environ, **GIT_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process)
        yield f"git://127.0.0.1:{port}"
    finally:
        stop(process)


@dataclass
class HttpGitServer:
    """What the HTTP git server saw: answers by status and upload-pack bytes sent."""

    url: str
    token: str
    statuses: list[int] = field(default_factory=list)
    upload_pack_bytes: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # protocol v2: ls-refs, fetch
    authorizations: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.statuses.clear()
        self.upload_pack_bytes.clear()
        self.commands.clear()
        self.authorizations.clear()


def _accepted(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value == token
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except ValueError:
            return False
        _user, _, password = decoded.partition(":")
        return password == token
    return False


@contextmanager
def git_http(base: Path, token: str) -> Iterator[HttpGitServer]:
    """Smart HTTP (``git http-backend`` as CGI) on 127.0.0.1 that needs ``token``."""
    port = free_port()
    seen = HttpGitServer(url=f"http://127.0.0.1:{port}", token=token)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            with lock:
                seen.statuses.append(status)
                if status == 200 and self.path.split("?")[0].endswith("/git-upload-pack"):
                    seen.upload_pack_bytes.append(len(body))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            body = self._body() if self.command == "POST" else b""
            plain = body
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                plain = gzip.decompress(body)
            match = re.search(rb"command=([a-z-]+)", plain[:64])
            header = self.headers.get("Authorization", "")
            with lock:
                seen.authorizations.append(header)
            if match and _accepted(header, token):
                with lock:
                    seen.commands.append(match[1].decode())
            if not _accepted(header, token):
                self._answer(401, [("WWW-Authenticate", 'Basic realm="git"')], b"unauthorized\n")
                return
            path, _, query = self.path.partition("?")
            env = {
                **os.environ,
                **GIT_ENV,
                "GIT_PROJECT_ROOT": str(base),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": "127.0.0.1",
            }
            for name, var in (
                ("Git-Protocol", "GIT_PROTOCOL"),
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ):
                if self.headers.get(name):
                    env[var] = self.headers[name]
            done = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
            )
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self._answer(status, headers, payload)

        do_GET = _serve
        do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _wait_port(port, None)
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
