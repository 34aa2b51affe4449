"""Several embedder endpoints: choice, backoff, failover, model identity, settings.

The endpoints are scripted over ``httpx.MockTransport``: real HTTP requests and
answers, no sockets. Each endpoint's vectors encode the text, so a vector that
went missing, was doubled or came back in the wrong place is visible.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from codebase_mcp.errors import ConfigError, EmbedderError, EmbedderModelMix, EmbedderUnavailable
from codebase_mcp.server.config import ServerSettings, parse_embedder_urls
from codebase_mcp.server.embeddings import OllamaEmbedder, embedder_urls
from codebase_mcp.server.embedpool import (
    Endpoint,
    backoff_delay,
    choose,
    identity_mix,
    model_digest,
)
from codebase_mcp.settings import EmbedderSettings

MODEL = "all-minilm"
DIGEST = "a" * 64


def vector_for(text: str) -> list[float]:
    number = float(text.rsplit(" ", 1)[-1]) if text[-1].isdigit() else 0.0
    return [1.0, number]  # normalised by the client; the ratio keeps the number


def number_of(vector: list[float]) -> int:
    return round(vector[1] / vector[0])


@dataclass
class Script:
    """One scripted endpoint."""

    digest: str | None = DIGEST
    down: bool = False  # refuse connections
    status: int = 200  # of /api/embed
    gate: asyncio.Event | None = None  # hold /api/embed answers until set
    embeds: list[list[str]] = field(default_factory=list)
    purposes: list[str] = field(default_factory=list)
    tags_calls: int = 0


def transport(scripts: dict[str, Script]) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        script = scripts[f"{request.url.scheme}://{request.url.host}"]
        if request.url.path == "/api/tags":
            script.tags_calls += 1
        if script.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/api/tags":
            entry: dict[str, Any] = {"name": f"{MODEL}:latest"}
            if script.digest:
                entry["digest"] = f"sha256:{script.digest}"
            return httpx.Response(200, json={"models": [entry]})
        texts = json.loads(request.content)["input"]
        if script.gate is not None:
            await script.gate.wait()
            if script.down:  # died while answering
                raise httpx.RemoteProtocolError("server disconnected", request=request)
        if script.status != 200:
            return httpx.Response(script.status, json={"error": "scripted"})
        script.embeds.append(texts)
        script.purposes.append(request.headers.get("x-embed-purpose", ""))
        return httpx.Response(200, json={"embeddings": [vector_for(t) for t in texts]})

    return httpx.MockTransport(handler)


def embedder(scripts: dict[str, Script], **options: Any) -> OllamaEmbedder:
    client = httpx.AsyncClient(transport=transport(scripts))
    return OllamaEmbedder(list(scripts), MODEL, client=client, **options)


# --- pure parts ----------------------------------------------------------------
def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, cap=5) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 5.0]


def test_choose_takes_the_least_loaded_healthy_endpoint() -> None:
    a, b, c = Endpoint("http://a"), Endpoint("http://b"), Endpoint("http://c", status="down")
    a.in_flight_inputs, a.in_flight = 64, 1
    assert choose([a, b, c]) is b
    b.in_flight_inputs, b.in_flight = 64, 2
    assert choose([a, b, c]) is a
    a.in_flight_inputs = b.in_flight_inputs = a.in_flight = b.in_flight = 0
    a.answered, b.answered = 3, 2
    assert choose([a, b, c]) is b  # ties: the one that answered less so far
    assert choose([a, b, c], frozenset({"http://b"})) is a
    assert choose([c]) is None


def test_model_digest_reads_ollama_tags() -> None:
    tags = {"models": [{"name": "all-minilm:latest", "digest": "sha256:abc"}]}
    assert model_digest(tags, "all-minilm") == (True, "abc")
    assert model_digest(tags, "all-minilm:latest") == (True, "abc")
    assert model_digest(tags, "all-minilm:l6-v2") == (False, None)
    assert model_digest({"models": [{"name": "all-minilm"}]}, "all-minilm") == (True, None)
    assert model_digest({"error": "x"}, "all-minilm") == (False, None)
    assert model_digest([], "all-minilm") == (False, None)


def test_identity_mix_groups_healthy_endpoints_by_digest() -> None:
    a = Endpoint("http://a", status="ok", digest="1")
    b = Endpoint("http://b", status="ok", digest="2")
    c = Endpoint("http://c", status="down", digest="3")
    assert identity_mix([a, b, c]) == {"1": ["http://a"], "2": ["http://b"]}


def test_embedder_urls_setting() -> None:
    assert parse_embedder_urls("") == []
    assert parse_embedder_urls(" http://e1:11434/ , https://e2 ,") == [
        "http://e1:11434",
        "https://e2",
    ]
    for bad in ("e1:11434", "ftp://e1", "http://"):
        with pytest.raises(ConfigError, match="not an http"):
            parse_embedder_urls(bad)
    with pytest.raises(ConfigError, match="twice"):
        parse_embedder_urls("http://e1,http://e1/")
    single = EmbedderSettings(url="http://one:11434")
    assert embedder_urls(ServerSettings(), single) == ["http://one:11434"]
    both = ServerSettings(embedder_urls="http://a:1,http://b:2")
    assert embedder_urls(both, single) == ["http://a:1", "http://b:2"]


# --- requests over several endpoints --------------------------------------------
async def test_index_batches_spread_over_endpoints_and_keep_their_order() -> None:
    scripts = {"http://a": Script(), "http://b": Script()}
    emb = embedder(scripts, batch_size=4)
    texts = [f"chunk {i}" for i in range(40)]
    vectors = await emb.embed_documents(texts)
    await emb.aclose()
    assert [number_of(v) for v in vectors] == list(range(40))
    sent = [t for s in scripts.values() for batch in s.embeds for t in batch]
    assert sorted(sent) == sorted(texts)  # every chunk embedded exactly once
    assert scripts["http://a"].embeds and scripts["http://b"].embeds
    assert {p for s in scripts.values() for p in s.purposes} == {"index"}


async def test_a_query_goes_to_the_idle_endpoint_marked_as_a_query() -> None:
    gate = asyncio.Event()
    scripts = {"http://a": Script(gate=gate), "http://b": Script()}
    emb = embedder(scripts, batch_size=64)
    emb.pool.endpoints[1].answered = 5  # left alone, b would be the second choice
    index = asyncio.create_task(emb.embed_documents([f"c {i}" for i in range(64)]))
    for _ in range(100):
        if emb.pool.endpoints[0].in_flight:
            break
        await asyncio.sleep(0.01)
    assert emb.pool.endpoints[0].in_flight == 1  # the index batch is held on a
    assert number_of(await emb.embed_query("q 7")) == 7
    assert scripts["http://b"].purposes == ["query"]
    gate.set()
    assert len(await index) == 64
    await emb.aclose()


async def test_a_batch_on_an_endpoint_that_dies_is_answered_by_another() -> None:
    gate = asyncio.Event()
    scripts = {"http://a": Script(gate=gate), "http://b": Script()}
    emb = embedder(scripts, batch_size=8)
    stream = asyncio.create_task(emb.embed_documents([f"chunk {i}" for i in range(32)]))
    for _ in range(100):
        if emb.pool.endpoints[0].in_flight:
            break
        await asyncio.sleep(0.01)
    scripts["http://a"].down = True  # a dies with a batch in flight
    gate.set()
    vectors = await asyncio.wait_for(stream, 10)
    assert [number_of(v) for v in vectors] == list(range(32))
    assert scripts["http://a"].embeds == []  # a answered nothing
    assert sorted(t for b in scripts["http://b"].embeds for t in b) == sorted(
        f"chunk {i}" for i in range(32)
    )
    a = emb.pool.endpoints[0]
    assert a.status == "down" and "RemoteProtocolError" in (a.error or "")
    report = await emb.probe()
    assert report["status"] == "ok" and report["healthy"] == "1/2"
    assert [e["status"] for e in report["endpoints"]] == ["down", "ok"]
    await emb.aclose()


async def test_a_down_endpoint_is_probed_after_its_backoff_and_comes_back() -> None:
    scripts = {"http://a": Script(down=True), "http://b": Script()}
    emb = embedder(scripts, batch_size=8)
    await emb.embed_query("q 1")
    await emb.embed_query("q 2")
    a = emb.pool.endpoints[0]
    assert a.status == "down"  # the first check found it down
    tags_before = scripts["http://a"].tags_calls
    await emb.embed_query("q 3")
    assert scripts["http://a"].tags_calls == tags_before  # backoff: not probed again yet
    scripts["http://a"].down = False
    a.retry_at = 0  # the backoff has passed
    await emb.embed_query("q 4")  # starts a probe in the background
    for _ in range(100):
        if a.status == "ok":
            break
        await asyncio.sleep(0.01)
    assert a.status == "ok" and a.failures == 0
    await emb.embed_documents([f"c {i}" for i in range(16)])
    assert scripts["http://a"].embeds  # back in use
    await emb.aclose()


async def test_none_healthy_is_a_clear_error_naming_every_endpoint() -> None:
    scripts = {"http://a": Script(down=True), "http://b": Script(down=True)}
    emb = embedder(scripts)
    with pytest.raises(EmbedderUnavailable) as err:
        await emb.embed_query("q 1")
    assert "no embedder endpoint is healthy (2 configured)" in err.value.message
    assert "http://a: ConnectError" in err.value.message
    assert "http://b: ConnectError" in err.value.message
    assert "CODEBASE_MCP_EMBEDDER_URLS" in (err.value.hint or "")
    assert isinstance(err.value, EmbedderError)  # callers catching EmbedderError still do
    report = await emb.probe()
    assert report["status"] == "down" and report["healthy"] == "0/2"
    # One comes back: the next request finds it at once, backoff or not.
    scripts["http://b"].down = False
    assert number_of(await emb.embed_query("q 5")) == 5
    await emb.aclose()


async def test_a_single_endpoint_down_says_check_embedder_url() -> None:
    scripts = {"http://a": Script(down=True)}
    emb = embedder(scripts)
    with pytest.raises(EmbedderUnavailable, match="cannot reach the embedder at http://a") as err:
        await emb.embed_documents(["x"])
    assert "EMBEDDER_URL" in (err.value.hint or "")
    assert scripts["http://a"].tags_calls >= 1  # probed before giving up
    await emb.aclose()


async def test_a_busy_endpoint_is_skipped_not_marked_down() -> None:
    scripts = {"http://a": Script(status=503), "http://b": Script()}
    emb = embedder(scripts)
    emb.pool.endpoints[1].answered = 1  # a first
    assert number_of(await emb.embed_query("q 3")) == 3
    assert emb.pool.endpoints[0].status == "ok"
    assert scripts["http://b"].embeds == [["q 3"]]
    await emb.aclose()


async def test_every_endpoint_busy_says_so() -> None:
    scripts = {"http://a": Script(status=503)}
    emb = embedder(scripts)
    with pytest.raises(EmbedderError, match="too busy: http://a answered HTTP 503") as err:
        await emb.embed_query("q")
    assert not isinstance(err.value, EmbedderUnavailable)
    assert "EMBEDDER_MAX_PENDING" in (err.value.hint or "")
    await emb.aclose()


async def test_an_endpoint_without_the_model_is_left_out() -> None:
    scripts = {"http://a": Script(status=404), "http://b": Script()}
    emb = embedder(scripts)
    emb.pool.endpoints[1].answered = 1  # a first
    assert number_of(await emb.embed_query("q 3")) == 3
    assert emb.pool.endpoints[0].status == "model missing"
    scripts["http://b"].status = 404
    with pytest.raises(EmbedderError, match="does not serve model 'all-minilm'"):
        await emb.embed_query("q 4")
    await emb.aclose()


# --- model identity ------------------------------------------------------------------
async def test_endpoints_with_different_weights_are_refused() -> None:
    scripts = {"http://a": Script(digest="1" * 64), "http://b": Script(digest="2" * 64)}
    emb = embedder(scripts)
    with pytest.raises(EmbedderModelMix) as err:
        await emb.embed_documents(["x"])
    assert "http://a -> 1111111111111111" in err.value.message
    assert "http://b -> 2222222222222222" in err.value.message
    assert "same model" in (err.value.hint or "")
    with pytest.raises(EmbedderModelMix):  # refused every time, not only the first
        await emb.embed_query("q")
    assert scripts["http://a"].embeds == scripts["http://b"].embeds == []
    assert (await emb.probe())["status"] == "model mix"
    scripts["http://b"].digest = "1" * 64  # fixed: the same weights everywhere
    assert number_of(await emb.embed_query("q 2")) == 2
    assert await emb.identity() == "1" * 64
    await emb.aclose()


async def test_an_endpoint_returning_with_other_weights_is_kept_out() -> None:
    scripts = {"http://a": Script(), "http://b": Script(down=True)}
    emb = embedder(scripts, batch_size=4)
    await emb.embed_query("q 1")  # identity established by a alone
    scripts["http://b"].down = False
    scripts["http://b"].digest = "f" * 64
    b = emb.pool.endpoints[1]
    b.retry_at = 0
    await emb.embed_query("q 2")
    for _ in range(100):
        if b.status != "down":
            break
        await asyncio.sleep(0.01)
    assert b.status == "model mismatch"
    await emb.embed_documents([f"c {i}" for i in range(16)])
    assert scripts["http://b"].embeds == []
    report = await emb.probe()
    assert report["status"] == "ok"
    assert report["endpoints"][1]["status"] == "model mismatch"
    assert "serves 'all-minilm' as ffff" in report["endpoints"][1]["error"]
    await emb.aclose()


async def test_an_endpoint_reporting_no_digest_cannot_join_a_fan_out() -> None:
    scripts = {"http://a": Script(), "http://b": Script(digest=None)}
    emb = embedder(scripts, batch_size=4)
    await emb.embed_documents([f"c {i}" for i in range(16)])
    assert emb.pool.endpoints[1].status == "model mismatch"
    assert scripts["http://b"].embeds == []
    await emb.aclose()


async def test_one_endpoint_needs_no_identity_probe() -> None:
    scripts = {"http://a": Script(digest=None)}
    emb = embedder(scripts)
    assert number_of(await emb.embed_query("q 1")) == 1
    assert scripts["http://a"].tags_calls == 0  # no extra round trip
    await emb.aclose()
