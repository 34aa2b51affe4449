"""The Starlette application: a faithful subset of Ollama's HTTP API over the numpy encoder.

Endpoints: ``GET|HEAD /``, ``GET|HEAD /api/version``, ``GET|HEAD /api/tags``,
``GET /api/ps``, ``POST /api/show``, ``POST /api/embed``, ``POST /api/embeddings``
(legacy), ``POST /api/pull``. Anything else, including a known path with the
wrong method, answers like Ollama's gin router: 404 ``404 page not found`` in
text/plain.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from codebase_mcp.embedder.batcher import (
    DEFAULT_INDEX_MAX_PAUSE,
    DEFAULT_INDEX_NICE,
    DEFAULT_INDEX_SLICE_TOKENS,
    PURPOSE_HEADER,
    MicroBatcher,
    purpose_of,
)
from codebase_mcp.embedder.bert import l2_normalise
from codebase_mcp.embedder.catalog import MODEL_BASE, ServedModel, canonical_name
from codebase_mcp.embedder.config import OLLAMA_COMPAT_VERSION
from codebase_mcp.embedder.encoder import SentenceEncoder, Tokenized
from codebase_mcp.embedder.protocol import (
    CONTEXT_EXCEEDED,
    INVALID_MODEL_NAME,
    MODEL_REQUIRED,
    OllamaError,
    parse_embed,
    parse_embeddings,
    parse_model_request,
    pull_not_available,
    resolve_model,
    show_not_found,
)

T = TypeVar("T")
NOT_FOUND_TEXT = "404 page not found"
INLINE_TOKENIZE_CHARS = 2048


class GoJSONResponse(Response):
    """JSON as gin's c.JSON writes it: compact, ``application/json; charset=utf-8``."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def served_model_for(encoder: SentenceEncoder) -> ServedModel:
    files = encoder.files
    stat = files.weights_path.stat()
    return ServedModel.from_mtime(
        stat.st_mtime,
        digest=files.weights_digest(),
        size=stat.st_size,
        parameter_count=encoder.weights.parameter_count,
        dimension=files.dimension,
        context_length=files.max_seq_length,
        layers=files.bert.num_hidden_layers,
        heads=files.bert.num_attention_heads,
        feed_forward=files.bert.intermediate_size,
        layer_norm_eps=files.bert.layer_norm_eps,
        vocab_size=files.bert.vocab_size,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before buffering them."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise OllamaError(413, f"request body too large: {declared} bytes, limit {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OllamaError(413, f"request body too large: over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class EmbedderService:
    """State shared by the handlers: the encoder, the batcher, the tokenizer threads."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        *,
        max_pending: int = 512,
        max_body_bytes: int = 32 * 1024 * 1024,
        served: ServedModel | None = None,
        index_slice_tokens: int = DEFAULT_INDEX_SLICE_TOKENS,
        index_max_pause: float = DEFAULT_INDEX_MAX_PAUSE,
        index_nice: int = DEFAULT_INDEX_NICE,
        query_threads: int = 1,
    ) -> None:
        self.encoder = encoder
        self.served = served or served_model_for(encoder)
        self.max_body_bytes = max_body_bytes
        self.batcher = MicroBatcher(
            self._run_batch,
            max_batch=encoder.max_batch,
            max_pending=max_pending,
            index_slice_tokens=max(index_slice_tokens, encoder.max_seq_length),
            index_max_pause=index_max_pause,
            index_nice=index_nice,
            query_threads=query_threads,
        )
        self._tokenize_pool: ThreadPoolExecutor | None = None

    def _run_batch(self, sequences: Sequence[Sequence[int]]) -> Any:
        return self.encoder.embed_ids(sequences, normalise=False)

    async def start(self) -> None:
        # Tokenising is CPU work too (a 1 MB input takes a while): off the event
        # loop, in a small pool so a flood of large bodies cannot take every core.
        self._tokenize_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embedder-tok")
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        if self._tokenize_pool is not None:
            self._tokenize_pool.shutdown(wait=True, cancel_futures=True)

    async def tokenize(self, texts: list[str]) -> list[Tokenized]:
        if sum(len(t) for t in texts) <= INLINE_TOKENIZE_CHARS:
            # A search query: tokenising takes microseconds, less than the hop to a
            # thread and back, which costs most when the cores are busy.
            return self.encoder.tokenize(texts)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._tokenize_pool, self.encoder.tokenize, texts)

    # --- handlers ------------------------------------------------------------
    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        return GoJSONResponse({"version": OLLAMA_COMPAT_VERSION})

    async def tags(self, request: Request) -> Response:
        return GoJSONResponse(self.served.tags())

    async def ps(self, request: Request) -> Response:
        return GoJSONResponse(self.served.running(f"{MODEL_BASE}:latest"))

    async def show(self, request: Request) -> Response:
        req = parse_model_request(await read_body(request, self.max_body_bytes), "ShowRequest")
        if not req.model.strip():
            raise OllamaError(400, MODEL_REQUIRED)
        if canonical_name(req.model) is None:
            raise show_not_found(req.model)
        return GoJSONResponse(self.served.show())

    async def embed(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        req = parse_embed(await read_body(request, self.max_body_bytes))
        resolve_model(req.model)
        loaded = time.perf_counter_ns()
        if not req.inputs:
            return GoJSONResponse({"model": req.model, "embeddings": []})
        tokenized = await self.tokenize(req.inputs)
        if not req.truncate and any(t.truncated for t in tokenized):
            raise OllamaError(400, CONTEXT_EXCEEDED)
        purpose = purpose_of(request.headers.get(PURPOSE_HEADER))
        pooled = await self.batcher.embed([t.ids for t in tokenized], purpose)
        vectors = l2_normalise(pooled)
        return GoJSONResponse(
            {
                "model": req.model,
                "embeddings": vectors.tolist(),
                "total_duration": time.perf_counter_ns() - started,
                "load_duration": max(1, loaded - started),
                "prompt_eval_count": sum(len(t.ids) for t in tokenized),
            }
        )

    async def embeddings(self, request: Request) -> Response:
        """Legacy endpoint: like Ollama, one prompt, the vector NOT normalised."""
        req = parse_embeddings(await read_body(request, self.max_body_bytes))
        resolve_model(req.model)
        if not req.prompt:
            return GoJSONResponse({"embedding": []})
        tokenized = await self.tokenize([req.prompt])
        purpose = purpose_of(request.headers.get(PURPOSE_HEADER))
        pooled = await self.batcher.embed([tokenized[0].ids], purpose)
        return GoJSONResponse({"embedding": pooled[0].tolist()})

    async def pull(self, request: Request) -> Response:
        req = parse_model_request(await read_body(request, self.max_body_bytes), "PullRequest")
        if not req.model.strip():
            raise OllamaError(400, INVALID_MODEL_NAME)
        known = canonical_name(req.model) is not None
        if not req.stream:
            if not known:
                raise OllamaError(500, pull_not_available(req.model))
            return GoJSONResponse({"status": "success"})
        return StreamingResponse(
            _ndjson(self._pull_progress(req.model, known)), media_type="application/x-ndjson"
        )

    def _pull_progress(self, name: str, known: bool) -> list[dict[str, Any]]:
        """The statuses Ollama streams for a pull; the model is already here, so instantly."""
        if not known:
            return [{"status": "pulling manifest"}, {"error": pull_not_available(name)}]
        digest = f"sha256:{self.served.digest}"
        return [
            {"status": "pulling manifest"},
            {
                "status": f"pulling {self.served.digest[:12]}",
                "digest": digest,
                "total": self.served.size,
                "completed": self.served.size,
            },
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]


async def _ndjson(lines: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for line in lines:
        yield json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n"


def _guard(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Turn OllamaError into its JSON answer."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except OllamaError as exc:
            return GoJSONResponse(exc.body(), status_code=exc.status)

    return guarded


async def _not_found(request: Request, exc: Exception) -> Response:
    # gin answers unknown paths AND known paths with the wrong method this way.
    return PlainTextResponse(NOT_FOUND_TEXT, status_code=404)


def create_app(service: EmbedderService) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes = [
        Route("/", _guard(service.root), methods=["GET", "HEAD"]),
        Route("/api/version", _guard(service.version), methods=["GET", "HEAD"]),
        Route("/api/tags", _guard(service.tags), methods=["GET", "HEAD"]),
        Route("/api/ps", _guard(service.ps), methods=["GET"]),
        Route("/api/show", _guard(service.show), methods=["POST"]),
        Route("/api/embed", _guard(service.embed), methods=["POST"]),
        Route("/api/embeddings", _guard(service.embeddings), methods=["POST"]),
        Route("/api/pull", _guard(service.pull), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found, HTTPException: _http_error},
    )
    app.state.service = service
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return await _not_found(request, exc)
    return GoJSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
