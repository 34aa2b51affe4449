"""A pydantic ValidationError at the CLI's edge is one line naming the field, exit 2."""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError

from codebase_mcp.cli.validation import usage_error


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from codebase_mcp.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )


def test_a_bad_pod_name_is_one_line_naming_the_field_and_the_usage_exit_code() -> None:
    result = run_cli("pod", "render", "--name", "BAD_Name")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "error: invalid name 'BAD_Name' (--name): pod name must be 1-40 lower-case letters, "
        "digits or '-', starting and ending with a letter or digit"
    )
    assert lines[1:] == ["hint: `codebase-mcp pod render --help` says what each option accepts"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_debug_still_shows_the_traceback() -> None:
    result = run_cli("--debug", "pod", "render", "--name", "BAD_Name")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "error: invalid name" in result.stderr


class Model(BaseModel):
    profile: Literal["dev", "prod"] = "prod"
    port: int = Field(default=1, ge=1)
    db_password: SecretStr | None = None


def error_for(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Model(**values)  # type: ignore[arg-type]
    usage = usage_error(caught.value, ["pod", "render", "--port=0"])
    assert usage is not None and usage.exit_code == 2
    return usage.message


def test_the_line_says_what_the_field_accepts() -> None:
    assert error_for(profile="qa") == "invalid profile 'qa': Input should be 'dev' or 'prod'"
    assert (
        error_for(port=0) == "invalid port 0 (--port): Input should be greater than or equal to 1"
    )
    assert error_for(port=0, profile="qa").endswith("(and 1 more)")


def test_a_secret_value_is_never_shown() -> None:
    message = error_for(db_password=12345)
    assert "12345" not in message and message.startswith("invalid db_password: ")


def test_other_errors_are_left_alone() -> None:
    assert usage_error(ValueError("x"), []) is None
