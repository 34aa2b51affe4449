"""Init settings from CODEBASE_MCP_INIT_*; CLI values win over the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codebase_mcp.init.settings import InitSettings


def test_defaults() -> None:
    settings = InitSettings()
    assert settings.deadline == 60.0
    assert settings.log_format == "text"
    assert settings.migrate is True


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBASE_MCP_INIT_DEADLINE", "12.5")
    monkeypatch.setenv("CODEBASE_MCP_INIT_MIGRATE", "false")
    monkeypatch.setenv("CODEBASE_MCP_INIT_LOG_FORMAT", "json")
    settings = InitSettings()
    assert (settings.deadline, settings.migrate, settings.log_format) == (12.5, False, "json")
    assert InitSettings(deadline=3.0).deadline == 3.0  # what the CLI passes


def test_invalid_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        InitSettings(deadline=0)
    with pytest.raises(ValidationError, match="backoff_max"):
        InitSettings(backoff_base=2.0, backoff_max=1.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_PORT": "abc"}, "invalid DATABASE_PORT"),
        ({"CODEBASE_MCP_INIT_LOG_FORMAT": "xml"}, "invalid CODEBASE_MCP_INIT_LOG_FORMAT"),
        ({"CODEBASE_MCP_INIT_BACKOFF_BASE": "9"}, "backoff_max (5.0) must be >= backoff_base"),
    ],
)
def test_cli_names_the_variable_to_fix(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    from codebase_mcp.cli import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        main(["init", "--", "true"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_each_init_option_is_declared_once_and_shown_everywhere() -> None:
    """InitConfig is the one table: the click options and the model come from it."""
    import dataclasses

    import click

    from codebase_mcp.cli.init import init as command
    from codebase_mcp.init.config import InitConfig

    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    fields = dataclasses.fields(InitConfig)
    assert list(options) == [f.name for f in fields]
    for field in fields:
        help_text = field.metadata["help"]
        assert help_text and "\n" not in help_text, field.name
        env = f"CODEBASE_MCP_INIT_{field.name.upper()}"
        assert options[field.name].help.startswith(help_text), field.name  # type: ignore[union-attr]
        assert f"[env: {env}; default: " in options[field.name].help, field.name  # type: ignore[operator]
        assert InitSettings.model_fields[field.name].description == help_text
        assert InitSettings.model_fields[field.name].default == field.default
