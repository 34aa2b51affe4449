"""The ``codebase-mcp`` command: a click group whose subcommands load lazily.

Only :func:`main` catches :class:`~codebase_mcp.errors.CodebaseMcpError`: it
prints the message and hint and exits with the error's code. ``--debug`` shows
the traceback as well. A pydantic ``ValidationError`` that gets this far is bad
input too: it becomes a one-line usage error (:mod:`codebase_mcp.cli.validation`).

The group itself is in :mod:`codebase_mcp.cli.group` (``cli`` here is an alias,
loaded on first use): ``codebase-mcp init`` with a plain command line runs
without importing click at all (:mod:`codebase_mcp.cli.initcmd`), because it is
the server container's PID 1 and its start-up delays the server.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, NoReturn

from codebase_mcp.errors import CodebaseMcpError

# name -> "module:attribute". Each command group lives in its own module and
# is imported only when used, so `codebase-mcp health` stays fast.
COMMANDS: dict[str, str] = {
    "image": "codebase_mcp.cli.image:image",
    "doctor": "codebase_mcp.cli.doctor:doctor",
    "config": "codebase_mcp.cli.config:config",
    "pod": "codebase_mcp.cli.pod:pod",
    "up": "codebase_mcp.cli.pod:up",
    "down": "codebase_mcp.cli.pod:down",
    "status": "codebase_mcp.cli.pod:status",
    "logs": "codebase_mcp.cli.pod:logs",
    "repo": "codebase_mcp.cli.repo:repo",
    "serve": "codebase_mcp.cli.serve:serve",
    "init": "codebase_mcp.cli.init:init",
    "health": "codebase_mcp.cli.init:health",
    "embedder": "codebase_mcp.cli.embedder:embedder",
    "index": "codebase_mcp.cli.index:index_group",
}


def __getattr__(name: str) -> Any:
    """``cli`` and ``LazyGroup`` from :mod:`codebase_mcp.cli.group`, imported on first use."""
    if name in {"cli", "LazyGroup"}:
        from codebase_mcp.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> Any:
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    try:
        if args[:1] == ["init"]:
            _init_without_click(args[1:])  # returns only when click must parse the line
        return _click_main(argv)
    except CodebaseMcpError as exc:
        _report(exc, debug)
    except Exception as exc:
        # Bad input that a pydantic model refused: one line naming the field, exit 2.
        from codebase_mcp.cli.validation import usage_error

        usage = usage_error(exc, args)
        if usage is None:
            raise
        _report(usage, debug)


def _init_without_click(args: list[str]) -> None:
    """Run ``init`` when :func:`initcmd.parse` reads its command line; else return.

    Mirrors what click's ``main`` does around a command (standalone_mode=False)
    and what :func:`_click_main` does with it: Ctrl-C or EOF print a blank line
    and ``aborted`` and exit 130; a closed stdout/stderr (EPIPE) exits 1 quietly.
    """
    from codebase_mcp.cli import initcmd

    parsed = initcmd.parse(args, os.environ)
    if parsed is None:
        return
    try:
        initcmd.run(*parsed)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr, flush=True)
        print("aborted", file=sys.stderr, flush=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - until exit
        sys.exit(1)


def _click_main(argv: list[str] | None) -> Any:
    import click

    from codebase_mcp.cli.group import cli

    try:
        return cli.main(args=argv, prog_name="codebase-mcp", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _report(exc: CodebaseMcpError, debug: bool) -> NoReturn:
    import click

    if debug:
        import traceback

        traceback.print_exc()
    click.secho(f"error: {exc.message}", fg="red", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)
