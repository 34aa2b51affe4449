"""The init as a real supervisor: orphans reaped, signals forwarded, exit codes passed on.

The init is not PID 1 here; it makes itself a child subreaper (as it does in
the image), so orphans of its child are reparented to it just as to a PID 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.init.support import (
    CLI,
    SUPERVISE_ONLY,
    events,
    proc_children,
    start_init,
    wait_for_file,
)

pytestmark = pytest.mark.integration

PY = sys.executable

# A child that orphans three grandchildren: each is started by a short-lived
# intermediate process (a double fork), then exits while the child still runs.
ORPHANS = """
import os, sys, time
for i in range(3):
    if os.fork() == 0:              # intermediate
        if os.fork() == 0:          # grandchild: outlives its parent, exits after 0.3 s
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)            # let go of the init's pipes
            os.dup2(null, 2)
            time.sleep(0.3)
            os._exit(0)
        os._exit(0)
    os.waitpid(-1, 0)               # reap only the intermediate
open(sys.argv[1], "w").close()
time.sleep(float(sys.argv[2]))
"""

# A child that reports the signals it gets, then exits with a code of its own.
HANDLER = """
import signal, sys, time
log = open(sys.argv[1] + ".log", "a", buffering=1)
def on_signal(signo, frame):
    log.write(signal.Signals(signo).name + "\\n")
    if signo == signal.SIGTERM:
        sys.exit(42)
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(s, on_signal)
open(sys.argv[1], "w").close()
while True:
    time.sleep(0.05)
"""

# Both: orphan three grandchildren, then wait for SIGTERM and exit 42.
ORPHANS_THEN_HANDLER = """
import os, signal, sys, time
log = open(sys.argv[1] + ".log", "a", buffering=1)
def on_term(signo, frame):
    log.write("SIGTERM\\n")
    sys.exit(42)
signal.signal(signal.SIGTERM, on_term)
for i in range(3):
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.3)
            os._exit(0)
        os._exit(0)
    os.waitpid(-1, 0)
open(sys.argv[1], "w").close()
while True:
    time.sleep(0.05)
"""

IGNORES_TERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(60)
"""


