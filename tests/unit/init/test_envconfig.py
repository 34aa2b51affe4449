"""The stdlib settings mirrors (envconfig) agree with the pydantic models they stand for.

Two kinds of checks: the mirrors' structure (names, order, defaults, types, bounds,
model validators, the env-reading options) against the models' own metadata, and
behaviour: for every field and a corpus of good, odd and bad values, the mirror either
defers (``None``) or gives exactly what the model gives; bad values always defer, so the
CLI's errors are the model's errors.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import SecretStr, ValidationError

from codebase_mcp import envconfig
from codebase_mcp.envconfig import DatabaseConfig, EmbedderConfig, Mirror
from codebase_mcp.errors import ConfigError
from codebase_mcp.init.config import InitConfig
from codebase_mcp.init.settings import InitSettings
from codebase_mcp.settings import DatabaseSettings, EmbedderSettings

PAIRS: list[tuple[type[Any], type[Any]]] = [
    (InitConfig, InitSettings),
    (DatabaseConfig, DatabaseSettings),
    (EmbedderConfig, EmbedderSettings),
]
# The models' model_validators, each mirrored by hand in the mirror's consistent()
# (InitSettings is derived from InitConfig: its validator is InitConfig.check).
MIRRORED_VALIDATORS = {
    InitSettings: {"_check"},
    DatabaseSettings: {"_password_file_readable"},
    EmbedderSettings: set(),
}
PREFIXES = tuple(mirror.PREFIX for mirror, _ in PAIRS)

# --- structure ---------------------------------------------------------------------------


def expected_kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    """What the mirror's field type must be, given the model's annotation."""
    if annotation in (float, int, bool, str):
        return annotation.__name__, ()
    if typing.get_origin(annotation) is typing.Literal:
        return "choice", typing.get_args(annotation)
    args = set(typing.get_args(annotation))
    if args == {SecretStr, type(None)}:
        return "optional_str", ()
    if args == {Path, type(None)}:
        return "optional_path", ()
    raise AssertionError(f"teach envconfig (and this test) the type {annotation!r}")


def bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            found["gt"] = item.gt
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        else:
            raise AssertionError(f"teach envconfig (and this test) the constraint {item!r}")
    return found


@pytest.mark.parametrize(("mirror", "model"), PAIRS, ids=lambda c: c.__name__)
def test_mirror_has_the_models_fields_defaults_types_and_bounds(
    mirror: type[Mirror], model: type[Any]
) -> None:
    fields = {f.name: f for f in dataclasses.fields(mirror)}  # type: ignore[arg-type]
    assert list(fields) == list(model.model_fields), "same fields, same order"
    kinds = envconfig.field_kinds(mirror)
    for name, info in model.model_fields.items():
        field = fields[name]
        assert field.default == info.default, name
        assert kinds[name] == expected_kind(info.annotation), name
        declared = {k: v for k, v in field.metadata.items() if k in ("gt", "ge")}
        assert declared == bounds(info.metadata), name
        assert info.alias is None and info.validation_alias is None, name
        if kinds[name][0] == "optional_str":  # a SecretStr: kept out of repr
            assert field.repr is False, name


@pytest.mark.parametrize(("mirror", "model"), PAIRS, ids=lambda c: c.__name__)
def test_mirror_reads_the_environment_as_the_model_is_configured(
    mirror: type[Mirror], model: type[Any]
) -> None:
    config = model.model_config
    assert config["env_prefix"] == mirror.PREFIX
    assert config["case_sensitive"] is False  # envconfig matches names without case
    assert config["env_ignore_empty"] is False  # "" is a value, not "unset"
    assert config.get("env_parse_none_str") is None
    assert config.get("env_nested_delimiter") is None
    assert config.get("env_file") is None  # no .env file is read
    assert config.get("secrets_dir") is None
    assert config["extra"] == "ignore"
    decorators = model.__pydantic_decorators__
    assert set(decorators.model_validators) == MIRRORED_VALIDATORS[model]
    assert not decorators.field_validators
    assert envconfig.model_class(mirror) is model


# --- behaviour ---------------------------------------------------------------------------

FLOATS = [
    "12.5", "12", "0.2", "5", "10.000", "0", "0.0", "-1", "1e3", " 12 ", "inf", "nan", "",
    "abc", "1_0", ".5", "5.", "+5", "0x10", "\u0663", "\uff11\uff12", "1.5.2",
    "9" * 30, "0.000000000000000000001",
]  # fmt: skip
INTS = [
    "5432", "0", "05432", "1", " 5432", "5432.0", "+1", "-1", "", "abc", "\u0663", "9" * 30,
    "1_000",
]  # fmt: skip
BOOLS = [
    "true", "True", "TRUE", "tRuE", "1", "yes", "YES", "on", "On", "t", "T", "y", "Y",
    "false", "False", "0", "no", "NO", "off", "f", "n", "N", "", " true", "true ", "2",
    "truee", "\u0130", "none", "null",
]  # fmt: skip
CHOICES = ["json", "text", "JSON", "Text", " json", "", "xml"]
STRINGS = ["", " x ", "h\u00fcst", "a=b c", "postgresql://u:p%40ss@h:1/d?sslmode=disable"]
PATHS = ["", "/tmp/x", "rel/path", "a/../b/", ".", "~/m"]
CORPUS = {
    "float": FLOATS,
    "int": INTS,
    "bool": BOOLS,
    "choice": CHOICES,
    "str": STRINGS,
    "optional_str": STRINGS,
    "optional_path": PATHS,
}
# Values the mirror must take itself (else the fast path would not be fast).
CANONICAL = {"12.5", "12", "0.2", "5", "10.000", "5432", "05432", "1", "true", "TRUE", "no"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith(PREFIXES):
            monkeypatch.delenv(key)
    return monkeypatch


def outcomes(
    monkeypatch: pytest.MonkeyPatch,
    mirror: type[Mirror],
    model: type[Any],
    env: dict[str, str],
    given: dict[str, object] | None = None,
) -> tuple[Mirror | None, Mirror | str]:
    """(the mirror read from env, the model's answer as a mirror or its error text)."""
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        fast = envconfig.from_env(mirror, os.environ, given)
        try:
            slow: Mirror | str = envconfig.from_model(mirror, model(**(given or {})))
        except (ValidationError, ConfigError) as exc:
            slow = f"error: {exc}"
    return fast, slow


def cases() -> Iterator[tuple[type[Any], type[Any], str, str]]:
    for mirror, model in PAIRS:
        for name, (kind, _) in envconfig.field_kinds(mirror).items():
            for value in CORPUS[kind]:
                yield mirror, model, name, value


@pytest.mark.parametrize(("mirror", "model", "name", "value"), list(cases()))
def test_every_value_reads_as_the_model_reads_it_or_defers(
    clean_env: pytest.MonkeyPatch, mirror: type[Mirror], model: type[Any], name: str, value: str
) -> None:
    fast, slow = outcomes(clean_env, mirror, model, {mirror.PREFIX + name.upper(): value})
    if fast is not None:
        assert slow == fast  # the same values: never an error the model would have raised
    kind = envconfig.field_kinds(mirror)[name][0]
    if (value in CANONICAL or kind in ("str", "optional_str")) and not isinstance(slow, str):
        assert fast is not None, "a valid canonical spelling must not need pydantic"


def test_the_corpus_has_bad_values_and_they_all_defer(clean_env: pytest.MonkeyPatch) -> None:
    # Guard against a vacuous corpus: enough values the model rejects, all left to it.
    errors = 0
    for mirror, model, name, value in cases():
        fast, slow = outcomes(clean_env, mirror, model, {mirror.PREFIX + name.upper(): value})
        if isinstance(slow, str):
            errors += 1
            assert fast is None, (name, value)
    assert errors > 40


def test_defaults_match(clean_env: pytest.MonkeyPatch) -> None:
    for mirror, model in PAIRS:
        fast, slow = outcomes(clean_env, mirror, model, {})
        assert fast is not None
        assert fast == slow == mirror()


def test_names_are_case_insensitive_and_the_last_spelling_wins(
    clean_env: pytest.MonkeyPatch,
) -> None:
    fast, slow = outcomes(clean_env, InitConfig, InitSettings, {"codebase_mcp_init_Deadline": "7"})
    assert fast == slow and fast is not None and fast.deadline == 7.0
    env = {"DATABASE_HOST": "first", "database_host": "second"}
    fast, slow = outcomes(clean_env, DatabaseConfig, DatabaseSettings, env)
    assert fast == slow and fast is not None
    assert fast.host == "second"  # os.environ keeps insertion order


def test_model_validators_are_mirrored(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {"CODEBASE_MCP_INIT_BACKOFF_BASE": "9"}
    fast, slow = outcomes(clean_env, InitConfig, InitSettings, env)
    assert fast is None and "backoff_max (5.0) must be >= backoff_base (9.0)" in str(slow)
    env = {"CODEBASE_MCP_INIT_BACKOFF_BASE": "5", "CODEBASE_MCP_INIT_BACKOFF_MAX": "5"}
    fast, slow = outcomes(clean_env, InitConfig, InitSettings, env)
    assert fast is not None and fast == slow

    secret = tmp_path / "db-password"
    secret.write_text("s3cret p@ss\n")
    for value, ok in [(str(secret), True), (str(tmp_path / "nope"), False), (str(tmp_path), False)]:
        fast, slow = outcomes(
            clean_env, DatabaseConfig, DatabaseSettings, {"DATABASE_PASSWORD_FILE": value}
        )
        assert (fast is not None) is ok, value
        if ok:
            assert fast == slow
        else:
            assert slow == f"error: DATABASE_PASSWORD_FILE={value} does not exist"


def test_password_file_gives_the_models_dsn_and_stays_out_of_repr(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("s3cret p@ss/x\n")
    env = {"DATABASE_PASSWORD_FILE": str(secret), "DATABASE_USER": "me@x", "DATABASE_NAME": "d b"}
    with clean_env.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        fast = envconfig.from_env(DatabaseConfig, os.environ)
        model = DatabaseSettings()
    assert fast is not None
    assert (
        fast.dsn() == model.dsn() == "postgresql://me%40x:s3cret%20p%40ss%2Fx@127.0.0.1:5432/d%20b"
    )
    assert fast.redacted() == model.redacted()
    assert fast.resolved_password() == model.resolved_password() == "s3cret p@ss/x"
    url = DatabaseConfig(url="postgresql://u:hunter2@h/db", password="hunter3")
    assert "hunter" not in repr(url)
    assert url.redacted() == "postgresql://u:***@h/db"


GIVEN = [
    {"deadline": 3.0},
    {"deadline": 0.0},
    {"deadline": float("inf")},
    {"deadline": float("nan")},
    {"deadline": 3},  # an int: not what click passes, pydantic decides
    {"grace_period": 0.0},
    {"backoff_base": 2.0, "backoff_max": 1.0},
    {"log_format": "json"},
    {"log_format": "xml"},
    {"migrate": False, "wait_embedder": False},
    {"migrate": 0},
    {"migrations": Path("/tmp")},
    {"migrations": "/tmp"},
]


@pytest.mark.parametrize("given", GIVEN, ids=str)
def test_cli_values_win_and_read_as_the_model_reads_them(
    clean_env: pytest.MonkeyPatch, given: dict[str, object]
) -> None:
    env = {"CODEBASE_MCP_INIT_DEADLINE": "20", "CODEBASE_MCP_INIT_LOG_FORMAT": "text"}
    fast, slow = outcomes(clean_env, InitConfig, InitSettings, env, given)
    if fast is not None:
        assert fast == slow
        for key, value in given.items():
            assert getattr(fast, key) == value


def test_cli_reports_the_models_error_for_a_value_the_mirror_defers(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from codebase_mcp.cli import main

    missing = tmp_path / "missing-secret"
    clean_env.setenv("DATABASE_PASSWORD_FILE", str(missing))
    with pytest.raises(SystemExit) as info:
        main(["init", "--no-wait-embedder", "--", "true"])
    assert info.value.code == 2
    assert f"error: DATABASE_PASSWORD_FILE={missing} does not exist" in capsys.readouterr().err


def test_odd_but_valid_spellings_still_work_through_the_model(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # " 1e1 " is not canonical: the mirror defers and the model reads it as ever.
    fast, slow = outcomes(
        clean_env, InitConfig, InitSettings, {"CODEBASE_MCP_INIT_DEADLINE": " 1e1 "}
    )
    assert fast is None
    assert isinstance(slow, InitConfig) and slow.deadline == 10.0


def test_init_start_up_imports_no_pydantic(tmp_path: Path) -> None:
    # The point of the mirrors: `init` with valid settings never imports pydantic.
    started = tmp_path / "started"
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith(PREFIXES)}
    env.update(PYTHONPROFILEIMPORTTIME="1", CODEBASE_MCP_INIT_DEADLINE="30", EMBEDDER_PULL="no")
    cli = str(Path(sys.executable).with_name("codebase-mcp"))
    argv = [cli, "init", "--no-wait-database", "--no-wait-embedder", "--no-migrate"]
    done = subprocess.run(
        [*argv, "--", "touch", str(started)], env=env, capture_output=True, text=True, check=True
    )
    assert started.exists()
    imported = {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "codebase_mcp.init.supervisor" in imported  # the profile is really there
    assert not {m for m in imported if m.split(".")[0] in {"pydantic", "pydantic_settings"}}
