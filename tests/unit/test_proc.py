from __future__ import annotations

import sys

import pytest

from codebase_mcp.errors import CommandFailed, ToolMissing
from codebase_mcp.proc import Runner, quote


def test_missing_tool_names_the_package() -> None:
    with pytest.raises(ToolMissing) as info:
        Runner().run(["mmdebstrap-does-not-exist", "--version"])
    assert "not installed" in info.value.message
    assert info.value.hint and "apt-get install" in info.value.hint


def test_failure_carries_stderr_tail_and_hint() -> None:
    with pytest.raises(CommandFailed) as info:
        Runner().run(
            ["python3", "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"],
            hint="try again",
        )
    assert info.value.returncode == 3
    assert "boom" in info.value.message and info.value.hint == "try again"


def test_calls_are_recorded_and_quoted() -> None:
    runner = Runner()
    result = runner.run(["python3", "-c", "print('a b')"])
    assert result.stdout == "a b\n"
    assert runner.calls == [("python3", "-c", "print('a b')")]
    assert quote(["echo", "a b"]) == "echo 'a b'"


def test_without_inherit_env_the_child_sees_only_what_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    code = "import os, sys; print(sorted(k for k in os.environ if k != 'LC_CTYPE'))"
    result = Runner().run(
        [sys.executable, "-c", code],
        env={"ONLY": "this", "PATH": "/usr/bin:/bin"},
        inherit_env=False,
    )
    assert result.stdout.strip() == "['ONLY', 'PATH']"
    inherited = Runner().run([sys.executable, "-c", code], env={"ONLY": "this"})
    assert "PYTHONDONTWRITEBYTECODE" in inherited.stdout


def test_stdout_to_stderr_keeps_stdout_for_the_result(capfd: pytest.CaptureFixture[str]) -> None:
    Runner().run(
        [sys.executable, "-c", "print('STEP 1/2: FROM scratch')"],
        capture=False,
        stdout_to_stderr=True,
    )
    out, err = capfd.readouterr()
    assert out == ""
    assert "STEP 1/2: FROM scratch" in err


def test_redact_scrubs_the_echo_and_the_failure(capfd: pytest.CaptureFixture[str]) -> None:
    def hide(text: str) -> str:
        return text.replace("s3cret", "***")

    code = "import sys; sys.stderr.write('bad s3cret\\n'); sys.exit(2)"
    with pytest.raises(CommandFailed) as info:
        Runner(echo=True).run([sys.executable, "-c", code, "s3cret"], redact=hide)
    _out, err = capfd.readouterr()
    assert "s3cret" not in err and "+ " in err and "***" in err
    assert "s3cret" not in info.value.message and "s3cret" not in info.value.stderr
    result = Runner().run([sys.executable, "-c", code], redact=hide, check=False)
    assert result.stderr == "bad ***\n"


def test_stdout_keeps_the_childs_exact_bytes() -> None:
    # A registry manifest is hashed as sent: CRLF and odd bytes must survive.

    sent = b'{\r\n  "a": 1\r\n}\rtail\xff\n'
    code = f"import sys; sys.stdout.buffer.write({sent!r})"
    result = Runner(echo=False).run([sys.executable, "-c", code])
    assert result.stdout.encode("utf-8", "surrogateescape") == sent
    assert result.stdout.startswith("{\r\n")


def test_input_and_stderr_are_text() -> None:

    code = "import sys; data = sys.stdin.read(); sys.stderr.write('got ' + data); sys.exit(3)"
    result = Runner(echo=False).run([sys.executable, "-c", code], input="é\r\n", check=False)
    assert result.returncode == 3 and result.stderr == "got é\r\n"
