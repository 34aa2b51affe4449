"""``codebase-mcp init`` (the server image's ENTRYPOINT) and ``codebase-mcp health`` (its probe).

Only click is imported at module level: ``health`` runs as an exec probe every
few seconds and must start fast, and ``init`` pays only for what it uses. The
init's body lives in :mod:`codebase_mcp.cli.initcmd`, which ``main`` also runs
without click when the command line is a plain one (start-up time). The init's
options are derived from :class:`codebase_mcp.init.config.InitConfig`, their one
declaration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from codebase_mcp.errors import HealthCheckFailed


def _init_options(command: Callable[..., None]) -> Callable[..., None]:
    """One click option per field of :class:`InitConfig`, in its order (the one declaration)."""
    from codebase_mcp.envconfig import field_kinds, shown_default
    from codebase_mcp.init.config import InitConfig

    kinds = field_kinds(InitConfig)
    for field in reversed(dataclasses.fields(InitConfig)):
        kind, choices = kinds[field.name]
        flag = "--" + field.name.replace("_", "-")
        env = f"[env: {InitConfig.PREFIX}{field.name.upper()}; default: {shown_default(field)}]"
        kwargs: dict[str, Any] = {"help": f"{field.metadata['help']} {env}"}
        decls = [flag]
        if kind == "bool":
            decls = [f"{flag}/--no-{flag[2:]}"]
            kwargs["default"] = None
        elif kind == "float":
            bound = field.metadata.get("gt", field.metadata.get("ge"))
            kwargs["type"] = click.FloatRange(min=bound, min_open="gt" in field.metadata)
        elif kind == "choice":
            kwargs["type"] = click.Choice(list(choices))
        elif kind == "optional_path":
            kwargs["type"] = click.Path(exists=True, file_okay=False, path_type=Path)
        else:
            raise TypeError(f"no click option for {field.name} ({kind})")
        command = click.option(*decls, field.name, **kwargs)(command)
    return command


@click.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
@_init_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def init(command: tuple[str, ...], **options: Any) -> None:
    """Wait for Postgres and the embedder, migrate, then run COMMAND and supervise it.

    \b
    codebase-mcp init [OPTIONS] -- codebase-mcp serve --transport http

    As PID 1 it forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT (and SIGUSR1/2, SIGWINCH)
    to COMMAND, reaps orphaned processes and exits with COMMAND's exit code
    (128+N when it died of signal N). Without COMMAND it exits 0 after migrating.
    Exit codes of its own: 3 Postgres not ready, 9 embedder not ready, 7 migration
    failed, 127 COMMAND cannot be started; see docs/init.md.
    """
    from codebase_mcp.cli.initcmd import run

    run(command, options)


def health_url(port: str | None) -> str:
    return f"http://127.0.0.1:{port or '8000'}/health"


def unhealthy_reason(payload: object) -> str:
    """A one-line summary of a /health body whose status is not ``ok``."""
    if not isinstance(payload, dict):
        return f"unexpected answer {str(payload)[:120]!r}"
    parts = [f"status={payload.get('status')!r}"]
    for key in ("database", "embedder"):
        part = payload.get(key)
        if isinstance(part, dict) and part.get("status") != "ok":
            detail = str(part.get("status", "?"))
            if part.get("error"):
                detail += f" ({' '.join(str(part['error']).split())[:160]})"
            parts.append(f"{key}: {detail}")
    return ", ".join(parts)


@click.command()
@click.option(
    "--url",
    envvar="CODEBASE_MCP_HEALTH_URL",
    help="Health endpoint. [env: CODEBASE_MCP_HEALTH_URL; default: "
    "http://127.0.0.1:${CODEBASE_MCP_PORT:-8000}/health]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
def health(url: str | None, timeout: float) -> None:
    """Exit 0 when the server answers GET /health with 200 and status "ok".

    Otherwise exit 8 with a one-line reason. Meant as an exec liveness/health
    probe: no curl needed, and it imports nothing heavy.
    """
    import json
    import os
    import urllib.error
    import urllib.request

    target = url or health_url(os.environ.get("CODEBASE_MCP_PORT"))
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310
            code, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HealthCheckFailed(f"server at {target} unreachable: {reason}") from exc
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HealthCheckFailed(f"server at {target} answered HTTP {code}, not JSON") from exc
    status = payload.get("status") if isinstance(payload, dict) else None
    if code != 200 or status != "ok":
        raise HealthCheckFailed(f"server at {target} HTTP {code}: {unhealthy_reason(payload)}")
    click.echo("ok")
