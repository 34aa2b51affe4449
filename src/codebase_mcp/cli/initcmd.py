"""``codebase-mcp init`` without click: its command line read with the stdlib, and its body.

Why: the init is the server container's PID 1 and its start-up delays the server;
importing click was about a tenth of its imports (docs/init.md, "Start-up time").
:func:`parse` reads the init's own options in their usual spellings (``--deadline 5``,
``--deadline=5``, ``--no-migrate``, ``--``, the command) exactly as the click command
in :mod:`codebase_mcp.cli.init` does, and answers ``None`` for anything else:
``--help``, an unknown or short option, a value click would reject or read differently
(``1e3``, ``0``, a missing directory), global options, ``CODEBASE_MCP_DEBUG/VERBOSE/
QUIET`` or a shell-completion request in the environment. ``main`` then runs the click
command as always, so help, usage errors and their exit codes are click's.
Both know the options from their one declaration, :class:`codebase_mcp.init.config.InitConfig`;
``tests/unit/init/test_initcmd.py`` checks :func:`parse` against click's own parser.

:func:`run` is the command's body, shared by both ways in.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from codebase_mcp.envconfig import field_kinds, in_bounds, read_float
from codebase_mcp.errors import ConfigError
from codebase_mcp.init.config import InitConfig

if TYPE_CHECKING:
    from codebase_mcp.envconfig import Mirror

T = TypeVar("T")
M = TypeVar("M", bound="Mirror")

FIELDS = {field.name: field for field in dataclasses.fields(InitConfig)}
KINDS = field_kinds(InitConfig)


def _option_tables() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, bool]]]:
    """The click command's options, derived as it derives them from :class:`InitConfig`.

    Value options: name -> (parameter, kind) with the kinds of
    :func:`codebase_mcp.envconfig.field_kinds`; flags: name -> (parameter, value).
    """
    values: dict[str, tuple[str, str]] = {}
    flags: dict[str, tuple[str, bool]] = {}
    for name, (kind, _) in KINDS.items():
        option = "--" + name.replace("_", "-")
        if kind == "bool":
            flags[option] = (name, True)
            flags["--no-" + option[2:]] = (name, False)
        else:
            values[option] = (name, kind)
    return values, flags


VALUE_OPTIONS, FLAG_OPTIONS = _option_tables()
PARAMETERS = sorted({p for p, _ in VALUE_OPTIONS.values()} | {p for p, _ in FLAG_OPTIONS.values()})
# Read by the click group: its options' variables, and click's shell-completion request.
GROUP_ENVIRONMENT = (
    "CODEBASE_MCP_DEBUG",
    "CODEBASE_MCP_VERBOSE",
    "CODEBASE_MCP_QUIET",
    "_CODEBASE_MCP_COMPLETE",
)


class _Defer(Exception):
    """Let click parse this command line."""


def _convert(parameter: str, kind: str, text: str) -> object:
    """``text`` as click would type it for ``parameter``; _Defer when click could differ."""
    if kind == "float":
        value = read_float(text)  # digits only: never negative, never inf/nan
        if value is None or not in_bounds(value, FIELDS[parameter].metadata):
            raise _Defer
        return value
    if kind == "choice":
        if text not in KINDS[parameter][1]:
            raise _Defer
        return text
    # "optional_path", a directory: click stats it, refuses regular files and unreadable paths.
    if not text or not os.path.isdir(text) or not os.access(text, os.R_OK):
        raise _Defer
    return Path(text)


def parse(
    args: Sequence[str], environ: Mapping[str, str]
) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """(command, options) as click would pass them to ``init``; ``None``: let click parse."""
    if any(name in environ for name in GROUP_ENVIRONMENT):
        return None
    options: dict[str, Any] = dict.fromkeys(PARAMETERS)
    rest = list(args)
    try:
        while rest:
            arg = rest.pop(0)
            if arg == "--":
                break
            if not arg.startswith("-") or arg == "-":
                rest.insert(0, arg)  # the command starts here (no interspersed options)
                break
            name, equals, value = arg.partition("=")
            if name in FLAG_OPTIONS and not equals:
                parameter, flag = FLAG_OPTIONS[name]
                options[parameter] = flag
            elif name in VALUE_OPTIONS:
                if not equals:
                    if not rest or rest[0].startswith("-"):
                        raise _Defer  # click would take it as the value, or fail
                    value = rest.pop(0)
                parameter, kind = VALUE_OPTIONS[name]
                options[parameter] = _convert(parameter, kind, value)
            else:
                raise _Defer  # --help, unknown options (click passes those on), short options
    except _Defer:
        return None
    return tuple(rest), options


def run(command: tuple[str, ...], options: Mapping[str, Any]) -> NoReturn:
    """The body of ``codebase-mcp init``: settings, plan, wait, migrate, supervise, exit."""
    from codebase_mcp.envconfig import DatabaseConfig, EmbedderConfig
    from codebase_mcp.init.log import EventLog
    from codebase_mcp.init.run import InitPlan, Interrupted, run_init

    given = {key: value for key, value in options.items() if value is not None}
    settings = _config(InitConfig, **given)
    needs_db = settings.wait_database or settings.migrate
    plan = InitPlan(
        settings=settings,
        argv=command,
        database=_config(DatabaseConfig) if needs_db else None,
        embedder=_config(EmbedderConfig) if settings.wait_embedder else None,
        script_location=settings.migrations,
    )
    log = EventLog(fmt=settings.log_format)
    try:
        code = run_init(plan, log)
    except Interrupted as stop:
        log.warning("init.interrupted", signal=stop.signo, exit_code=stop.exit_code)
        code = stop.exit_code
    # The child's exit code is the init's: not an error, so no CodebaseMcpError.
    sys.exit(code)


def _config(mirror: type[M], **given: Any) -> M:
    """The settings, read without pydantic when possible (start-up time), else via the model.

    :func:`codebase_mcp.envconfig.from_env` takes only values it reads exactly as the
    pydantic model does; for anything else the model is built, so unusual spellings and
    invalid values behave (and fail) exactly as they always did.
    """
    from codebase_mcp import envconfig

    config = envconfig.from_env(mirror, os.environ, given)
    if config is not None:
        return config
    model = _settings(envconfig.model_class(mirror), mirror.PREFIX, **given)
    return envconfig.from_model(mirror, model)


def _settings(model: type[T], env_prefix: str, **given: Any) -> T:
    """Build a settings model; a validation error names the variable to fix."""
    from pydantic import ValidationError

    try:
        return model(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        where = f"{env_prefix}{field.upper()}" if field else f"{env_prefix}* settings"
        raise ConfigError(
            f"invalid {where}: {first['msg']}",
            hint=f"fix the {env_prefix}* environment variables or the matching options",
        ) from exc
