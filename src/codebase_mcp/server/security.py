"""Who may talk to the HTTP endpoint: settings, the exposure rule, the pieces for FastMCP.

``codebase-mcp serve --transport http`` calls :func:`http_security` once; it
returns the FastMCP auth provider (a bearer-token verifier, or None) and the
ASGI middleware (the Host/Origin guard). Three rules, documented in
docs/security.md:

1. Host and Origin are checked on every request (:mod:`.hostguard`).
2. With a token configured, every ``/mcp`` request needs
   ``Authorization: Bearer <token>`` (:mod:`.tokenauth`); ``/health`` stays open.
3. Without a token the server serves only a *local* address: a loopback bind,
   or a bind on every interface inside a container whose runtime publishes it
   on loopback only, which the pod render says with
   ``CODEBASE_MCP_PUBLISHED_ON=127.0.0.1:PORT``. Anything else needs a token
   or ``--insecure-no-auth``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.middleware import Middleware

from codebase_mcp.errors import ConfigError
from codebase_mcp.server.hostguard import (
    HostOriginGuard,
    HostOriginPolicy,
    is_loopback,
    is_unspecified,
    parse_endpoints,
    split_list,
)
from codebase_mcp.server.tokenauth import BearerTokenVerifier, check_token, read_token_file

log = logging.getLogger("codebase_mcp.server.security")


class SecuritySettings(BaseSettings):
    """``CODEBASE_MCP_*`` settings of the HTTP endpoint's defences."""

    model_config = SettingsConfigDict(env_prefix="CODEBASE_MCP_", extra="ignore")

    allowed_hosts: str = Field(
        default="",
        description="more Host values to answer, comma separated (name, name:port, name:*, "
        "*.domain, [v6]:port; a bare name means any port); loopback names and the bind "
        "address on the port are always allowed",
    )
    allowed_origins: str = Field(
        default="",
        description="more browser origins to accept, comma separated "
        "(https://app.example.com, http://localhost:*, or *); requests without Origin pass",
    )
    auth_token_file: Path | None = Field(
        default=None,
        description="file holding the bearer token every /mcp request then needs "
        "(serve --auth-token-file)",
    )
    auth_token: SecretStr | None = Field(
        default=None,
        description="the token itself, for runtimes that pass a secret only as an "
        "environment variable (podman 4.3 kube play); prefer the file",
    )
    published_on: str = Field(
        default="",
        description="ADDRESS:PORT pairs a container runtime publishes this server on (the "
        "pod render sets it); loopback only: a 0.0.0.0 bind counts as local",
    )
    insecure_no_auth: bool = Field(
        default=False,
        description="serve a non-local address without a token (serve --insecure-no-auth; "
        "only behind a proxy that authenticates)",
    )


def load_token(settings: SecuritySettings) -> SecretStr | None:
    if settings.auth_token_file is not None and settings.auth_token is not None:
        raise ConfigError(
            "both CODEBASE_MCP_AUTH_TOKEN_FILE (or --auth-token-file) and "
            "CODEBASE_MCP_AUTH_TOKEN are set",
            hint="keep one of them: the file is the safer choice",
        )
    if settings.auth_token_file is not None:
        return read_token_file(settings.auth_token_file)
    if settings.auth_token is not None:
        return check_token(
            settings.auth_token.get_secret_value().strip(), "CODEBASE_MCP_AUTH_TOKEN"
        )
    return None


def is_local(bind_host: str, published: list[tuple[str, int]]) -> bool:
    """Only this machine can reach the server (see the module's rule 3)."""
    if is_loopback(bind_host):
        return True
    return (
        is_unspecified(bind_host)
        and bool(published)
        and all(is_loopback(address) for address, _ in published)
    )


def check_exposure(
    bind_host: str, port: int, published: list[tuple[str, int]], *, token: bool, insecure: bool
) -> None:
    """Refuse a reachable address without a token, unless told it is on purpose."""
    if token or is_local(bind_host, published):
        return
    where = f"{bind_host}:{port}" + (
        f" (published on {', '.join(f'{a}:{p}' for a, p in published)})" if published else ""
    )
    if insecure:
        log.warning(
            "serving %s without authentication (--insecure-no-auth): anyone who reaches it "
            "can read every indexed repository",
            where,
        )
        return
    raise ConfigError(
        f"refusing to serve {where} without an auth token: anyone who can reach it could read "
        "every indexed repository",
        hint="set CODEBASE_MCP_AUTH_TOKEN_FILE (or --auth-token-file), or listen on "
        "127.0.0.1 (--host 127.0.0.1), or pass --insecure-no-auth when a proxy in front "
        "authenticates; see docs/security.md",
    )


@dataclass(frozen=True)
class HttpSecurity:
    auth: BearerTokenVerifier | None
    policy: HostOriginPolicy
    local: bool

    @property
    def middleware(self) -> list[Middleware]:
        return [Middleware(HostOriginGuard, policy=self.policy)]


def http_security(settings: SecuritySettings, *, bind_host: str, port: int) -> HttpSecurity:
    """Everything ``serve --transport http`` needs, or ConfigError saying what to fix."""
    published = parse_endpoints(settings.published_on, "CODEBASE_MCP_PUBLISHED_ON")
    token = load_token(settings)
    check_exposure(
        bind_host, port, published, token=token is not None, insecure=settings.insecure_no_auth
    )
    policy = HostOriginPolicy.build(
        bind_host=bind_host,
        port=port,
        published=published,
        extra_hosts=split_list(settings.allowed_hosts),
        extra_origins=split_list(settings.allowed_origins),
    )
    log.info(
        "HTTP security: auth %s; Host one of %s; Origin absent or one of %s",
        "bearer token" if token else "off",
        ", ".join(str(h) for h in policy.hosts),
        ", ".join(str(o) for o in policy.origins),
    )
    return HttpSecurity(
        auth=BearerTokenVerifier(token) if token else None,
        policy=policy,
        local=is_local(bind_host, published),
    )
