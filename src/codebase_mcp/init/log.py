"""Structured logs for the init: one line per event, JSON or ``key=value`` text, on stderr.

Stdlib only and no ``logging`` configuration: the child (the server) owns the
process-wide logging setup; the init writes its own lines so they stay one
line each whatever the server configures.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TextIO

LogFormat = Literal["json", "text"]


def _utc(ts: float) -> str:
    millis = int(ts * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{millis:03d}Z"


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


def render(fmt: LogFormat, ts: float, level: str, event: str, fields: dict[str, object]) -> str:
    """One log line (no newline). Values are made single-line in both formats."""
    if fmt == "json":
        record: dict[str, object] = {"ts": _utc(ts), "level": level, "logger": "init"}
        record["event"] = event
        record.update(fields)
        return json.dumps(record, default=str, separators=(",", ":"))
    pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
    return f"{_utc(ts)} init {level.upper():5} {event}" + (f" {pairs}" if pairs else "")


@dataclass
class EventLog:
    """Writes events; ``stream`` defaults to stderr (stdout may be the server's MCP stdio)."""

    fmt: LogFormat = "text"
    stream: TextIO | None = None
    clock: Callable[[], float] = time.time
    lines: list[str] = field(default_factory=list, repr=False)  # kept only when record=True
    record: bool = False

    def emit(self, event: str, level: str = "info", **fields: object) -> None:
        line = render(self.fmt, self.clock(), level, event, fields)
        if self.record:
            self.lines.append(line)
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def info(self, event: str, **fields: object) -> None:
        self.emit(event, "info", **fields)

    def warning(self, event: str, **fields: object) -> None:
        self.emit(event, "warning", **fields)

    def error(self, event: str, **fields: object) -> None:
        self.emit(event, "error", **fields)
