"""Backoff schedules and deadlines: pure, with an injected clock and RNG."""

from __future__ import annotations

import random

import pytest

from codebase_mcp.init.backoff import Backoff, Deadline


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_ceiling_doubles_from_base_and_caps_at_max() -> None:
    backoff = Backoff(base=0.2, factor=2.0, max=5.0)
    assert [backoff.ceiling(n) for n in range(1, 8)] == pytest.approx(
        [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff(base=0.1, max=3.0).ceiling(100_000) == 3.0


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
def test_jittered_delays_stay_within_the_jitter_band(jitter: float) -> None:
    backoff = Backoff(base=0.2, max=5.0, jitter=jitter)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = backoff.ceiling(attempt)
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert ceiling * (1 - jitter) - 1e-12 <= delay <= ceiling + 1e-12


def test_jitter_spreads_replicas_apart() -> None:
    backoff = Backoff(base=1.0, max=1.0, jitter=0.5)
    first = [backoff.delay(1, random.Random(seed)) for seed in range(20)]
    assert len({round(d, 6) for d in first}) > 10


def test_schedule_is_reproducible_with_a_seeded_rng() -> None:
    backoff = Backoff()
    a = backoff.delays(random.Random(3))
    b = backoff.delays(random.Random(3))
    assert [next(a) for _ in range(10)] == [next(b) for _ in range(10)]


def test_no_jitter_gives_the_exact_schedule() -> None:
    delays = Backoff(base=0.5, factor=3.0, max=10.0, jitter=0.0).delays()
    assert [next(delays) for _ in range(4)] == pytest.approx([0.5, 1.5, 4.5, 10.0])


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0}, {"base": 2.0, "max": 1.0}, {"factor": 0.5}, {"jitter": 1.5}],
)
def test_invalid_backoff_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**kwargs)


def test_deadline_remaining_clamp_and_expiry() -> None:
    clock = FakeClock()
    deadline = Deadline.after(10.0, clock=clock)
    assert deadline.remaining() == 10.0
    assert deadline.clamp(3.0) == 3.0
    clock.now += 8.5
    assert deadline.clamp(3.0) == pytest.approx(1.5)
    assert not deadline.expired()
    clock.now += 2.0
    assert deadline.remaining() == 0.0
    assert deadline.clamp(3.0) == 0.0
    assert deadline.expired()
