"""Runtime settings shared by the server, the init process and `health`, read from the environment.

Secrets come from files (``*_FILE``, as Kubernetes/podman secrets are mounted)
or the environment; they are held as ``SecretStr`` so they never print.

The init reads the same variables without pydantic through the dataclass mirrors in
:mod:`codebase_mcp.envconfig` (start-up time): a field added or changed here must be
mirrored there, which ``tests/unit/init/test_envconfig.py`` enforces.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codebase_mcp.envconfig import dsn_from_parts, redact_dsn
from codebase_mcp.errors import ConfigError

__all__ = ["DatabaseSettings", "EmbedderSettings", "redact_dsn"]


class DatabaseSettings(BaseSettings):
    """Where Postgres is: DATABASE_URL, or its parts with the password from a file."""

    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:pass@host:port/db; when set, the parts below are unused",
    )
    host: str = Field(default="127.0.0.1", description="Postgres host")
    port: int = Field(default=5432, description="Postgres port")
    user: str = Field(default="codebase", description="database user")
    name: str = Field(default="codebase", description="database name")
    password: SecretStr | None = Field(
        default=None, description="the user's password (prefer DATABASE_PASSWORD_FILE)"
    )
    password_file: Path | None = Field(
        default=None, description="file holding the password (a mounted secret)"
    )

    @model_validator(mode="after")
    def _password_file_readable(self) -> DatabaseSettings:
        if self.password_file is not None and not self.password_file.is_file():
            raise ConfigError(
                f"DATABASE_PASSWORD_FILE={self.password_file} does not exist",
                hint="mount the database secret there or unset DATABASE_PASSWORD_FILE",
            )
        return self

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password.get_secret_value() if self.password else None

    def dsn(self) -> str:
        """The libpq/asyncpg DSN, password included: never log this (use :meth:`redacted`)."""
        if self.url is not None:
            return self.url.get_secret_value()
        return dsn_from_parts(self.host, self.port, self.user, self.name, self.resolved_password())

    def redacted(self) -> str:
        return redact_dsn(self.dsn())


class EmbedderSettings(BaseSettings):
    """Where the Ollama-API embedder is and which model to use."""

    model_config = SettingsConfigDict(env_prefix="EMBEDDER_", extra="ignore")

    url: str = Field(default="http://127.0.0.1:11434", description="the Ollama-API embedder")
    model: str = Field(default="all-minilm", description="embedding model to ask it for")
    pull: bool = Field(default=False, description="init: POST /api/pull when the model is missing")
    timeout: float = Field(default=60.0, description="seconds per embedding request")
