"""A fake Ollama-API embedder for tests: deterministic hashed bag-of-words vectors.

Texts sharing identifier words get similar vectors, so search over it is
meaningful (a query "parse config" finds ``parse_config``). It counts requests
and inputs so tests can check that unchanged files are not re-embedded, and can
answer 400 for long input (like Ollama past the context length) or slow down.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from codebase_mcp.server.chunker import identifier_words

DIMENSION = 384
MODEL = "all-minilm"


def fake_vector(text: str, dimension: int = DIMENSION) -> list[float]:
    vector = [0.0] * dimension
    for word in identifier_words(text).split():
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimension
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[index] += sign
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    if norm == 1.0 and not any(vector):
        vector[0] = 1.0
    return [x / norm for x in vector]


@dataclass
class FakeEmbedder:
    url: str = ""
    model: str = MODEL
    dimension: int = DIMENSION
    max_input_chars: int | None = None  # answer 400 when any input is longer
    delay: float = 0.0  # seconds per request (to make indexing take a while)
    digest: str | None = None  # reported by /api/tags (the weights' identity), if set
    # Seconds per request of more than one input, without blocking the server:
    # indexing batches are slow while single queries are answered at once.
    batch_delay: float = 0.0
    # Seconds per input, blocking (one request at a time, like a CPU-bound model).
    per_input_delay: float = 0.0
    requests: int = 0
    inputs: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.inputs = []

    async def embed(self, request: Request) -> Response:
        body = await request.json()
        if body.get("model") != self.model:
            return JSONResponse({"error": f"model {body.get('model')!r} not found"}, 404)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if self.max_input_chars is not None and any(len(t) > self.max_input_chars for t in texts):
            return JSONResponse({"error": "input length exceeds the context length"}, 400)
        with self.lock:
            self.requests += 1
            self.inputs.extend(texts)
        if self.delay:
            time.sleep(self.delay)  # blocks this server's loop only, like a busy model
        if self.per_input_delay:
            time.sleep(self.per_input_delay * len(texts))
        if self.batch_delay and len(texts) > 1:
            await asyncio.sleep(self.batch_delay)
        vectors = [fake_vector(t, self.dimension) for t in texts]
        return JSONResponse({"model": self.model, "embeddings": vectors})

    async def tags(self, request: Request) -> Response:
        entry = {"name": f"{self.model}:latest"}
        if self.digest:
            entry["digest"] = f"sha256:{self.digest}"
        return JSONResponse({"models": [entry]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/embed", self.embed, methods=["POST"]),
                Route("/api/tags", self.tags, methods=["GET"]),
            ]
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_fake_embedder(**options: object) -> Iterator[FakeEmbedder]:
    """Serve a FakeEmbedder on a loopback port in a thread (own event loop)."""
    fake = FakeEmbedder(**options)  # type: ignore[arg-type]
    port = free_port()
    fake.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake embedder did not start")
        time.sleep(0.02)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
