"""Is an Ollama-API embedder up and does it have the model? Stdlib only.

Used as the container's exec liveness probe (``codebase-mcp embedder probe``),
so it must start fast: no numpy, no HTTP client library. Works against this
embedder and against a real Ollama alike: it reads ``GET /api/tags``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from codebase_mcp.errors import EmbedderProbeFailed


def normalise_model_name(name: str) -> str:
    """Ollama's display name: lower case, ``:latest`` when no tag, default registry elided."""
    candidate = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "library/"):
        if candidate.startswith(prefix):
            candidate = candidate[len(prefix) :]
            break
    last = candidate.rsplit("/", 1)[-1]
    return candidate if ":" in last else f"{candidate}:latest"


def model_listed(tags: object, model: str) -> bool:
    """Whether ``GET /api/tags``'s answer lists ``model`` (pure)."""
    if not isinstance(tags, dict) or not isinstance(tags.get("models"), list):
        return False
    wanted = normalise_model_name(model)
    for entry in tags["models"]:
        if not isinstance(entry, dict):
            continue
        for key in ("name", "model"):
            value = entry.get(key)
            if isinstance(value, str) and normalise_model_name(value) == wanted:
                return True
    return False


@dataclass(frozen=True)
class ProbeResult:
    url: str
    model: str
    models: list[str]


def probe(url: str, model: str, timeout: float = 5.0) -> ProbeResult:
    """Raise :class:`EmbedderProbeFailed` unless ``url`` answers /api/tags listing ``model``."""
    tags_url = url.rstrip("/") + "/api/tags"
    try:
        with urllib.request.urlopen(tags_url, timeout=timeout) as response:  # noqa: S310 (http URL by design)
            body = response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise EmbedderProbeFailed(
            f"embedder at {url} does not answer: {exc}",
            hint="is `codebase-mcp embedder serve` (or Ollama) running on that address?",
        ) from exc
    try:
        tags = json.loads(body)
    except ValueError as exc:
        raise EmbedderProbeFailed(
            f"{tags_url} answered something that is not JSON",
            hint="is this an Ollama-API server?",
        ) from exc
    names = [
        str(entry.get("name"))
        for entry in (tags.get("models") or [] if isinstance(tags, dict) else [])
        if isinstance(entry, dict)
    ]
    if not model_listed(tags, model):
        raise EmbedderProbeFailed(
            f"embedder at {url} is up but lacks the model {model!r} "
            f"(it has: {', '.join(names) or 'none'})",
            hint=f"pull it (ollama pull {model}) or set EMBEDDER_MODEL to one it has",
        )
    return ProbeResult(url=url, model=model, models=names)
