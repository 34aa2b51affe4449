"""A pydantic-settings model derived from a settings mirror (:mod:`codebase_mcp.envconfig`).

For settings declared once as a mirror dataclass (:class:`codebase_mcp.init.config.InitConfig`):
the model has the same fields, types, defaults and bounds, the help as each field's
description, ``SecretStr`` for secrets, and the mirror's ``check()`` as its model
validator. The fast path reads the environment with the mirror; this model decides
what the mirror defers (unusual spellings, invalid values) and says why.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codebase_mcp.envconfig import Mirror, from_model


def settings_model(mirror: type[Mirror]) -> type[BaseSettings]:
    module, _, name = mirror.MODEL.partition(":")
    hints = typing.get_type_hints(mirror)
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {
        "__module__": module,
        "__qualname__": name,
        "__doc__": mirror.__doc__,
        "__annotations__": annotations,
        "model_config": SettingsConfigDict(env_prefix=mirror.PREFIX, extra="ignore"),
    }
    for field in dataclasses.fields(mirror):  # type: ignore[arg-type]
        meta = field.metadata
        annotations[field.name] = SecretStr | None if meta.get("secret") else hints[field.name]
        namespace[field.name] = Field(
            default=field.default, description=meta.get("help"), gt=meta.get("gt"),
            ge=meta.get("ge"),
        )  # fmt: skip
    check = getattr(mirror, "check", None)
    if check is not None:

        def _check(self: BaseSettings) -> BaseSettings:
            check(from_model(mirror, self))
            return self

        namespace["_check"] = model_validator(mode="after")(_check)
    model: type[BaseSettings] = type(name, (BaseSettings,), namespace)
    return model
