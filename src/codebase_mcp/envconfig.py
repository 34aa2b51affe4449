"""The settings models' environment variables, read with the stdlib only (for start-up paths).

Why: importing pydantic and pydantic-settings was the largest part of the init's
start-up, 42 % of its imports (docs/init.md, "Start-up time"). Each settings model has
a frozen dataclass *mirror* (same field names in the same order, same defaults, the
models' ``gt``/``ge`` bounds in the field metadata). The init's own settings are
declared once, as their mirror (:class:`codebase_mcp.init.config.InitConfig`, fields made
with :func:`setting`): their pydantic model and click options are derived from it. The
shared ``DATABASE_*``/``EMBEDDER_*`` models (:mod:`codebase_mcp.settings`, used typed by
the server) are declared as models, and ``tests/unit/init/test_envconfig.py`` fails as
soon as one of their mirrors disagrees.

The reader is deliberately narrow: it takes only canonical spellings (``12.5``,
``5432``, ``true``/``no``/..., one of the listed choices) and checks the models'
constraints. Anything else (``1e3``, `` 12 ``, a bound violated, a missing password
file, an unexpected type from the CLI) makes :func:`from_env` answer ``None``, and the
caller builds the pydantic model instead: it parses the unusual spelling as it always
did, or raises the very error it raised before. A value therefore gives exactly what
pydantic gives, either because both read it the same way or because pydantic read it.

Like pydantic-settings (``case_sensitive=False``), variable names are matched without
regard to case, and the last of several spellings in ``os.environ`` wins.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_MAX_DIGITS = 18  # longer numbers go to pydantic (no float/int overflow corner cases here)


class Mirror(Protocol):
    """A dataclass mirroring a pydantic-settings model (see the module docstring)."""

    PREFIX: ClassVar[str]  # the model's env_prefix
    MODEL: ClassVar[str]  # "module:Class" of the pydantic model, imported only on fallback
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def consistent(self) -> bool:
        """The model's model_validators, as a yes/no: False sends the caller to pydantic."""
        ...


M = TypeVar("M", bound=Mirror)


class _Defer(Exception):
    """This value needs pydantic: an unusual spelling, or invalid (pydantic says why)."""


def setting(
    default: Any,
    help: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    default_text: str | None = None,
    secret: bool = False,
) -> Any:
    """A mirror field that declares a setting once: default, help, bounds, secrecy.

    ``help`` is one line (the click option's help, the model field's description);
    ``default_text`` replaces the default where it is shown; a ``secret`` is kept out
    of repr and becomes a ``SecretStr`` in a derived model.
    """
    metadata: dict[str, Any] = {"help": help}
    if gt is not None:
        metadata["gt"] = gt
    if ge is not None:
        metadata["ge"] = ge
    if default_text is not None:
        metadata["default_text"] = default_text
    if secret:
        metadata["secret"] = True
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def shown_default(field: dataclasses.Field[Any]) -> str:
    """A field's default as help texts and ``.env`` templates show it."""
    if "default_text" in field.metadata:
        return str(field.metadata["default_text"])
    value = field.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def in_bounds(value: object, metadata: Mapping[str, Any]) -> bool:
    """Whether ``value`` meets a field's ``gt``/``ge`` (the model's bounds)."""
    return _in_bounds(value, metadata)


def read_float(text: str) -> float | None:
    """``text`` as a float when it is a canonical decimal (``12``, ``0.5``), else ``None``."""
    try:
        return _float(text)
    except _Defer:
        return None


def _float(text: str) -> float:
    whole, dot, fraction = text.partition(".")
    digits = whole + fraction
    if not (whole and (fraction or not dot) and digits.isascii() and digits.isdigit()):
        raise _Defer
    if len(digits) > _MAX_DIGITS:
        raise _Defer
    return float(text)


def _int(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        raise _Defer
    return int(text)


def _bool(text: str) -> bool:
    if text.isascii():
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise _Defer


def _kind(hint: Any) -> tuple[str, tuple[str, ...]]:
    """(kind, choices) of a mirror's field type: the few types the mirrors use."""
    if hint in (float, int, bool, str):
        return hint.__name__, ()
    if typing.get_origin(hint) is Literal:
        return "choice", tuple(typing.get_args(hint))
    args = set(typing.get_args(hint))
    if args == {str, type(None)}:
        return "optional_str", ()
    if args == {Path, type(None)}:
        return "optional_path", ()
    raise TypeError(f"envconfig cannot read a field of type {hint!r}")


def field_kinds(cls: type[Mirror]) -> dict[str, tuple[str, tuple[str, ...]]]:
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints[f.name]) for f in dataclasses.fields(cls)}


