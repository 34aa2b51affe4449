"""Human progress output, on stderr so stdout stays clean for --json."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet  # noqa: PLW0603 - one process-wide verbosity switch, set once by the CLI
    _quiet = quiet


def info(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@contextmanager
def step(message: str) -> Iterator[None]:
    """Print one line when a step starts and its duration when it ends."""
    info(f"==> {message}")
    started = time.monotonic()
    yield
    info(f"    done in {time.monotonic() - started:.1f}s")
