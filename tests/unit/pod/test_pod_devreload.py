"""The dev profile's reloader: a real child process restarted when a watched file changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from codebase_mcp.pod.devreload import changed, snapshot


def test_snapshot_sees_sources_and_skips_caches(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-313.pyc").write_text("")
    (tmp_path / "pkg" / "notes.txt").write_text("")
    seen = snapshot([tmp_path, tmp_path / "missing"])
    assert list(seen) == [str(tmp_path / "pkg" / "a.py")]


def test_changed_lists_added_removed_and_modified() -> None:
    before = {"a.py": 1.0, "b.py": 1.0, "c.py": 1.0}
    after = {"a.py": 1.0, "b.py": 2.0, "d.py": 1.0}
    assert changed(before, after) == ["b.py", "c.py", "d.py"]
    assert changed(before, dict(before)) == []


def test_a_changed_file_restarts_the_command(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    module = source / "app.py"
    module.write_text("v = 1\n")
    marker = tmp_path / "starts.log"
    child = f"open({str(marker)!r}, 'a').write('start\\n'); import time; time.sleep(60)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebase_mcp.pod.devreload", "--watch", str(source),
         "--interval", "0.1", "--", sys.executable, "-c", child],
        env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: marker.is_file() and marker.read_text().count("start") == 1)
        time.sleep(0.2)
        module.write_text("v = 2\n")
        os.utime(module, (time.time() + 5, time.time() + 5))  # coarse mtime clocks
        wait_for(lambda: marker.read_text().count("start") == 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
