"""The embedder wait against a fake Ollama API on loopback (in-process, no network)."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest

from codebase_mcp.errors import EmbedderTimeout
from codebase_mcp.init.backoff import Backoff, Deadline
from codebase_mcp.init.log import EventLog
from codebase_mcp.init.waits import embedder_dependency, embedder_probe, wait_for
from tests.unit.init.fake_ollama import OllamaState, fake_ollama


def wait_embedder(
    url: str, model: str, *, pull: bool, deadline_s: float = 5.0
) -> tuple[str, list[dict[str, Any]]]:
    stream = io.StringIO()
    log = EventLog(fmt="json", stream=stream)
    deadline = Deadline.after(deadline_s)
    try:
        detail = wait_for(
            embedder_dependency(url, model),
            embedder_probe(url, model, pull=pull, deadline=deadline, log=log),
            deadline=deadline,
            backoff=Backoff(base=0.01, max=0.05),
            log=log,
            attempt_timeout=2.0,
            rng=random.Random(0),
        )
    finally:
        events = [json.loads(line) for line in stream.getvalue().splitlines()]
    return detail, events


def test_present_model_is_ready_at_once() -> None:
    state = OllamaState(models=["all-minilm:latest"])
    with fake_ollama(state) as url:
        detail, events = wait_embedder(url, "all-minilm", pull=False)
    assert detail == "model all-minilm present"
    assert state.requests == ["GET /", "GET /api/tags"]
    assert [e["event"] for e in events] == ["wait.ready"]


def test_starting_embedder_is_retried() -> None:
    state = OllamaState(models=["all-minilm:latest"], fail_root=2)
    with fake_ollama(state) as url:
        _, events = wait_embedder(url, "all-minilm", pull=False)
    retries = [e for e in events if e["event"] == "wait.retry"]
    assert len(retries) == 2
    assert "503" in retries[0]["error"]


def test_missing_model_is_pulled_with_progress_in_the_log() -> None:
    state = OllamaState(models=[], pullable={"all-minilm"})
    with fake_ollama(state) as url:
        detail, events = wait_embedder(url, "all-minilm", pull=True)
    assert detail == "model all-minilm pulled"
    assert "POST /api/pull all-minilm" in state.requests
    progress = [e for e in events if e["event"] == "embedder.pull.progress"]
    assert progress[0]["status"] == "pulling manifest"
    assert any(p.get("percent") == 50.0 for p in progress)
    assert events[-1]["event"] == "wait.ready"


def test_missing_model_without_pull_times_out_naming_the_setting() -> None:
    state = OllamaState(models=["other:latest"])
    with fake_ollama(state) as url, pytest.raises(EmbedderTimeout) as info:
        wait_embedder(url, "all-minilm", pull=False, deadline_s=0.3)
    assert "EMBEDDER_PULL=true" in info.value.message
    assert url in info.value.message
    assert not any(r.startswith("POST") for r in state.requests)


def test_failed_pull_reports_ollamas_error() -> None:
    state = OllamaState(models=[], pullable=set())
    with fake_ollama(state) as url, pytest.raises(EmbedderTimeout) as info:
        wait_embedder(url, "nope", pull=True, deadline_s=0.3)
    assert "pull model manifest: nope" in info.value.message
