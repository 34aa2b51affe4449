"""The click group behind ``codebase-mcp``: global options, subcommands loaded lazily.

Kept apart from :mod:`codebase_mcp.cli` so that ``codebase-mcp init`` can start
without importing click (see :mod:`codebase_mcp.cli.initcmd`).
"""

from __future__ import annotations

import importlib
import sys

import click

from codebase_mcp import __version__
from codebase_mcp.cli import COMMANDS


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
    Fix what it lacks:          sudo codebase-mcp doctor --fix
    Every setting:              codebase-mcp config
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