def _parse(kind: str, choices: tuple[str, ...], text: str) -> object:
    if kind == "float":
        return _float(text)
    if kind == "int":
        return _int(text)
    if kind == "bool":
        return _bool(text)
    if kind in ("str", "optional_str"):
        return text  # pydantic keeps str values as they are (no stripping)
    if kind == "choice":
        if text in choices:
            return text
        raise _Defer
    if kind == "optional_path" and text:
        return Path(text)
    raise _Defer  # e.g. an empty path: pydantic decides


def _check_given(kind: str, choices: tuple[str, ...], value: object) -> object:
    """A value the CLI already typed (click) is taken when it has exactly the field's type."""
    expected: dict[str, type | tuple[type, ...]] = {
        "float": float,
        "int": int,
        "bool": bool,
        "str": str,
        "optional_str": str,
        "optional_path": Path,
        "choice": str,
    }
    if type(value) is bool and kind != "bool":
        raise _Defer
    if not isinstance(value, expected[kind]) or (kind == "choice" and value not in choices):
        raise _Defer
    return value


def _in_bounds(value: object, metadata: Mapping[str, Any]) -> bool:
    if "gt" not in metadata and "ge" not in metadata:
        return True
    assert isinstance(value, (int, float))
    if "gt" in metadata and not value > metadata["gt"]:
        return False
    return not ("ge" in metadata and not value >= metadata["ge"])


def from_env(
    cls: type[M], environ: Mapping[str, str], given: Mapping[str, object] | None = None
) -> M | None:
    """The mirror read from ``environ``, ``given`` (CLI options) first; ``None``: ask pydantic."""
    given = given or {}
    env = {key.lower(): value for key, value in environ.items()}
    prefix = cls.PREFIX.lower()
    values: dict[str, object] = {}
    kinds = field_kinds(cls)
    for field in dataclasses.fields(cls):
        kind, choices = kinds[field.name]
        try:
            if field.name in given:
                value = _check_given(kind, choices, given[field.name])
            elif prefix + field.name in env:
                value = _parse(kind, choices, env[prefix + field.name])
            else:
                continue  # the default
        except _Defer:
            return None
        if not _in_bounds(value, field.metadata):
            return None
        values[field.name] = value
    config = cls(**values)
    return config if config.consistent() else None


def from_model(cls: type[M], model: object) -> M:
    """The mirror of a built pydantic model (secrets unwrapped: the mirror hides them)."""
    values: dict[str, object] = {}
    for field in dataclasses.fields(cls):
        value = getattr(model, field.name)
        get_secret = getattr(value, "get_secret_value", None)
        values[field.name] = get_secret() if callable(get_secret) else value
    return cls(**values)


def model_class(cls: type[Mirror]) -> type[Any]:
    """The pydantic model a mirror stands for (imports pydantic: only on the fallback path)."""
    module, _, name = cls.MODEL.partition(":")
    model: type[Any] = getattr(importlib.import_module(module), name)
    return model


# --- mirrors of codebase_mcp.settings ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    """Mirror of :class:`codebase_mcp.settings.DatabaseSettings`; secrets kept out of repr."""

    PREFIX: ClassVar[str] = "DATABASE_"
    MODEL: ClassVar[str] = "codebase_mcp.settings:DatabaseSettings"

    url: str | None = dataclasses.field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "codebase"
    name: str = "codebase"
    password: str | None = dataclasses.field(default=None, repr=False)
    password_file: Path | None = None

    def consistent(self) -> bool:
        # DatabaseSettings._password_file_readable raises ConfigError otherwise.
        return self.password_file is None or self.password_file.is_file()

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password

    def dsn(self) -> str:
        """The libpq/asyncpg DSN, password included: never log this (use :meth:`redacted`)."""
        if self.url is not None:
            return self.url
        return dsn_from_parts(self.host, self.port, self.user, self.name, self.resolved_password())

    def redacted(self) -> str:
        return redact_dsn(self.dsn())


@dataclasses.dataclass(frozen=True)
class EmbedderConfig:
    """Mirror of :class:`codebase_mcp.settings.EmbedderSettings`."""

    PREFIX: ClassVar[str] = "EMBEDDER_"
    MODEL: ClassVar[str] = "codebase_mcp.settings:EmbedderSettings"

    url: str = "http://127.0.0.1:11434"
    model: str = "all-minilm"
    pull: bool = False
    timeout: float = 60.0

    def consistent(self) -> bool:
        return True


def dsn_from_parts(host: str, port: int, user: str, name: str, password: str | None) -> str:
    """``postgresql://user[:password]@host:port/name``, user, password and name URL-quoted."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{host}:{port}/{quote(name, safe='')}"


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
