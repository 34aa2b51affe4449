"""A tiny fake Ollama API on a loopback port: GET /, GET /api/tags, POST /api/pull (NDJSON)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class OllamaState:
    models: list[str] = field(default_factory=list)
    pullable: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    fail_root: int = 0  # answer 503 to this many GET / first


class Handler(BaseHTTPRequestHandler):
    state: OllamaState

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.state.requests.append(f"GET {self.path}")
        if self.path == "/":
            if self.state.fail_root > 0:
                self.state.fail_root -= 1
                self._send(503, b"starting", "text/plain")
                return
            self._send(200, b"Ollama is running", "text/plain")
        elif self.path == "/api/tags":
            models = [{"name": m, "model": m, "size": 1} for m in self.state.models]
            self._send(200, json.dumps({"models": models}).encode())
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        self.state.requests.append(f"POST {self.path} {request.get('model')}")
        if self.path != "/api/pull":
            self._send(404, b"{}")
            return
        name = str(request["model"])
        full = name if ":" in name else f"{name}:latest"
        lines: list[dict[str, object]]
        if name not in self.state.pullable:
            lines = [{"status": "pulling manifest"}, {"error": f"pull model manifest: {name}"}]
        else:
            lines = [
                {"status": "pulling manifest"},
                {"status": "pulling abc", "total": 100, "completed": 50},
                {"status": "pulling abc", "total": 100, "completed": 100},
                {"status": "verifying sha256 digest"},
                {"status": "success"},
            ]
            self.state.models.append(full)
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        self._send(200, body, "application/x-ndjson")


@contextmanager
def fake_ollama(state: OllamaState) -> Iterator[str]:
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
