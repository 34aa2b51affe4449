"""`codebase-mcp config`: every setting with its variable, default, value and help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebase_mcp import configref
from codebase_mcp.cli import main
from codebase_mcp.server.config import ServerSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_env_example_is_the_commands_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["config", "--env"])
    assert capsys.readouterr().out == (REPO / "docs/env.example").read_text(), (
        "regenerate it: .venv/bin/codebase-mcp config --env > docs/env.example"
    )


def test_every_setting_has_help_and_appears_once() -> None:
    settings = [s for g in configref.groups() for s in g.settings]
    assert all(s.help.strip() for s in settings), [s.env for s in settings if not s.help]
    names = [s.env for s in settings]
    assert len(names) == len(set(names))
    for expected in (
        "CODEBASE_MCP_INIT_DEADLINE",
        "DATABASE_PASSWORD",
        "CODEBASE_MCP_POD",
        "EMBEDDER_MAX_BATCH",
        "CODEBASE_MCP_SEARCH_MODE",
        "CODEBASE_MCP_DATA_DIR",
    ):
        assert expected in names  # fmt: skip


def test_server_help_entries_are_for_fields_that_exist() -> None:
    assert set(configref.SERVER_HELP) <= set(ServerSettings.model_fields), "a field is gone"


def test_current_values_are_shown_and_secrets_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD", "hunter2")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter3@db:5432/x")
    monkeypatch.setenv("codebase_mcp_init_deadline", "7")  # any case, as pydantic reads it
    main(["config"])
    out = capsys.readouterr().out
    assert "hunter" not in out
    assert "  DATABASE_PASSWORD = ***  (set; default unset)" in out
    assert "  DATABASE_URL = postgresql://u:***@db:5432/x  (set; default unset)" in out
    assert "  CODEBASE_MCP_INIT_DEADLINE = 7  (set; default 60)" in out
    assert "  CODEBASE_MCP_INIT_GRACE_PERIOD = 10  (default)" in out
    main(["config", "--json"])
    data = {s["env"]: s for s in json.loads(capsys.readouterr().out)["settings"]}
    assert data["DATABASE_PASSWORD"]["value"] == "***" and data["DATABASE_PASSWORD"]["secret"]
    assert data["CODEBASE_MCP_INIT_DEADLINE"] == {
        "group": "init", "env": "CODEBASE_MCP_INIT_DEADLINE", "default": "60", "value": "7",
        "secret": False, "help": "Seconds to wait for Postgres and the embedder together.",
    }  # fmt: skip
