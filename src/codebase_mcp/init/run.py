"""The init's sequence: wait for Postgres, then the embedder, migrate, then supervise CMD.

Until the child starts, SIGTERM/SIGINT/SIGHUP/SIGQUIT raise :class:`Interrupted`
(PID 1 would otherwise ignore them: it has no default actions), so a pod
stopped during the waits stops at once with 128+N.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from codebase_mcp.envconfig import DatabaseConfig, EmbedderConfig
from codebase_mcp.init.backoff import Deadline
from codebase_mcp.init.config import InitConfig
from codebase_mcp.init.log import EventLog

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class Interrupted(BaseException):  # a signal, not an error: the init exits 128+N
    """A stop signal arrived before the child started."""

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo

    @property
    def exit_code(self) -> int:
        return 128 + self.signo


def _raise_interrupted(signo: int, _frame: FrameType | None) -> None:
    raise Interrupted(signo)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    previous = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        # Block first: a signal arriving from here on stays pending for the supervisor.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for signo, handler in previous.items():
            signal.signal(signo, handler)


@dataclass
class InitPlan:
    """Everything the init does, decided up front from settings and the command line."""

    settings: InitConfig
    argv: Sequence[str]
    database: DatabaseConfig | None = None  # None: no wait, no migration
    embedder: EmbedderConfig | None = None  # None: no wait
    script_location: Path | None = None


def prepare(plan: InitPlan, log: EventLog) -> None:
    """Wait for dependencies and migrate; raises DependencyTimeout / MigrationFailed."""
    from codebase_mcp.init import waits

    settings = plan.settings
    deadline = Deadline.after(settings.deadline)
    backoff = settings.backoff()
    versions: frozenset[str] | None = None
    if plan.database is not None and settings.wait_database:
        probe = waits.PostgresProbe(plan.database.dsn(), read_versions=settings.migrate)
        waits.wait_for(
            waits.postgres_dependency(plan.database.redacted(), plan.database.resolved_password()),
            probe,
            deadline=deadline,
            backoff=backoff,
            log=log,
            attempt_timeout=settings.attempt_timeout,
        )
        versions = probe.versions
    if plan.embedder is not None and settings.wait_embedder:
        emb = plan.embedder
        waits.wait_for(
            waits.embedder_dependency(emb.url, emb.model),
            waits.embedder_probe(emb.url, emb.model, pull=emb.pull, deadline=deadline, log=log),
            deadline=deadline,
            backoff=backoff,
            log=log,
            attempt_timeout=settings.attempt_timeout,
        )
    if plan.database is not None and settings.migrate:
        migrate(plan.database.dsn(), plan.script_location, log, versions)


def migrate(
    dsn: str,
    script_location: Path | None,
    log: EventLog,
    versions: frozenset[str] | None = None,
) -> None:
    """Skip when ``versions`` (from the wait, or read now) is the head; else upgrade (locked)."""
    from codebase_mcp import migrate as migrations

    location = script_location or migrations.default_script_location()
    start = time.monotonic()
    if versions is None:
        current = _run_async(migrations.is_up_to_date(dsn, location))
    else:
        current = migrations.at_head(versions, location)
    if current is not None:
        log.info("migrate.skip", reason="already at head", revision=current)
        return
    log.info("migrate.start", script_location=str(location))
    result = _run_async(migrations.upgrade_head(dsn, script_location=location))
    log.info(
        "migrate.done",
        before=result.before,
        after=result.after,
        applied=result.applied,
        elapsed_s=round(time.monotonic() - start, 3),
    )


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio  # not at module level: when the schema is at head nothing needs asyncio

    return asyncio.run(coroutine)


def run_init(plan: InitPlan, log: EventLog) -> int:
    """The whole init; returns the exit code (the child's). Errors raise CodebaseMcpError."""
    from codebase_mcp.init.supervisor import Supervisor

    start = time.monotonic()
    with stop_signals_interrupt():
        prepare(plan, log)
    if not plan.argv:
        log.info("init.done", reason="no command after --", elapsed_s=_since(start))
        return 0
    log.info("init.ready", elapsed_s=_since(start))
    return Supervisor(plan.argv, log, grace_period=plan.settings.grace_period).run()


def _since(start: float) -> float:
    return round(time.monotonic() - start, 3)
