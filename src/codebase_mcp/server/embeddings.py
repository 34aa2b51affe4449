"""The Ollama-API embedding client: ``POST /api/embed`` in batches.

- Documents and queries get the model's prefixes where the model needs them
  (nomic-embed-text was trained with ``search_document:``/``search_query:``).
- A 400 (input longer than the context) splits the batch in halves and
  retries; a single input that still fails is cut in half until it fits.
- Vectors are L2-normalised here too, so inner product orders like cosine.
- Queries are marked (``X-Embed-Purpose: query``): the project's embedder runs
  them in a lane of their own, ahead of indexing batches (docs/embedder.md).
- Several endpoints (``CODEBASE_MCP_EMBEDDER_URLS``): index batches of one call
  run concurrently, one per healthy endpoint; every request goes to the least
  loaded healthy endpoint and, when that one fails, again to another one. A
  batch's vectors come from exactly one answer, so none is lost or doubled
  (:mod:`codebase_mcp.server.embedpool` holds the health and identity logic).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from codebase_mcp.errors import EmbedderError
from codebase_mcp.server.embedpool import (
    DEFAULT_BACKOFF_MAX,
    Endpoint,
    EndpointPool,
    choose,
    unavailable_error,
)

if TYPE_CHECKING:
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.settings import EmbedderSettings

T = TypeVar("T")
# The header the project's embedder reads to put a request in its query lane;
# Ollama ignores it. Mirrors codebase_mcp.embedder.batcher.PURPOSE_HEADER (the
# server does not import the embedder package, which needs numpy).
PURPOSE_HEADER = "X-Embed-Purpose"

# model base name -> (document prefix, query prefix)
MODEL_PREFIXES: dict[str, tuple[str, str]] = {
    "nomic-embed-text": ("search_document: ", "search_query: "),
    "mxbai-embed-large": ("", "Represent this sentence for searching relevant passages: "),
    "snowflake-arctic-embed": ("", "Represent this sentence for searching relevant passages: "),
}


def base_model(model: str) -> str:
    name = model.rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def prefixes_for(model: str) -> tuple[str, str]:
    return MODEL_PREFIXES.get(base_model(model), ("", ""))


def normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else list(vector)


class Embedder(Protocol):
    model: str

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...


class OllamaEmbedder:
    """Talks to Ollama (or the project's embedder: the same API), at one URL or several."""

    def __init__(
        self,
        url: str | Sequence[str],
        model: str,
        *,
        batch_size: int = 64,
        timeout: float = 120.0,
        client: httpx.AsyncClient | None = None,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("OllamaEmbedder needs at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.url = self.urls[0]
        self.model = model
        self.batch_size = batch_size
        self.document_prefix, self.query_prefix = prefixes_for(model)
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        self.pool = EndpointPool(self.urls, model, self._client, backoff_max=backoff_max)

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        prefixed = [self.document_prefix + t for t in texts]
        batches = [
            prefixed[start : start + self.batch_size]
            for start in range(0, len(prefixed), self.batch_size)
        ]
        healthy = sum(1 for e in self.pool.endpoints if e.healthy)
        lanes = min(len(batches), max(1, healthy))
        if lanes <= 1:
            vectors: list[list[float]] = []
            for batch in batches:
                vectors.extend(await self._embed_splitting(batch, "index"))
            return vectors
        results = await _map_concurrently(
            [functools.partial(self._embed_splitting, batch, "index") for batch in batches], lanes
        )
        return [vector for result in results for vector in result]

    async def embed_query(self, text: str) -> list[float]:
        (vector,) = await self._embed_splitting([self.query_prefix + text], "query")
        return vector

    async def _embed_splitting(self, texts: list[str], purpose: str) -> list[list[float]]:
        try:
            return await self._post(texts, purpose)
        except _TooLong:
            if len(texts) > 1:
                half = len(texts) // 2
                return [
                    *(await self._embed_splitting(texts[:half], purpose)),
                    *(await self._embed_splitting(texts[half:], purpose)),
                ]
            text = texts[0]
            if len(text) < 64:
                raise EmbedderError(
                    f"the embedder refuses even {len(text)} characters of input",
                    hint="check EMBEDDER_MODEL: the model's context looks unusable",
                ) from None
            return await self._embed_splitting([text[: len(text) // 2]], purpose)

    async def _post(self, texts: list[str], purpose: str) -> list[list[float]]:
        """One batch, answered by one endpoint: fail over until one answers or none is up."""
        pool = self.pool
        await pool.ensure_verified()
        rounds = len(pool.endpoints) + 2  # one endpoint: three tries, as before
        busy: set[str] = set()
        last_busy: str | None = None
        for attempt in range(rounds):
            pool.probe_due_in_background()
            endpoint = choose(pool.endpoints, frozenset(busy)) or choose(pool.endpoints)
            if endpoint is None:
                await pool.probe_all()  # none healthy: look at every one now, backoff or not
                endpoint = choose(pool.endpoints)
            if endpoint is None:
                if attempt < rounds - 1:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                break
            try:
                return await self._post_to(endpoint, texts, purpose)
            except _Busy as exc:
                last_busy = f"{endpoint.url} answered HTTP 503: {exc}"
                busy.add(endpoint.url)
                if len(busy) >= len(pool.endpoints):
                    busy.clear()
                    await asyncio.sleep(0.5 * (attempt + 1))
            except _Down as exc:
                last_busy = None
                pool.mark_down(endpoint, exc.reason)
            except _Missing as exc:
                others = [e for e in pool.endpoints if e.healthy and e is not endpoint]
                if not others:
                    raise exc.error from None
                pool.mark_missing(endpoint, exc.error.message)
        if last_busy is not None and any(e.healthy for e in pool.endpoints):
            raise EmbedderError(
                f"the embedder is too busy: {last_busy[:300]}",
                hint="too many requests at once: raise EMBEDDER_MAX_PENDING on the embedder, "
                "or add embedders (CODEBASE_MCP_EMBEDDER_URLS)",
            )
        raise unavailable_error(pool.endpoints)

    async def _post_to(
        self, endpoint: Endpoint, texts: list[str], purpose: str
    ) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "truncate": True}
        headers = {PURPOSE_HEADER: purpose}
        endpoint.in_flight += 1
        endpoint.in_flight_inputs += len(texts)
        try:
            response = await self._client.post(
                f"{endpoint.url}/api/embed", json=body, headers=headers
            )
        except httpx.HTTPError as exc:  # refused, reset mid-answer, timed out
            raise _Down(_describe(exc)) from exc
        finally:
            endpoint.in_flight -= 1
            endpoint.in_flight_inputs -= len(texts)
        if response.status_code == 400:
            raise _TooLong(response.text)
        if response.status_code == 503:
            raise _Busy(response.text)
        if response.status_code >= 500:
            raise _Down(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code == 404:
            raise _Missing(
                EmbedderError(
                    f"the embedder at {endpoint.url} does not serve model {self.model!r}: "
                    f"{response.text[:200]}",
                    hint=f"pull the model (ollama pull {self.model}) or fix EMBEDDER_MODEL",
                )
            )
        if response.status_code != 200:
            raise EmbedderError(
                f"the embedder at {endpoint.url} answered HTTP {response.status_code}: "
                f"{response.text[:200]}",
                hint="see the embedder's log",
            )
        try:
            embeddings = response.json().get("embeddings")
        except ValueError as exc:
            raise _Down(f"unreadable answer: {exc}") from exc
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            raise EmbedderError(
                f"the embedder returned {len(embeddings or [])} vectors for {len(texts)} inputs",
                hint="the embedder does not speak Ollama's /api/embed API",
            )
        endpoint.answered += 1
        return [normalise(v) for v in embeddings]

    async def probe(self) -> dict[str, Any]:
        """Health: are the embedders up, and do they serve our model? (no inference)"""
        await self.pool.probe_all()
        return self.pool.report()

    async def identity(self, *, fresh: bool = False) -> str | None:
        """The digest of the model's weights as the endpoints report it (None: not reported).

        ``fresh``: with one endpoint (nothing to compare, so no probe keeps the
        digest current), ask it again: its weights may have been replaced since
        (the embedding cache keys vectors by this digest, once per job)."""
        if fresh and not self.pool.verify_identity:
            await self.pool.probe_all()
            self.pool.digest = self.pool.endpoints[0].digest
        if self.pool.digest is None:
            if self.pool.verify_identity:
                await self.pool.ensure_verified()
            else:
                await self.pool.probe_all()
                self.pool.digest = self.pool.endpoints[0].digest
        return self.pool.digest


def embedder_urls(server: ServerSettings, embedder: EmbedderSettings) -> list[str]:
    """CODEBASE_MCP_EMBEDDER_URLS when set, else EMBEDDER_URL (pure)."""
    from codebase_mcp.server.config import parse_embedder_urls

    return parse_embedder_urls(server.embedder_urls) or [embedder.url]


def embedder_from_settings(server: ServerSettings, embedder: EmbedderSettings) -> OllamaEmbedder:
    return OllamaEmbedder(
        embedder_urls(server, embedder),
        embedder.model,
        batch_size=server.embed_batch_size,
        timeout=max(server.embed_timeout, embedder.timeout),
        backoff_max=server.embedder_backoff_max,
    )


async def _map_concurrently(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``calls``, ``limit`` at a time; results in order; the first error cancels the rest."""
    results: dict[int, T] = {}
    indices = iter(range(len(calls)))

    async def lane() -> None:
        for index in indices:  # one shared iterator: each call is taken exactly once
            results[index] = await calls[index]()

    tasks = [asyncio.create_task(lane()) for _ in range(limit)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [results[index] for index in range(len(calls))]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _TooLong(Exception):
    pass


class _Busy(Exception):
    pass


class _Missing(Exception):
    def __init__(self, error: EmbedderError) -> None:
        super().__init__(error.message)
        self.error = error


class _Down(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
