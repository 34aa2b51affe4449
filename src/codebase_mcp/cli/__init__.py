"""The ``codebase-mcp`` command: a click group whose subcommands load lazily.

Only :func:`main` catches :class:`~codebase_mcp.errors.CodebaseMcpError`: it
prints the message and hint and exits with the error's code. ``--debug`` shows
the traceback as well.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from codebase_mcp import __version__
from codebase_mcp.errors import CodebaseMcpError

# name -> "module:attribute". Each command group lives in its own module and
# is imported only when used, so `codebase-mcp health` stays fast.
COMMANDS: dict[str, str] = {
    "image": "codebase_mcp.cli.image:image",
    "doctor": "codebase_mcp.cli.doctor:doctor",
    "pod": "codebase_mcp.cli.pod:pod",
    "up": "codebase_mcp.cli.pod:up",
    "down": "codebase_mcp.cli.pod:down",
    "status": "codebase_mcp.cli.pod:status",
    "logs": "codebase_mcp.cli.pod:logs",
    "serve": "codebase_mcp.cli.serve:serve",
    "init": "codebase_mcp.cli.init:init",
    "health": "codebase_mcp.cli.init:health",
    "embedder": "codebase_mcp.cli.embedder:embedder",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    @staticmethod
    def _available(name: str) -> bool:
        import importlib.util  # only for listing commands (--help)

        module_name = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codebase-mcp")
@click.option(
    "--debug",
    is_flag=True,
    envvar="CODEBASE_MCP_DEBUG",
    help="Show tracebacks on errors. [env: CODEBASE_MCP_DEBUG]",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    envvar="CODEBASE_MCP_VERBOSE",
    help="Echo every host command before running it. [env: CODEBASE_MCP_VERBOSE]",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    envvar="CODEBASE_MCP_QUIET",
    help="Only print results and errors. [env: CODEBASE_MCP_QUIET]",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool, quiet: bool) -> None:
    """codebase-mcp: semantic code search for AI coding assistants.

    \b
    Bring the whole stack up:   codebase-mcp up
    Build images reproducibly:  codebase-mcp image build
    Check this host:            codebase-mcp doctor
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    # Imported only when there is something to set (or already loaded, so a
    # previous setting is reset): `init` and `health` never use them and start faster.
    if verbose or "codebase_mcp.proc" in sys.modules:
        from codebase_mcp import proc

        proc.set_echo(verbose)
    if quiet or "codebase_mcp.ui" in sys.modules:
        from codebase_mcp import ui

        ui.set_quiet(quiet)


def main(argv: list[str] | None = None) -> Any:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="codebase-mcp", standalone_mode=False)
    except CodebaseMcpError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