def test_orphans_are_reaped_while_the_child_runs(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    init = start_init(SUPERVISE_ONLY, [PY, "-c", ORPHANS, str(ready), "1.5"])
    wait_for_file(ready)
    time.sleep(0.8)  # the grandchildren have exited by now
    children = proc_children(init.pid)
    assert len(children) == 1  # the child itself; without the subreaper, no orphan is ours
    assert all(state != "Z" for _, state in children), children
    _, stderr = init.communicate(timeout=10)
    assert init.returncode == 0
    reaped = [e for e in events(stderr) if e["event"] == "orphan.reaped"]
    assert len(reaped) == 3, stderr
    assert {e["exit_code"] for e in reaped} == {0}


def test_init_exits_with_the_child_while_orphans_still_run(tmp_path: Path) -> None:
    # The grandchildren sleep 0.3 s after the child has exited: the init must
    # not wait for them (as PID 1 its exit ends the container and them).
    ready = tmp_path / "ready"
    start = time.monotonic()
    init = start_init(SUPERVISE_ONLY, [PY, "-c", ORPHANS.replace("0.3", "3"), str(ready), "0"])
    assert init.wait(timeout=10) == 0
    assert time.monotonic() - start < 2.5
    _, stderr = init.communicate(timeout=10)
    assert [e["event"] for e in events(stderr)][-1] == "child.exit"


def test_sigterm_is_forwarded_and_the_childs_code_returned_within_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    init = start_init([*SUPERVISE_ONLY, "--grace-period", "5"], [PY, "-c", HANDLER, str(ready)])
    wait_for_file(ready)
    init.send_signal(signal.SIGHUP)  # forwarded; the child carries on
    time.sleep(0.2)
    start = time.monotonic()
    init.send_signal(signal.SIGTERM)
    _, stderr = init.communicate(timeout=10)
    elapsed = time.monotonic() - start
    assert init.returncode == 42, stderr
    assert elapsed < 5.0  # within the grace period
    assert Path(f"{ready}.log").read_text().split() == ["SIGHUP", "SIGTERM"]
    forwarded = [e["signal"] for e in events(stderr) if e["event"] == "signal.forward"]
    assert forwarded == ["SIGHUP", "SIGTERM"]
    assert not any(e["event"] == "child.kill" for e in events(stderr))


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    init = start_init(
        [*SUPERVISE_ONLY, "--grace-period", "1"], [PY, "-c", IGNORES_TERM, str(ready)]
    )
    wait_for_file(ready)
    start = time.monotonic()
    init.send_signal(signal.SIGTERM)
    _, stderr = init.communicate(timeout=15)
    elapsed = time.monotonic() - start
    assert init.returncode == 128 + signal.SIGKILL, stderr
    assert 1.0 <= elapsed < 4.0
    kinds = [e["event"] for e in events(stderr)]
    assert kinds[-2:] == ["child.kill", "child.exit"]


@pytest.mark.parametrize(
    ("script", "code"),
    [("exit 0", 0), ("exit 7", 7), ("kill -KILL $$", 137), ("kill -TERM $$", 143)],
)
def test_exit_code_is_the_childs(script: str, code: int) -> None:
    init = start_init(SUPERVISE_ONLY, ["sh", "-c", script])
    _, stderr = init.communicate(timeout=10)
    assert init.returncode == code, stderr


def test_missing_command_exits_127_with_a_message() -> None:
    init = start_init(SUPERVISE_ONLY, ["/nonexistent/server"])
    _, stderr = init.communicate(timeout=10)
    assert init.returncode == 127
    assert "cannot start `/nonexistent/server`" in stderr


def test_sigterm_during_the_waits_stops_the_init_at_once(unused_port: int) -> None:
    init = start_init(
        ["--no-wait-embedder", "--deadline", "30"],
        ["true"],
        env={"DATABASE_URL": f"postgresql://u:pw@127.0.0.1:{unused_port}/db"},
    )
    assert init.stderr is not None
    seen = []
    for line in init.stderr:  # until it is retrying: its handlers are in place by then
        seen.append(line)
        if '"wait.retry"' in line:
            break
    start = time.monotonic()
    init.send_signal(signal.SIGTERM)
    _, rest = init.communicate(timeout=10)
    stderr = "".join(seen) + rest
    assert init.returncode == 143, stderr
    assert time.monotonic() - start < 2.0
    assert any(e["event"] == "wait.retry" for e in events(stderr))
    assert "pw@" not in stderr


def _pid1_init(command: list[str]) -> tuple[subprocess.Popen[str], int]:
    """The init as PID 1 of a new PID namespace (as in a container); (unshare, init's host pid)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a PID namespace")
    unshare = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--", CLI, "init", *SUPERVISE_ONLY, "--", *command],
        env={**os.environ, "CODEBASE_MCP_INIT_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = proc_children(unshare.pid)
        if children:
            return unshare, children[0][0]
        time.sleep(0.02)
    unshare.kill()
    raise AssertionError("the init did not start in its PID namespace")


def test_as_pid_1_sigterm_is_forwarded_and_orphans_reaped(tmp_path: Path) -> None:
    # PID 1 ignores signals it has no handler for: the init blocks them and
    # collects them with sigtimedwait, so a SIGTERM from outside still arrives.
    ready = tmp_path / "ready"
    unshare, init_pid = _pid1_init([PY, "-c", ORPHANS_THEN_HANDLER, str(ready)])
    wait_for_file(ready)
    time.sleep(0.8)  # the orphaned grandchildren have exited
    assert all(state != "Z" for _, state in proc_children(init_pid))
    os.kill(init_pid, signal.SIGTERM)
    _, stderr = unshare.communicate(timeout=10)
    assert unshare.returncode == 42, stderr
    log = events(stderr)
    assert next(e for e in log if e["event"] == "child.start")["init_pid"] == 1
    assert len([e for e in log if e["event"] == "orphan.reaped"]) == 3
    assert Path(f"{ready}.log").read_text().split() == ["SIGTERM"]
