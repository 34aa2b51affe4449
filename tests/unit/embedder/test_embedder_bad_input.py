"""Bad input: empty, huge, non-UTF-8, wrong JSON types, floods of concurrent requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from codebase_mcp.embedder.app import EmbedderService, create_app
from codebase_mcp.embedder.encoder import SentenceEncoder
from codebase_mcp.embedder.protocol import OllamaError, decode_object, parse_embed

BODY_LIMIT = 4 * 1024 * 1024
GO = "json: cannot unmarshal "  # Go's encoding/json, as gin reports it


@pytest.fixture(scope="module")
def client(encoder: SentenceEncoder) -> Iterator[TestClient]:
    service = EmbedderService(encoder, max_body_bytes=BODY_LIMIT)
    with TestClient(create_app(service)) as test_client:
        yield test_client


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_missing_body(client: TestClient) -> None:
    assert _error(client.post("/api/embed")) == (400, "missing request body")


def test_non_utf8_body_is_400(client: TestClient) -> None:
    raw = b'{"model": "all-minilm", "input": "caf\xe9 \xff\xfe"}'
    status, message = _error(client.post("/api/embed", content=raw))
    assert status == 400
    assert "UTF-8" in message


def test_invalid_json_is_400(client: TestClient) -> None:
    status, message = _error(client.post("/api/embed", content=b'{"model": "all-minilm",'))
    assert status == 400
    assert "invalid JSON" in message


WRONG_TYPES: list[tuple[Any, str]] = [
    ([1, 2], GO + "array into Go value of type api.EmbedRequest"),
    (
        {"model": 7, "input": "x"},
        GO + "number into Go struct field EmbedRequest.model of type string",
    ),
    (
        {"model": "all-minilm", "input": "x", "truncate": "yes"},
        GO + "string into Go struct field EmbedRequest.truncate of type bool",
    ),
    ({"model": "all-minilm", "input": 42}, "invalid input type"),
    ({"model": "all-minilm", "input": {"text": "x"}}, "invalid input type"),
    ({"model": "all-minilm", "input": ["ok", 3]}, "invalid input type"),
    ({"model": "all-minilm", "input": [["nested"]]}, "invalid input type"),
    (
        {"model": "all-minilm", "input": "x", "options": []},
        GO + "array into Go struct field EmbedRequest.options of type map[string]interface {}",
    ),
]


@pytest.mark.parametrize(("body", "message"), WRONG_TYPES)
def test_wrong_json_types_are_400_with_go_messages(
    client: TestClient, body: Any, message: str
) -> None:
    assert _error(client.post("/api/embed", content=json.dumps(body).encode())) == (400, message)


def test_wrong_types_on_legacy_and_show(client: TestClient) -> None:
    legacy = client.post("/api/embeddings", content=b'{"model": "all-minilm", "prompt": ["a"]}')
    assert _error(legacy) == (
        400,
        "json: cannot unmarshal array into Go struct field EmbeddingRequest.prompt of type string",
    )
    show = client.post("/api/show", content=b'{"model": true}')
    assert _error(show)[0] == 400


def test_one_megabyte_input_is_truncated_not_refused(client: TestClient) -> None:
    text = ("def handler(request):\n    return respond(request.body)\n" * 20000)[: 1024 * 1024]
    response = client.post("/api/embed", content=json.dumps({"model": "all-minilm", "input": text}))
    assert response.status_code == 200
    body = response.json()
    assert body["prompt_eval_count"] == 256
    assert abs(float(np.linalg.norm(body["embeddings"][0])) - 1.0) < 1e-5


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    payload = json.dumps({"model": "all-minilm", "input": "x" * (BODY_LIMIT + 10)}).encode()
    status, message = _error(client.post("/api/embed", content=payload))
    assert status == 413
    assert "too large" in message


def test_non_string_list_items_rejected_before_any_work() -> None:
    with pytest.raises(OllamaError) as info:
        parse_embed(b'{"model": "all-minilm", "input": ["a", null]}')
    assert info.value.status == 400


def test_decode_object_whitespace_body_counts_as_missing() -> None:
    with pytest.raises(OllamaError, match="missing request body"):
        decode_object(b"  \n", "EmbedRequest")


async def test_hundred_concurrent_requests_all_answered_and_batched(
    encoder: SentenceEncoder,
) -> None:
    service = EmbedderService(encoder)
    app = create_app(service)
    texts = [f"def function_{i}(x):\n    return x * {i}\n" for i in range(100)]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://embedder") as http:
            responses = await asyncio.gather(
                *(http.post("/api/embed", json={"model": "all-minilm", "input": t}) for t in texts)
            )
    assert [r.status_code for r in responses] == [200] * 100
    got = np.array([r.json()["embeddings"][0] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.embed(texts), atol=1e-5)  # each got its own vector
    # Micro-batching merged concurrent requests into fewer forward passes.
    assert service.batcher.batches_run < 100
    assert service.batcher.largest_batch > 1
    assert service.batcher.pending == 0


async def test_queue_full_answers_503(encoder: SentenceEncoder) -> None:
    service = EmbedderService(encoder, max_pending=1)
    app = create_app(service)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://embedder") as http:
            responses = await asyncio.gather(
                *(
                    http.post("/api/embed", json={"model": "all-minilm", "input": "x " * 200})
                    for _ in range(20)
                )
            )
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 200
    assert codes[-1] == 503
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.json() == {
        "error": "server busy, please try again.  maximum pending requests exceeded"
    }
