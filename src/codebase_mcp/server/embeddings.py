"""The Ollama-API embedding client: ``POST /api/embed`` in batches.

- Documents and queries get the model's prefixes where the model needs them
  (nomic-embed-text was trained with ``search_document:``/``search_query:``).
- A 400 (input longer than the context) splits the batch in halves and
  retries; a single input that still fails is cut in half until it fits.
- Vectors are L2-normalised here too, so inner product orders like cosine.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Protocol

import httpx

from codebase_mcp.errors import EmbedderError

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
    """Talks to Ollama (or the project's embedder, which speaks the same API)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        batch_size: int = 64,
        timeout: float = 120.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.batch_size = batch_size
        self.document_prefix, self.query_prefix = prefixes_for(model)
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        prefixed = [self.document_prefix + t for t in texts]
        vectors: list[list[float]] = []
        for start in range(0, len(prefixed), self.batch_size):
            vectors.extend(await self._embed_splitting(prefixed[start : start + self.batch_size]))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        (vector,) = await self._embed_splitting([self.query_prefix + text])
        return vector

    async def _embed_splitting(self, texts: list[str]) -> list[list[float]]:
        try:
            return await self._post(texts)
        except _TooLong:
            if len(texts) > 1:
                half = len(texts) // 2
                return [
                    *(await self._embed_splitting(texts[:half])),
                    *(await self._embed_splitting(texts[half:])),
                ]
            text = texts[0]
            if len(text) < 64:
                raise EmbedderError(
                    f"the embedder refuses even {len(text)} characters of input",
                    hint="check EMBEDDER_MODEL: the model's context looks unusable",
                ) from None
            return await self._embed_splitting([text[: len(text) // 2]])

    async def _post(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "truncate": True}
        for attempt in range(3):
            try:
                response = await self._client.post(f"{self.url}/api/embed", json=body)
            except httpx.HTTPError as exc:
                if attempt == 2:
                    raise EmbedderError(
                        f"cannot reach the embedder at {self.url}: {exc!r}",
                        hint="check EMBEDDER_URL and that the embedder is running",
                    ) from exc
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if response.status_code == 400:
                raise _TooLong(response.text)
            if response.status_code >= 500 and attempt < 2:
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if response.status_code == 404:
                raise EmbedderError(
                    f"the embedder at {self.url} does not serve model {self.model!r}: "
                    f"{response.text[:200]}",
                    hint=f"pull the model (ollama pull {self.model}) or fix EMBEDDER_MODEL",
                )
            if response.status_code != 200:
                raise EmbedderError(
                    f"the embedder answered HTTP {response.status_code}: {response.text[:200]}",
                    hint="see the embedder's log",
                )
            embeddings = response.json().get("embeddings")
            if not isinstance(embeddings, list) or len(embeddings) != len(texts):
                raise EmbedderError(
                    f"the embedder returned {len(embeddings or [])} vectors for {len(texts)} "
                    "inputs",
                    hint="the embedder does not speak Ollama's /api/embed API",
                )
            return [normalise(v) for v in embeddings]
        raise AssertionError("unreachable")  # pragma: no cover

    async def probe(self) -> dict[str, object]:
        """Health: is the embedder up, and does it know our model? (no inference)"""
        try:
            response = await self._client.get(f"{self.url}/api/tags", timeout=3.0)
            response.raise_for_status()
            names = {m.get("name", "") for m in response.json().get("models", [])}
        except (httpx.HTTPError, ValueError) as exc:
            return {"status": "down", "url": self.url, "model": self.model, "error": repr(exc)}
        known = set(names) | {n.split(":", 1)[0] for n in names}
        if self.model not in known:
            return {
                "status": "model missing",
                "url": self.url,
                "model": self.model,
                "available": sorted(names),
            }
        return {"status": "ok", "url": self.url, "model": self.model}


class _TooLong(Exception):
    pass
