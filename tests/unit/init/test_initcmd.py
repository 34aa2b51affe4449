"""``codebase-mcp init`` without click: initcmd.parse against click's own parser, and main.

For every command line of a corpus, the stdlib reader either defers (``None``) or
gives exactly the parameters and command click gives; whatever click rejects, it
defers. Around the command, the quick path must end as the click path does: the same
error lines, exit codes, Ctrl-C and EPIPE handling.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from codebase_mcp.cli import initcmd, main
from codebase_mcp.cli.group import cli
from codebase_mcp.cli.init import init as init_command
from codebase_mcp.errors import DatabaseTimeout

HERE = str(Path(__file__).parent)  # an existing, readable directory
FILE = __file__  # exists, but not a directory

CORPUS: list[list[str]] = [
    [],
    ["--"],
    ["--", "date", "+%s%N"],
    ["date", "+%s%N"],
    ["--", "--", "x"],
    ["--", "server", "--deadline", "3"],
    ["server", "--", "x"],
    ["--deadline", "5", "--", "x"],
    ["--deadline=5", "--", "x"],
    ["--deadline", "12.5", "--grace-period", "0", "--backoff-base", "0.1", "--", "x"],
    ["--backoff-max", "1", "--attempt-timeout", "2", "x"],
    ["--deadline", "5", "--deadline", "7", "x"],  # the last one wins
    ["--log-format", "json", "--log-format=text", "--", "x"],
    ["--no-wait-database", "--no-wait-embedder", "--no-migrate", "--", "x"],
    ["--wait-database", "--wait-embedder", "--migrate", "x", "--no-migrate"],
    ["--migrate", "--no-migrate", "--", "x"],
    ["--migrations", HERE, "--", "x"],
    [f"--migrations={HERE}", "x"],
    ["--", "-"],
    ["-", "x"],
    # click reads these differently or rejects them: the quick reader defers
    ["--deadline", "0", "--", "x"],
    ["--deadline", "-1", "--", "x"],
    ["--deadline", "1e3", "--", "x"],
    ["--deadline", " 5", "--", "x"],
    ["--deadline", "inf", "--", "x"],
    ["--deadline", "nan", "--", "x"],
    ["--deadline", "5.", "--", "x"],
    ["--deadline", ".5", "--", "x"],
    ["--deadline", "1_0", "--", "x"],
    ["--deadline=", "--", "x"],
    ["--deadline"],
    ["--deadline", "--", "x"],
    ["--deadline", "--no-migrate", "x"],
    ["--grace-period", "-0", "x"],
    ["--log-format", "JSON", "x"],
    ["--log-format", "xml", "x"],
    ["--migrations", "/nonexistent/dir", "x"],
    ["--migrations", FILE, "x"],
    ["--migrations", "", "x"],
    ["--migrate=yes", "x"],
    ["--bogus", "--", "x"],  # unknown options go into COMMAND with click
    ["--deadlin", "5", "x"],
    ["-x", "y"],
    ["-h"],
    ["--help"],
    ["--no-migrate", "--help"],
]


def click_reads(args: list[str]) -> tuple[tuple[str, ...], dict[str, Any]] | str:
    """(command, options) the click command gets under the group, or click's error."""
    parent = cli.context_class(cli, info_name="codebase-mcp", **cli.context_settings)
    try:
        with init_command.make_context("init", list(args), parent=parent) as ctx:
            params = dict(ctx.params)
    except (click.exceptions.Exit, click.ClickException) as exc:
        return f"click: {type(exc).__name__}"
    return tuple(params.pop("command")), params


@pytest.mark.parametrize("args", CORPUS, ids=[" ".join(a) or "(none)" for a in CORPUS])
def test_the_quick_reader_reads_as_click_or_defers(args: list[str]) -> None:
    quick = initcmd.parse(args, {})
    expected = click_reads(args)
    if quick is not None:
        assert quick == expected
    if isinstance(expected, str):
        assert quick is None, "click rejects this: its error must be the one shown"


def test_plain_command_lines_do_not_need_click() -> None:
    taken = [args for args in CORPUS if initcmd.parse(args, {}) is not None]
    assert len(taken) >= 18  # the usual spellings, incl. the image's `init -- CMD`
    assert initcmd.parse(["--", "codebase-mcp", "serve"], {}) == (
        ("codebase-mcp", "serve"),
        dict.fromkeys(initcmd.PARAMETERS),
    )


def test_the_readers_options_are_the_click_commands() -> None:
    declared = {
        name: param.name
        for param in init_command.params
        if isinstance(param, click.Option)
        for name in [*param.opts, *param.secondary_opts]
    }
    ours = {name: p for name, (p, _) in initcmd.VALUE_OPTIONS.items()}
    ours.update({name: p for name, (p, _) in initcmd.FLAG_OPTIONS.items()})
    assert ours == declared


@pytest.mark.parametrize("name", initcmd.GROUP_ENVIRONMENT)
def test_the_groups_environment_sends_the_line_to_click(name: str) -> None:
    assert initcmd.parse(["--", "x"], {name: "1"}) is None


# --- main: the same ending either way ------------------------------------------------------

QUICK = ["init", "--no-migrate", "--", "true"]
VIA_CLICK = ["init", "--no-migrate", "--deadline", "1e1", "--", "true"]  # click reads 1e1


def ending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
    failure: BaseException,
) -> tuple[object, str, bool]:  # fmt: skip
    """(exit code, stderr, whether click was imported) when init's body raises ``failure``."""
    seen: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def body(command: tuple[str, ...], options: dict[str, Any]) -> None:
        seen.append((command, dict(options)))
        raise failure

    monkeypatch.setattr(initcmd, "run", body)
    for name in initcmd.GROUP_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "codebase_mcp.cli.group", raising=False)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert seen and seen[0][0] == ("true",)
    return info.value.code, capsys.readouterr().err, "codebase_mcp.cli.group" in sys.modules


@pytest.mark.parametrize(
    "failure",
    [
        DatabaseTimeout("postgres at x not ready", hint="check DATABASE_URL"),
        KeyboardInterrupt(),
        EOFError(),
        BrokenPipeError(32, "Broken pipe"),
        SystemExit(143),
    ],
    ids=["error", "ctrl-c", "eof", "epipe", "exit"],
)
def test_quick_and_click_paths_end_alike(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], failure: BaseException
) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    try:
        quick = ending(monkeypatch, capsys, QUICK, failure)
        via_click = ending(monkeypatch, capsys, VIA_CLICK, failure)
    finally:
        sys.stdout, sys.stderr = stdout, stderr  # the EPIPE path swaps them
    assert quick[2] is False and via_click[2] is True  # really two different paths
    assert quick[:2] == via_click[:2]


def test_init_with_a_plain_command_line_imports_no_click(tmp_path: Path) -> None:
    started = tmp_path / "started"
    env = {k: v for k, v in os.environ.items() if k not in initcmd.GROUP_ENVIRONMENT}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    cli_path = str(Path(sys.executable).with_name("codebase-mcp"))
    options = ["--no-wait-database", "--no-wait-embedder", "--no-migrate"]
    done = subprocess.run(
        [cli_path, "init", *options, "--", "touch", str(started)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert started.exists()
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "codebase_mcp.cli.initcmd" in modules
    assert "click" not in modules
    helped = subprocess.run(
        [cli_path, "init", "--help"], env=env, capture_output=True, text=True, check=True
    )
    assert "Usage: codebase-mcp init [OPTIONS] [COMMAND]..." in helped.stdout
