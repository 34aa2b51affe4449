"""PID 1 duties: start the command, forward signals, reap every zombie, pass on the exit code.

The child is started with :func:`os.posix_spawnp`, not through
``codebase_mcp.proc``: ``proc.run`` runs a command to completion, while the
init needs a long-lived child whose signal mask and dispositions it sets
itself (this module is the one exception to "subprocesses go through proc").

How it works (the approach of tini/dumb-init, in Python):

- The forwarded signals and SIGCHLD are *blocked* in the init and collected
  with :func:`signal.sigtimedwait`, so none is lost between two checks and
  PID 1's "no handler means ignored" rule does not apply. The child gets an
  empty mask and default dispositions (Python ignores SIGPIPE; a server must
  not inherit that).
- ``prctl(PR_SET_CHILD_SUBREAPER)`` makes orphans of the child our children
  even when the init is not PID 1 (tests, ``podman run --init``); every
  SIGCHLD reaps all exited children with ``waitpid(-1, WNOHANG)``.
- SIGTERM/SIGINT/SIGQUIT start the grace period; when it runs out the child
  gets SIGKILL. The init exits with the child's code, 128+N for signal N.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codebase_mcp.errors import ChildStartFailed
from codebase_mcp.init.log import EventLog

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)
# These start the grace period; SIGHUP/SIGUSR* are requests the child may handle and go on.
STOPPING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
# Dispositions Python changes at startup that a child must not inherit.
RESET_TO_DEFAULT = (*FORWARDED, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ)

PR_SET_CHILD_SUBREAPER = 36


def exit_code(status: int) -> int:
    """A ``waitpid`` status as a shell reports it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 1  # stopped/continued are not exits; callers only pass exits


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux >= 3.4); harmless when already PID 1."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass
class Supervisor:
    argv: Sequence[str]
    log: EventLog
    grace_period: float = 10.0
    clock: Callable[[], float] = time.monotonic

    def run(self) -> int:
        """Start the child and supervise it until it exits; returns the init's exit code."""
        subreaper = become_subreaper()
        watched = {*FORWARDED, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        try:
            pid = self._spawn()
        except ChildStartFailed:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
            raise
        self.log.info(
            "child.start", pid=pid, argv=list(self.argv), init_pid=os.getpid(), subreaper=subreaper
        )
        return self._supervise(pid, watched)

    def _spawn(self) -> int:
        try:
            return os.posix_spawnp(
                self.argv[0],
                list(self.argv),
                dict(os.environ),
                setsigmask=(),
                setsigdef=RESET_TO_DEFAULT,
            )
        except OSError as exc:
            raise ChildStartFailed(
                f"cannot start `{self.argv[0]}`: {exc.strerror or exc}",
                hint="check the command after `--` (the image's CMD) and PATH",
            ) from exc

    def _supervise(self, pid: int, watched: set[signal.Signals]) -> int:
        kill_at: float | None = None
        killed = False
        status: int | None = None
        while status is None:
            timeout = 1.0 if kill_at is None else max(0.0, kill_at - self.clock())
            info = signal.sigtimedwait(watched, timeout)
            if info is None:
                if kill_at is not None and self.clock() >= kill_at and not killed:
                    self.log.warning(
                        "child.kill",
                        pid=pid,
                        reason=f"still running {self.grace_period}s "
                        "after the stop signal (grace period)",
                    )
                    _kill(pid, signal.SIGKILL)
                    killed = True
                    kill_at = None
            elif info.si_signo == signal.SIGCHLD:
                pass  # reaped below
            else:
                signo = signal.Signals(info.si_signo)
                self.log.info("signal.forward", signal=signo.name, pid=pid)
                _kill(pid, signo)
                if signo in STOPPING and kill_at is None and not killed:
                    kill_at = self.clock() + self.grace_period
            status = self._reap(pid)
        code = exit_code(status)
        self._reap(pid)  # orphans that exited together with the child
        self.log.info("child.exit", pid=pid, exit_code=code, killed=killed)
        return code

    def _reap(self, child: int) -> int | None:
        """Reap every exited child; return the main child's status if it was among them."""
        found: int | None = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return found
            if pid == 0:
                return found
            if pid == child:
                found = status
            else:
                self.log.info("orphan.reaped", pid=pid, exit_code=exit_code(status))


def _kill(pid: int, signo: int) -> None:
    # ProcessLookupError: it exited in the meantime, and its SIGCHLD is pending.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signo)
