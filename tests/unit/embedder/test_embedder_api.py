"""API conformance: each endpoint's status codes and JSON shapes against Ollama's documented API.

The DOC_* constants are the examples from Ollama's docs/api.md (ollama/ollama,
"Generate Embeddings", "List Local Models", "Show Model Information", "Pull a
Model", "Generate Embedding") and the statuses/messages of server/routes.go.
Ollama's own all-minilm is an F16 GGUF; we run the F32 weights, so documented
vector values are compared with a tolerance, shapes and keys exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from codebase_mcp.embedder.app import EmbedderService, create_app
from codebase_mcp.embedder.encoder import SentenceEncoder

# POST /api/embed {"model": "all-minilm", "input": "Why is the sky blue?"}
DOC_EMBED_SINGLE_RESPONSE: dict[str, Any] = {
    "model": "all-minilm",
    "embeddings": [
        [
            0.010071029, -0.0017594862, 0.05007221, 0.04692972, 0.054916814,
            0.008599704, 0.105441414, -0.025878139, 0.12958129, 0.031952348,
        ]
    ],
    "total_duration": 14143917,
    "load_duration": 1019500,
    "prompt_eval_count": 8,
}  # fmt: skip
# POST /api/embed {"model": "all-minilm",
#                  "input": ["Why is the sky blue?", "Why is the grass green?"]}
DOC_EMBED_MULTI_SECOND = [
    -0.0098027075, 0.06042469, 0.025257962, -0.006364387, 0.07272725,
    0.017194884, 0.09032035, -0.051705178, 0.09951512, 0.09072481,
]  # fmt: skip
# GET /api/tags (one entry of the documented list)
DOC_TAGS_ENTRY: dict[str, Any] = {
    "name": "llama3:latest",
    "modified_at": "2023-12-07T09:32:18.757212583-08:00",
    "size": 3825819519,
    "digest": "fe938a131f40e6f6d40083c9f0f430a515233eb2edaa6d72eb85c50d64f2300e",
    "details": {
        "format": "gguf",
        "family": "llama",
        "families": None,
        "parameter_size": "7B",
        "quantization_level": "Q4_0",
    },
}
# POST /api/show: top-level keys of the documented response
DOC_SHOW_KEYS = {"modelfile", "parameters", "template", "details", "model_info"}
DOC_SHOW_DETAILS_KEYS = {
    "parent_model", "format", "family", "families", "parameter_size", "quantization_level",
}  # fmt: skip
# POST /api/pull, streamed: first and last objects; stream=false: one object
DOC_PULL_FIRST = {"status": "pulling manifest"}
DOC_PULL_LAST = {"status": "success"}
DOC_PULL_NOSTREAM = {"status": "success"}


@pytest.fixture(scope="module")
def client(encoder: SentenceEncoder) -> Iterator[TestClient]:
    service = EmbedderService(encoder, max_body_bytes=4 * 1024 * 1024)
    with TestClient(create_app(service)) as test_client:
        yield test_client


def _post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body).encode())


# --- GET / HEAD ------------------------------------------------------------------
def test_root_says_ollama_is_running(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Ollama is running"
    assert response.headers["content-type"].startswith("text/plain")
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""


def test_version(client: TestClient) -> None:
    response = client.get("/api/version")
    assert response.status_code == 200
    version = response.json()["version"]
    assert [int(part) for part in version.split(".")] >= [0, 3, 0]  # /api/embed exists since 0.3


def test_tags_have_documented_shape(client: TestClient) -> None:
    response = client.get("/api/tags")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    models = response.json()["models"]
    assert [m["name"] for m in models] == ["all-minilm:latest", "all-minilm:l6-v2"]
    for entry in models:
        assert set(DOC_TAGS_ENTRY) <= set(entry)
        assert set(DOC_TAGS_ENTRY["details"]) <= set(entry["details"])
        assert entry["model"] == entry["name"]
        assert len(entry["digest"]) == 64
        assert int(entry["digest"], 16) >= 0
        assert entry["size"] > 80_000_000
        assert entry["details"]["family"] == "bert"


def test_ps_lists_the_loaded_model(client: TestClient) -> None:
    models = client.get("/api/ps").json()["models"]
    assert models[0]["name"] == "all-minilm:latest"
    assert "expires_at" in models[0]


# --- /api/show ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["all-minilm", "all-minilm:latest", "all-minilm:l6-v2", "ALL-MiniLM"]
)
def test_show_known_names(client: TestClient, name: str) -> None:
    response = _post(client, "/api/show", {"model": name})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= DOC_SHOW_KEYS
    assert set(body["details"]) == DOC_SHOW_DETAILS_KEYS
    assert body["model_info"]["bert.embedding_length"] == 384
    assert body["model_info"]["bert.context_length"] == 256
    assert body["capabilities"] == ["embedding"]


def test_show_accepts_legacy_name_field(client: TestClient) -> None:
    assert _post(client, "/api/show", {"name": "all-minilm"}).status_code == 200


def test_show_unknown_and_missing(client: TestClient) -> None:
    response = _post(client, "/api/show", {"model": "llama3"})
    assert (response.status_code, response.json()) == (404, {"error": "model 'llama3' not found"})
    response = _post(client, "/api/show", {})
    assert (response.status_code, response.json()) == (400, {"error": "model is required"})


# --- /api/embed -----------------------------------------------------------------------
def test_embed_single_matches_documented_example(client: TestClient) -> None:
    response = _post(client, "/api/embed", {"model": "all-minilm", "input": "Why is the sky blue?"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(DOC_EMBED_SINGLE_RESPONSE)
    assert body["model"] == "all-minilm"
    assert body["prompt_eval_count"] == DOC_EMBED_SINGLE_RESPONSE["prompt_eval_count"]
    assert isinstance(body["total_duration"], int)
    assert body["total_duration"] > 0
    assert 0 < body["load_duration"] <= body["total_duration"]
    (vector,) = body["embeddings"]
    assert len(vector) == 384
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    documented = DOC_EMBED_SINGLE_RESPONSE["embeddings"][0]
    np.testing.assert_allclose(vector[: len(documented)], documented, atol=2e-3)


def test_embed_list_keeps_order_and_matches_documented_example(client: TestClient) -> None:
    inputs = ["Why is the sky blue?", "Why is the grass green?"]
    body = _post(client, "/api/embed", {"model": "all-minilm:latest", "input": inputs}).json()
    assert body["model"] == "all-minilm:latest"
    first, second = body["embeddings"]
    np.testing.assert_allclose(first[:10], DOC_EMBED_SINGLE_RESPONSE["embeddings"][0], atol=2e-3)
    np.testing.assert_allclose(second[:10], DOC_EMBED_MULTI_SECOND, atol=2e-3)
    assert body["prompt_eval_count"] == 16


def test_embed_unknown_model_is_404_like_ollama(client: TestClient) -> None:
    response = _post(client, "/api/embed", {"model": "nomic-embed-text", "input": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": 'model "nomic-embed-text" not found, try pulling it first'}


def test_embed_without_model_is_400(client: TestClient) -> None:
    response = _post(client, "/api/embed", {"input": "x"})
    assert (response.status_code, response.json()) == (400, {"error": "model is required"})


@pytest.mark.parametrize("empty", [[], "", None])
def test_embed_empty_input_returns_no_embeddings(client: TestClient, empty: Any) -> None:
    body: dict[str, Any] = {"model": "all-minilm"}
    if empty is not None:
        body["input"] = empty
    response = _post(client, "/api/embed", body)
    assert response.status_code == 200
    assert response.json() == {"model": "all-minilm", "embeddings": []}


def test_embed_truncate_false_refuses_long_input(client: TestClient) -> None:
    long_text = "token " * 1000
    response = _post(
        client, "/api/embed", {"model": "all-minilm", "input": long_text, "truncate": False}
    )
    assert response.status_code == 400
    assert "input length exceeds the context length" in response.json()["error"]
    ok = _post(client, "/api/embed", {"model": "all-minilm", "input": "short", "truncate": False})
    assert ok.status_code == 200


def test_embed_truncates_by_default(client: TestClient, encoder: SentenceEncoder) -> None:
    long_text = "vector search " * 500
    body = _post(client, "/api/embed", {"model": "all-minilm", "input": [long_text]}).json()
    assert body["prompt_eval_count"] == 256
    head = encoder.embed([" ".join(long_text.split()[:254])])[0]  # the same first 254 tokens
    assert float(np.dot(body["embeddings"][0], head)) > 0.9999


# --- /api/embeddings (legacy) -----------------------------------------------------------
def test_legacy_embeddings(client: TestClient) -> None:
    response = _post(
        client,
        "/api/embeddings",
        {"model": "all-minilm", "prompt": "Here is an article about llamas..."},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"embedding"}
    legacy = np.asarray(body["embedding"])
    assert legacy.shape == (384,)
    # Ollama normalises only in /api/embed; the legacy vector keeps its length.
    assert abs(float(np.linalg.norm(legacy)) - 1.0) > 1e-3
    modern = _post(
        client, "/api/embed", {"model": "all-minilm", "input": "Here is an article about llamas..."}
    ).json()["embeddings"][0]
    assert float(np.dot(legacy / np.linalg.norm(legacy), modern)) > 0.99999


def test_legacy_embeddings_empty_prompt_and_errors(client: TestClient) -> None:
    assert _post(client, "/api/embeddings", {"model": "all-minilm"}).json() == {"embedding": []}
    missing = _post(client, "/api/embeddings", {"prompt": "x"})
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
    unknown = _post(client, "/api/embeddings", {"model": "bge-m3", "prompt": "x"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": 'model "bge-m3" not found, try pulling it first'}


# --- /api/pull -----------------------------------------------------------------------------
def test_pull_known_model_streams_success(client: TestClient) -> None:
    response = _post(client, "/api/pull", {"model": "all-minilm"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0] == DOC_PULL_FIRST
    assert lines[-1] == DOC_PULL_LAST
    assert all("error" not in line for line in lines)
    nostream = _post(client, "/api/pull", {"model": "all-minilm:l6-v2", "stream": False})
    assert (nostream.status_code, nostream.json()) == (200, DOC_PULL_NOSTREAM)


def test_pull_unknown_model_fails_like_ollama(client: TestClient) -> None:
    streamed = _post(client, "/api/pull", {"model": "llama3.2"})
    assert streamed.status_code == 200  # Ollama streams the error as the last object
    last = json.loads(streamed.text.splitlines()[-1])
    assert last["error"].startswith("pull model manifest: file does not exist")
    assert "offline" in last["error"]
    single = _post(client, "/api/pull", {"model": "llama3.2", "stream": False})
    assert single.status_code == 500
    assert single.json()["error"] == last["error"]
    nameless = _post(client, "/api/pull", {})
    assert (nameless.status_code, nameless.json()) == (400, {"error": "invalid model name"})


# --- routing like gin ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/generate"),
        ("POST", "/api/chat"),
        ("GET", "/api/embed"),
        ("DELETE", "/"),
        ("GET", "/nope"),
    ],
)
def test_unknown_endpoints_answer_plain_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.text == "404 page not found"
    assert response.headers["content-type"].startswith("text/plain")
