"""Arguments no tool accepts, refused before any tool runs (every transport).

No path, query or id ever needs a NUL character, another control character
(tab, newline and carriage return aside), an unpaired UTF-16 surrogate, more
than 32 Ki characters, or values nested dozens deep; Postgres text cannot even
store a NUL, and the operating system cuts paths at one. Refusing them here, in
one FastMCP middleware, gives every tool (present and future) the same clean
tool error instead of a database or ``ValueError`` traceback further in, and
keeps terminal escapes out of the messages that quote an argument back.
"""

from __future__ import annotations

import re
from typing import Any

import mcp.types as mt
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult

MAX_DEPTH = 16
MAX_STRING_CHARS = 32 * 1024  # the longest real argument (a path) is 4096
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def problem(value: Any, where: str, depth: int = 0) -> str | None:
    """What is wrong with one argument value, or None."""
    if depth > MAX_DEPTH:
        return f"{where} is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where} contains a NUL character"
        if len(value) > MAX_STRING_CHARS:
            return f"{where} is {len(value)} characters long (at most {MAX_STRING_CHARS})"
        control = _CONTROL.search(value)
        if control:
            return f"{where} contains the control character U+{ord(control.group()):04X}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where} contains an unpaired UTF-16 surrogate"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = problem(key, f"a key in {where}", depth + 1) or problem(
                item, f"{where}.{key}", depth + 1
            )
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = problem(item, f"{where}[{index}]", depth + 1)
            if found:
                return found
    return None


class RejectUnusableArguments(Middleware):
    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        for name, value in (context.message.arguments or {}).items():
            found = problem(name, "an argument name") or problem(value, f"argument {name!r}")
            if found:
                raise ToolError(
                    f"{found}. Hint: send plain text; no tool of this server accepts it"
                )
        return await call_next(context)
