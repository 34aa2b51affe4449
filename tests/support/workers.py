"""Stopping the in-process job workers that tests and benchmarks run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def stop_workers(
    tasks: Iterable[asyncio.Task[Any]], embedders: Iterable[Any], pools: Iterable[Any]
) -> None:
    """Cancel the worker tasks and wait for them, then close their embedders and pools."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for embedder in embedders:
        await embedder.aclose()
    for pool in pools:
        await pool.close()
