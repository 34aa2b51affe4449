"""Exit-code mapping: the child's status as the init's code, and the init's own failures."""

from __future__ import annotations

import os
import signal

import pytest

from codebase_mcp.errors import (
    ChildStartFailed,
    DatabaseTimeout,
    DependencyTimeout,
    EmbedderTimeout,
    HealthCheckFailed,
    MigrationFailed,
)
from codebase_mcp.init.run import Interrupted
from codebase_mcp.init.supervisor import exit_code


def wait_status(*, code: int | None = None, sig: int | None = None) -> int:
    """A real waitpid status from a forked child that exits or kills itself."""
    pid = os.fork()
    if pid == 0:  # child: must never return into pytest
        try:
            if sig is not None:
                if sig != signal.SIGKILL:
                    signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)
        finally:
            os._exit(code or 0)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_code_of_a_normal_exit_is_passed_on(code: int) -> None:
    assert exit_code(wait_status(code=code)) == code


@pytest.mark.parametrize(
    ("sig", "expected"),
    [(signal.SIGTERM, 143), (signal.SIGKILL, 137), (signal.SIGINT, 130), (signal.SIGHUP, 129)],
)
def test_death_by_signal_is_128_plus_n(sig: int, expected: int) -> None:
    assert exit_code(wait_status(sig=sig)) == expected


def test_interrupted_during_waits_exits_128_plus_n() -> None:
    assert Interrupted(signal.SIGTERM).exit_code == 143
    assert Interrupted(signal.SIGINT).exit_code == 130


def test_documented_error_codes() -> None:
    # docs/init.md lists these: keep them in step.
    assert DatabaseTimeout.exit_code == 3
    assert issubclass(DatabaseTimeout, DependencyTimeout)
    assert EmbedderTimeout.exit_code == 9
    assert issubclass(EmbedderTimeout, DependencyTimeout)
    assert MigrationFailed.exit_code == 7
    assert HealthCheckFailed.exit_code == 8
    assert ChildStartFailed.exit_code == 127
