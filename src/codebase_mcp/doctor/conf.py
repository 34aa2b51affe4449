"""containers.conf as data: the effective settings of several files, and a merging edit.

Pure functions of text. :func:`merge` sets a few keys in an existing file and keeps
everything else byte for byte (comments, order, other keys): the doctor must never
clobber a host's configuration. It checks its own work: the result parses, has the
new values, and every other setting is what it was.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from codebase_mcp.errors import ConfigError

# A value the doctor writes: a string or a list of strings.
ConfValue = str | tuple[str, ...]
# (table, key) -> value, e.g. ("engine", "runtime") -> "runc".
Settings = Mapping[tuple[str, str], ConfValue]

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")


def parse(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid TOML: {exc}",
            hint="fix it by hand (podman refuses it too), then run `codebase-mcp doctor` again",
        ) from exc


def effective(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The settings podman ends up with: later files override earlier ones, key by key."""
    merged: dict[str, Any] = {}
    for document in documents:
        _deep_update(merged, document)
    return merged


def _deep_update(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = {}
            _deep_update(target[key], value)
        else:
            target[key] = value


def lookup(config: Mapping[str, Any], table: str, key: str) -> Any:
    section = config.get(table)
    return section.get(key) if isinstance(section, Mapping) else None


def render_value(value: ConfValue) -> str:
    """TOML for a string or a list of strings (JSON's string escapes are TOML's)."""
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(json.dumps(item) for item in value) + "]"


def merge(text: str, settings: Settings, where: str = "containers.conf") -> str:
    """``text`` with ``settings`` set: replaced where the key is, else added to its table."""
    before = parse(text, where)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for (table, key), value in settings.items():
        lines = _set(lines, table, key, f"{key} = {render_value(value)}\n")
    result = "".join(lines)
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = None
    if after != _expected(before, settings):
        raise ConfigError(
            f"the doctor could not edit {where} safely (its layout is unusual)",
            hint="set these by hand: "
            + "; ".join(f"[{t}] {k} = {render_value(v)}" for (t, k), v in settings.items()),
        )
    return result


def _set(lines: list[str], table: str, key: str, assignment: str) -> list[str]:
    header: int | None = None  # index of the table's header line
    current: str | None = ""  # the table of the line being read ("": top level; None: [[...]])
    assign = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match:
            current = match.group(1)
            if current == table and header is None:
                header = index
            continue
        if _ARRAY_HEADER.match(line):
            current = None
            continue
        if current == table and assign.match(line):
            end = _value_end(lines, index)
            return [*lines[:index], assignment, *lines[end + 1 :]]
    if header is not None:
        return [*lines[: header + 1], assignment, *lines[header + 1 :]]
    separator = ["\n"] if lines and lines[-1].strip() else []
    return [*lines, *separator, f"[{table}]\n", assignment]


def _value_end(lines: list[str], start: int) -> int:
    """The last line of the assignment starting at ``start`` (a multi-line array ends later)."""
    depth = 0
    for index in range(start, len(lines)):
        depth += _bracket_balance(lines[index] if index > start else lines[index].split("=", 1)[1])
        if depth <= 0:
            return index
    return len(lines) - 1


def _bracket_balance(line: str) -> int:
    """Opened minus closed brackets outside strings and comments."""
    balance, quote = 0, ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char == "[":
            balance += 1
        elif char == "]":
            balance -= 1
    return balance


def _expected(before: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """``before`` with ``settings`` set: what the edited file must parse to, exactly."""
    expected = effective([before])
    for (table, key), value in settings.items():
        expected.setdefault(table, {})[key] = list(value) if isinstance(value, tuple) else value
    return expected
