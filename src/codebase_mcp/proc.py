"""The one door to host processes.

Every subprocess the tool starts goes through :func:`run`: argv lists only
(never a shell), the command echoed shell-quoted when asked, and failures
turned into :class:`~codebase_mcp.errors.CommandFailed` or
:class:`~codebase_mcp.errors.ToolMissing` with a hint. Tests of planning code
swap in a fake :class:`Runner`. Stdlib-only: the bootstrap lock script uses it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codebase_mcp.errors import CommandFailed, ToolMissing
from codebase_mcp.hostpackages import package_for_program

_echo = False


def set_echo(echo: bool) -> None:
    """Echo every command, shell-quoted, to stderr (``--verbose``)."""
    global _echo  # noqa: PLW0603 - process-wide switch set once by the CLI
    _echo = echo


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class Runner:
    """Runs argv lists. Subclass (or use FakeRunner in tests) to intercept."""

    echo: bool | None = None
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        capture: bool = True,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        hint: str | None = None,
        inherit_env: bool = True,
        stdout_to_stderr: bool = False,
        redact: Callable[[str], str] | None = None,
    ) -> Result:
        """Run ``argv``; ``env`` is added to this process's environment.

        ``inherit_env=False``: the child sees ``env`` alone (hermetic builds must
        not depend on the caller's variables). ``stdout_to_stderr``: with
        ``capture=False``, the child's output goes to stderr, keeping stdout for
        the command's own result (``--json``). ``redact`` scrubs secrets from
        everything this call shows: the echo, the failure's message and the
        stderr it carries (the child itself still gets the real argv).
        """
        args = tuple(os.fspath(a) for a in argv)
        self.calls.append(args)
        scrub = redact or _same
        if self.echo if self.echo is not None else _echo:
            print(f"+ {scrub(quote(args))}", file=sys.stderr, flush=True)
        if inherit_env:
            full_env = None if env is None else {**os.environ, **env}
        else:
            full_env = dict(env or {})
        stdout: int | None = None
        if capture:
            stdout = subprocess.PIPE
        elif stdout_to_stderr:
            # File descriptor 2, where the child's own stderr goes too (sys.stderr
            # may be replaced by an object with no file descriptor, as in tests).
            sys.stderr.flush()
            stdout = 2
        try:
            # Bytes, decoded here without newline translation: ``stdout`` keeps a
            # child's exact bytes (``stdout.encode("utf-8", "surrogateescape")``
            # gives them back: a registry manifest is hashed as it was sent).
            proc = subprocess.run(
                args,
                cwd=cwd,
                env=full_env,
                input=None if input is None else input.encode("utf-8", "surrogateescape"),
                stdout=stdout,
                stderr=subprocess.PIPE if capture else None,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise missing_tool(args[0]) from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(
                scrub(f"`{quote(args)}` did not finish within {timeout:.0f}s"),
                hint=hint or "the host may be overloaded; run it by hand to see where it hangs",
                returncode=-1,
            ) from exc
        result = Result(args, proc.returncode, _text(proc.stdout), scrub(_text(proc.stderr)))
        if check and proc.returncode != 0:
            raise failure(result, hint, redact)
        return result


def _same(text: str) -> str:
    return text


def _text(data: bytes | None) -> str:
    """A child's output as text: UTF-8, undecodable bytes kept as surrogates, newlines as sent."""
    return data.decode("utf-8", "surrogateescape") if data else ""


def missing_tool(name: str) -> ToolMissing:
    program = Path(name).name
    package = package_for_program(program) or program
    return ToolMissing(
        f"`{name}` is not installed on this host",
        hint=f"install it: `sudo apt-get install {package}`, or run "
        "`codebase-mcp doctor --fix` (as root it installs everything the project needs)",
    )


def failure(
    result: Result, hint: str | None, redact: Callable[[str], str] | None = None
) -> CommandFailed:
    scrub = redact or _same
    stderr = scrub(result.stderr)
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    message = scrub(f"`{quote(result.argv)}` failed with exit code {result.returncode}")
    if tail:
        message += f":\n{tail}"
    return CommandFailed(message, hint=hint, returncode=result.returncode, stderr=stderr)


def quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def which(name: str) -> str | None:
    return shutil.which(name)


_default = Runner()


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = None,
    hint: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> Result:
    """Run ``argv`` with the process-wide default runner."""
    return _default.run(
        argv,
        cwd=cwd,
        env=env,
        capture=capture,
        check=check,
        input=input,
        timeout=timeout,
        hint=hint,
        redact=redact,
    )
