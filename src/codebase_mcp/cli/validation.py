"""A pydantic ``ValidationError`` that reaches the CLI's edge, as one line that names the field.

:func:`codebase_mcp.cli.main` turns every one into a :class:`~codebase_mcp.errors.UsageError`
(exit 2): the field, the value given (unless it may be a secret), what it accepts, and
the option to change when the command line has it. No traceback (``--debug`` shows it).
Imports nothing: pydantic is only looked up if it is already loaded.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from codebase_mcp.errors import UsageError

_SECRET = re.compile(r"password|secret|token|key|url|dsn|auth|cred", re.IGNORECASE)
_GROUPS = {"image", "pod", "embedder", "repo"}


def usage_error(exc: BaseException, args: Sequence[str]) -> UsageError | None:
    """The one-line error for ``exc`` if it is a pydantic ValidationError, else ``None``."""
    core = sys.modules.get("pydantic_core")
    if core is None or not isinstance(exc, core.ValidationError):
        return None
    errors = exc.errors(include_url=False)
    if not errors:
        return UsageError(str(exc).splitlines()[0])
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    what = f"invalid {field}" if field else f"invalid {exc.title}"
    given = first.get("input")
    if field and not _SECRET.search(field) and isinstance(given, (str, int, float)):
        shown = repr(given)
        if len(shown) <= 60:
            what += f" {shown}"
    option = f"--{field.replace('_', '-')}" if field and "." not in field else None
    if option and any(a == option or a.startswith(option + "=") for a in args):
        what += f" ({option})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return UsageError(f"{what}: {message}{more}", hint=_help_hint(args))


def _help_hint(args: Sequence[str]) -> str:
    words: list[str] = []
    for arg in args:
        if arg.startswith("-"):
            if words:
                break
            continue
        words.append(arg)
        if len(words) == 2 or words[0] not in _GROUPS:
            break
    command = " ".join(["codebase-mcp", *words])
    return f"`{command} --help` says what each option accepts"
