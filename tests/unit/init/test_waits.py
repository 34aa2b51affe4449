"""wait_for: retries with backoff, one log line per attempt, the deadline and its error."""

from __future__ import annotations

import io
import json
import random

import pytest

from codebase_mcp.errors import DatabaseTimeout, EmbedderTimeout
from codebase_mcp.init.backoff import Backoff, Deadline
from codebase_mcp.init.log import EventLog
from codebase_mcp.init.waits import (
    Dependency,
    describe,
    has_model,
    model_key,
    postgres_dependency,
    wait_for,
)


class FakeTime:
    """A clock that only moves when the code under test sleeps (or a probe takes time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def run_wait(
    probe_results: list[Exception | str],
    *,
    deadline_s: float = 10.0,
    probe_cost: float = 0.0,
    dep: Dependency | None = None,
) -> tuple[FakeTime, list[dict[str, object]], object]:
    fake = FakeTime()
    stream = io.StringIO()
    log = EventLog(fmt="json", stream=stream)
    timeouts: list[float] = []

    def probe(timeout: float) -> str:
        timeouts.append(timeout)
        fake.now += probe_cost
        result = probe_results.pop(0) if probe_results else RuntimeError("still down")
        if isinstance(result, Exception):
            raise result
        return result

    dep = dep or Dependency("postgres", "postgresql://u@h:1/db", "DATABASE_URL", DatabaseTimeout)
    outcome: object
    try:
        outcome = wait_for(
            dep,
            probe,
            deadline=Deadline.after(deadline_s, clock=fake.clock),
            backoff=Backoff(base=0.2, max=2.0, jitter=0.0),
            log=log,
            attempt_timeout=5.0,
            rng=random.Random(1),
            sleep=fake.sleep,
        )
    except DatabaseTimeout as exc:
        outcome = exc
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    events.append({"timeouts": timeouts})
    return fake, events, outcome


def test_ready_after_failures_logs_each_attempt_with_next_delay_and_error() -> None:
    fake, events, outcome = run_wait(
        [ConnectionRefusedError(111, "refused"), OSError("reset"), "PostgreSQL 17.0"]
    )
    assert outcome == "PostgreSQL 17.0"
    retries = [e for e in events if e.get("event") == "wait.retry"]
    assert [(e["attempt"], e["next_delay_s"]) for e in retries] == [(1, 0.2), (2, 0.4)]
    assert retries[0]["error"] == "ConnectionRefusedError: [Errno 111] refused"
    assert retries[0]["dependency"] == "postgres"
    assert retries[0]["address"] == "postgresql://u@h:1/db"
    ready = next(e for e in events if e.get("event") == "wait.ready")
    assert ready["attempt"] == 3
    assert fake.sleeps == pytest.approx([0.2, 0.4])


def test_deadline_raises_the_dependency_error_naming_address_error_and_setting() -> None:
    fake, events, outcome = run_wait([], deadline_s=3.0)
    assert isinstance(outcome, DatabaseTimeout)
    assert outcome.exit_code == 3
    assert "postgres at postgresql://u@h:1/db not ready after 3.0s" in outcome.message
    assert "last error: RuntimeError: still down" in outcome.message
    assert outcome.hint is not None
    assert "DATABASE_URL" in outcome.hint
    assert "CODEBASE_MCP_INIT_DEADLINE" in outcome.hint
    # Never sleeps past the deadline: the last sleep is cut to what was left.
    assert fake.now == pytest.approx(3.0)
    assert sum(fake.sleeps) == pytest.approx(3.0)
    assert events[-2]["event"] == "wait.timeout"


def test_slow_probes_end_within_deadline_plus_one_attempt() -> None:
    # Each failing attempt takes its whole timeout (clamped to what is left).
    fake, events, outcome = run_wait([], deadline_s=7.0, probe_cost=1.5)
    assert isinstance(outcome, DatabaseTimeout)
    timeouts = events[-1]["timeouts"]
    assert isinstance(timeouts, list)
    assert max(timeouts) <= 5.0
    assert fake.now <= 7.0 + 1.5


def test_attempt_timeout_is_cut_to_the_time_left() -> None:
    _, events, _ = run_wait([], deadline_s=1.0)
    timeouts = events[-1]["timeouts"]
    assert isinstance(timeouts, list)
    assert timeouts[0] == 1.0
    assert all(0.1 <= t <= 1.0 for t in timeouts)


def test_embedder_dependency_raises_its_own_code() -> None:
    dep = Dependency("embedder", "http://e:11434 (model m)", "EMBEDDER_URL", EmbedderTimeout)
    with pytest.raises(EmbedderTimeout) as info:
        run_wait([], deadline_s=0.5, dep=dep)
    assert info.value.exit_code == 9
    assert "embedder at http://e:11434 (model m)" in info.value.message


def test_password_never_appears_in_logs_or_errors() -> None:
    dep = postgres_dependency("postgresql://u:***@h:1/db", "s3cr3t-pw")
    _, events, outcome = run_wait(
        [ValueError("invalid DSN postgresql://u:s3cr3t-pw@h:1/db")], deadline_s=0.2, dep=dep
    )
    text = json.dumps(events) + str(outcome) + str(getattr(outcome, "hint", ""))
    assert "s3cr3t-pw" not in text
    assert "postgresql://u:***@h:1/db" in text


def test_describe_is_one_short_line() -> None:
    assert describe(TimeoutError()) == "TimeoutError: no answer in time"
    line = describe(RuntimeError("x\n" * 400))
    assert "\n" not in line
    assert len(line) <= 300


@pytest.mark.parametrize(
    ("wanted", "present", "match"),
    [
        ("all-minilm", "all-minilm:latest", True),
        ("all-minilm:latest", "all-minilm:latest", True),
        ("all-minilm", "all-minilm:l12", False),
        ("nomic-embed-text", "all-minilm:latest", False),
        ("registry:5000/ns/model", "registry:5000/ns/model:latest", True),
    ],
)
def test_model_names_without_tag_mean_latest(wanted: str, present: str, match: bool) -> None:
    tags = {"models": [{"name": present, "model": present}]}
    assert has_model(tags, wanted) is match


def test_model_key() -> None:
    assert model_key("a") == "a:latest"
    assert model_key("a:b") == "a:b"
    assert has_model({}, "a") is False
