"""Ollama's request shapes: bytes in, typed requests or Ollama-style errors out (pure).

Ollama is a Go server (gin): a body that is empty answers 400 "missing request
body"; a JSON value of the wrong type answers 400 with Go's unmarshal message
("json: cannot unmarshal number into Go struct field EmbedRequest.model of type
string"); a bad ``input`` answers 400 "invalid input type". We keep those
statuses and messages so that clients written against Ollama see no difference.
Unknown fields are ignored, as Go's decoder does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from codebase_mcp.embedder.catalog import canonical_name


class OllamaError(Exception):
    """An HTTP error answered as Ollama does: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.message}


# Messages Ollama uses, verbatim (server/routes.go, server/sched.go).
MISSING_BODY = "missing request body"
INVALID_INPUT = "invalid input type"
MODEL_REQUIRED = "model is required"
INVALID_MODEL_NAME = "invalid model name"
CONTEXT_EXCEEDED = "the input length exceeds the context length"
SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"


def model_not_found(name: str) -> OllamaError:
    """What /api/embed and /api/embeddings answer for a model that is not there."""
    return OllamaError(404, f"model {json.dumps(name)} not found, try pulling it first")


def show_not_found(name: str) -> OllamaError:
    """What /api/show answers for a model that is not there."""
    return OllamaError(404, f"model '{name}' not found")


def pull_not_available(name: str) -> str:
    """The error a pull of anything but the served model ends with (offline: no registry)."""
    return (
        f"pull model manifest: file does not exist: this embedder is offline and serves only "
        f"all-minilm (all-minilm:latest, all-minilm:l6-v2), not {name!r}; "
        "run the upstream Ollama image (--embedder ollama) for other models"
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _unmarshal_error(value: Any, struct: str, field: str, go_type: str) -> OllamaError:
    return OllamaError(
        400,
        f"json: cannot unmarshal {_json_type(value)} into Go struct field "
        f"{struct}.{field} of type {go_type}",
    )


def decode_object(raw: bytes, struct: str) -> dict[str, Any]:
    """Parse a request body into a JSON object, or raise the error Ollama would answer."""
    if not raw.strip():
        raise OllamaError(400, MISSING_BODY)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OllamaError(
            400, f"invalid request body: not UTF-8 (byte {exc.start}): send JSON encoded as UTF-8"
        ) from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OllamaError(400, f"invalid JSON in request body: {exc}") from exc
    if not isinstance(value, dict):
        raise OllamaError(
            400, f"json: cannot unmarshal {_json_type(value)} into Go value of type api.{struct}"
        )
    return value


def _string(obj: dict[str, Any], field: str, struct: str) -> str:
    value = obj.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _unmarshal_error(value, struct, field, "string")
    return value


def _optional_bool(obj: dict[str, Any], field: str, struct: str) -> bool | None:
    value = obj.get(field)
    if value is None or isinstance(value, bool):
        return value
    raise _unmarshal_error(value, struct, field, "bool")


def _check_common(obj: dict[str, Any], struct: str) -> None:
    """Fields we ignore but whose types Go would still check."""
    options = obj.get("options")
    if options is not None and not isinstance(options, dict):
        raise _unmarshal_error(options, struct, "options", "map[string]interface {}")
    keep_alive = obj.get("keep_alive")
    if keep_alive is not None and (
        isinstance(keep_alive, bool) or not isinstance(keep_alive, str | int | float)
    ):
        raise OllamaError(400, "json: unsupported type for keep_alive")


@dataclass(frozen=True)
class EmbedRequest:
    """``POST /api/embed``."""

    model: str
    inputs: list[str]
    truncate: bool


def parse_embed(raw: bytes) -> EmbedRequest:
    obj = decode_object(raw, "EmbedRequest")
    model = _string(obj, "model", "EmbedRequest")
    truncate = _optional_bool(obj, "truncate", "EmbedRequest")
    _check_common(obj, "EmbedRequest")
    value = obj.get("input")
    inputs: list[str]
    if value is None:
        inputs = []
    elif isinstance(value, str):
        # Ollama drops an empty string: {"input": ""} loads the model, embeds nothing.
        inputs = [value] if value else []
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        inputs = list(value)
    else:
        raise OllamaError(400, INVALID_INPUT)
    return EmbedRequest(model=model, inputs=inputs, truncate=truncate is not False)


@dataclass(frozen=True)
class EmbeddingsRequest:
    """The legacy ``POST /api/embeddings``."""

    model: str
    prompt: str


def parse_embeddings(raw: bytes) -> EmbeddingsRequest:
    obj = decode_object(raw, "EmbeddingRequest")
    model = _string(obj, "model", "EmbeddingRequest")
    prompt = _string(obj, "prompt", "EmbeddingRequest")
    _check_common(obj, "EmbeddingRequest")
    if not model.strip():
        raise OllamaError(400, MODEL_REQUIRED)
    return EmbeddingsRequest(model=model, prompt=prompt)


@dataclass(frozen=True)
class ModelRequest:
    """``POST /api/show`` and ``POST /api/pull``: ``model`` (or the older ``name``)."""

    model: str
    stream: bool


def parse_model_request(raw: bytes, struct: str) -> ModelRequest:
    obj = decode_object(raw, struct)
    model = _string(obj, "model", struct) or _string(obj, "name", struct)
    stream = _optional_bool(obj, "stream", struct)
    return ModelRequest(model=model, stream=stream is not False)


def resolve_model(name: str) -> str:
    """The canonical served name for an embed request's model, or Ollama's error."""
    if not name.strip():
        raise OllamaError(400, MODEL_REQUIRED)
    canonical = canonical_name(name)
    if canonical is None:
        raise model_not_found(name)
    return canonical
