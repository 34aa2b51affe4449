"""Exponential backoff with jitter, bounded by a deadline. Pure: clock and RNG are injected."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (n = 1, 2, ...): ``min(max, base * factor**(n-1))``, jittered.

    ``jitter`` is the fraction of the delay that is random ("equal jitter"):
    0.5 draws from [delay/2, delay], so replicas starting together spread out
    but never retry in a hot loop.
    """

    base: float = 0.2
    factor: float = 2.0
    max: float = 5.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base <= 0 or self.max < self.base or self.factor < 1:
            raise ValueError(f"invalid backoff {self}: need 0 < base <= max and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff jitter {self.jitter}: need 0 <= jitter <= 1")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after ``attempt`` failed attempts (attempt >= 1)."""
        # Cap the exponent: factor**n overflows a float long before 10_000 attempts.
        exponent = min(attempt - 1, 64)
        return float(min(self.max, self.base * self.factor**exponent))

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling * (1 - self.jitter) + rng.uniform(0, ceiling * self.jitter)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The infinite schedule of jittered delays."""
        rng = rng or random.Random()
        attempt = 1
        while True:
            yield self.delay(attempt, rng)
            attempt += 1


@dataclass
class Deadline:
    """A point in time on a monotonic clock; ``remaining`` never goes below zero."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(at=clock() + seconds, clock=clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.remaining() <= 0

    def clamp(self, seconds: float) -> float:
        """``seconds`` cut down to what is left: never sleep or wait past the deadline."""
        return min(seconds, self.remaining())
