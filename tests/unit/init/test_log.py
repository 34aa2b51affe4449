"""One line per event, in both formats."""

from __future__ import annotations

import io
import json

from codebase_mcp.init.log import EventLog, render

TS = 1_764_213_000.25  # 2025-11-27T03:10:00.250Z


def test_text_line_quotes_values_with_spaces_and_keeps_one_line() -> None:
    line = render("text", TS, "warning", "wait.retry", {"attempt": 2, "error": "a b\nc"})
    assert line == '2025-11-27T03:10:00.250Z init WARNING wait.retry attempt=2 error="a b\\nc"'
    assert "\n" not in line


def test_json_line_has_the_event_and_fields() -> None:
    line = render("json", TS, "info", "child.exit", {"exit_code": 143, "argv": ["a", "b"]})
    record = json.loads(line)
    assert record == {
        "ts": "2025-11-27T03:10:00.250Z",
        "level": "info",
        "logger": "init",
        "event": "child.exit",
        "exit_code": 143,
        "argv": ["a", "b"],
    }


def test_event_log_writes_one_line_per_event() -> None:
    stream = io.StringIO()
    log = EventLog(fmt="json", stream=stream, clock=lambda: TS)
    log.info("a", x=1)
    log.error("b", msg="multi\nline")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["a", "b"]
    assert json.loads(lines[1])["level"] == "error"
