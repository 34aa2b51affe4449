"""Every setting of codebase-mcp, read from where it is declared: ``codebase-mcp config``.

Nothing is declared here. The groups come from the settings models (and the init's
one declaration, :class:`~codebase_mcp.init.config.InitConfig`) and from the click
options that read an environment variable; each setting has its variable, default,
current value (secrets redacted) and one line of help. ``config --env`` prints them as
a commented ``.env`` template, committed as ``docs/env.example``
(``tests/unit/test_config_cmd.py`` keeps the two equal).

The one exception: the help shown for the server's settings lives in :data:`SERVER_HELP`
(server/config.py's fields have no or terse descriptions; moving these lines there as
``description=`` would remove it). An entry wins over a field's description; the test
fails on a field with neither, and on an entry for a field that no longer exists.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import click
from pydantic import SecretStr

from codebase_mcp.envconfig import redact_dsn, shown_default

SERVER_HELP: dict[str, str] = {
    "host": "address the server listens on (in a container: 0.0.0.0, so the port publishes); "
    "not loopback: a token is needed, see the server-security group",
    "port": "port of the MCP endpoint (/mcp) and /health; `codebase-mcp health` probes it too",
    "max_file_bytes": "files larger than this are skipped when indexing",
    "max_chunk_chars": "longest chunk embedded (all-minilm reads 256 tokens at most)",
    "chunk_window_lines": "lines per chunk where no syntax boundary splits a file",
    "embed_batch_size": "chunks per embedding request",
    "embed_timeout": "seconds one embedding request may take",
    "embedder_urls": "several embedders, comma separated: index batches spread over the healthy "
    "ones, queries go to the least loaded, a dead one's batches are retried on another; "
    "overrides EMBEDDER_URL (empty: EMBEDDER_URL alone)",
    "embedder_backoff_max": "longest wait, in seconds, between health probes of an embedder "
    "that is down (the wait doubles from 0.5 s per failed probe)",
    "write_batch_files": "files written to Postgres per transaction",
    "defer_index_min_chunks": "a first index this large builds the HNSW index at the end "
    "(0: never)",
    "index_build_memory_mb": "maintenance_work_mem of that index build, MB",
    "embedding_cache_grace": "seconds an embedding-cache entry no chunk uses is kept",
    "embedding_cache_gc_interval": "seconds between the cache collections run after jobs",
    "workers": "indexing workers per server replica (0: this replica never indexes)",
    "poll_interval": "seconds between a worker's looks for queued jobs",
    "heartbeat_interval": "seconds between a running job's heartbeats",
    "stale_after": "a running job without a heartbeat this long is taken over",
    "max_attempts": "attempts of a job before it fails",
    "search_mode": "hybrid (vectors fused with BM25), vector or lexical (BM25 alone)",
    "ef_search": "hnsw.ef_search: candidates the vector index visits per search",
    "text_search_budget_ms": "time the full-text half of hybrid search may take; past it, "
    "vector-only (0: no limit)",
    "text_search_max_cost": "postings the BM25 half reads to select candidates (0: no cap)",
    "text_search_per_term": "postings of each query term the BM25 half reads, best first "
    "(impact order), for searches without a filter; the candidates are rescored exactly "
    "(0: the rarest terms within TEXT_SEARCH_MAX_COST select)",
    "max_limit": "most results one search_code call may ask for",
    "context_lines": "lines of context around each hit",
    "pool_min_size": "Postgres connections kept open",
    "pool_max_size": "most Postgres connections per replica",
    "git_hosts": "hosts git sources may name, comma separated (`host` allows any port, "
    "`host:port` that port only); empty: git sources are disabled",
    "git_protocols": "transports git may use, of https, ssh, http, git",
    "git_cache": "the cache of mirrors and checkouts (a volume shared by replicas). Default: "
    "$XDG_CACHE_HOME/codebase-mcp/git, else ~/.cache/codebase-mcp/git",
    "git_timeout": "seconds each git call may take",
    "git_ssh_key_file": "a mounted SSH private key for ssh:// and git@host:path URLs",
    "git_known_hosts_file": "the host keys ssh checks (unset: ssh's own default file)",
    "git_token_file": "a mounted file holding an https token (one line), read at every fetch",
    "git_token_scheme": "how the token is sent: basic (USER:TOKEN) or bearer",
    "git_token_user": "the user of basic token authentication",
}
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN)$", re.IGNORECASE)
_BRACKETS = re.compile(r"\s*\[(?:env|default)[^\]]*\]")


@dataclass(frozen=True)
class Setting:
    env: str
    default: str  # as shown ("" when there is none)
    help: str
    secret: bool = False
    case_sensitive: bool = False  # click reads its variables as spelled; pydantic ignores case


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    settings: tuple[Setting, ...]


def _model_settings(model: type[Any], prefix: str, help_for: Mapping[str, str]) -> list[Setting]:
    out = []
    for name, info in model.model_fields.items():
        default = None if info.default_factory is not None else info.default
        if isinstance(default, bool):
            shown = "true" if default else "false"
        elif isinstance(default, float):
            shown = f"{default:g}"
        else:
            shown = "" if default is None else str(default)
        secret = SecretStr in getattr(info.annotation, "__args__", (info.annotation,))
        help_text = help_for.get(name) or info.description or ""
        out.append(Setting(f"{prefix}{name.upper()}", shown, help_text, secret=secret))
    return out


def _init_settings() -> list[Setting]:
    from codebase_mcp.init.config import InitConfig

    out = []
    for field in dataclasses.fields(InitConfig):
        help_text = str(field.metadata["help"])
        default = shown_default(field)
        if "default_text" in field.metadata:  # a description, not a value to write
            help_text += f" Default: {default}."
            default = ""
        env = f"{InitConfig.PREFIX}{field.name.upper()}"
        out.append(Setting(env, default, help_text, secret=bool(field.metadata.get("secret"))))
    return out


def _walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Option]]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, (*path, name))
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            yield " ".join(path), param


def _click_default(option: click.Option) -> str | None:
    """An option's default as shown, ``None`` when it has none (click 8.3: a sentinel)."""
    default = option.default
    if option.is_flag and not option.secondary_opts:
        return "false" if not default or type(default).__name__ == "Sentinel" else "true"
    if default is None or callable(default) or type(default).__name__ == "Sentinel":
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def _cli_settings() -> list[Setting]:
    from codebase_mcp.cli.group import cli

    found: dict[str, list[tuple[str, click.Option]]] = {}
    for where, option in _walk(cli, ()):
        names = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or ())
        for env in names:
            found.setdefault(env, []).append((where, option))
    out = [
        Setting(
            "CODEBASE_MCP_DATA_DIR",
            "",
            "Where `up` keeps each pod's password, rendered spec and state. Default: "
            "$XDG_DATA_HOME/codebase-mcp, else ~/.local/share/codebase-mcp.",
            case_sensitive=True,
        )
    ]
    for env, uses in sorted(found.items()):
        first = uses[0][1]
        commands = sorted({where or "codebase-mcp" for where, _ in uses})
        shown = ", ".join(commands[:4]) + (", ..." if len(commands) > 4 else "")
        help_text = " ".join(_BRACKETS.sub("", first.help or "").split())
        defaults = [d for _, o in uses if (d := _click_default(o)) is not None]
        default = defaults[0] if defaults else ""
        out.append(
            Setting(
                env,
                str(default),
                f"{help_text} ({first.opts[-1]} of {shown})",
                case_sensitive=True,
            )
        )
    return sorted(out, key=lambda s: s.env)


def groups() -> list[Group]:
    """Every setting, grouped by the process that reads it."""
    from codebase_mcp.embedder.config import ServeSettings
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.security import SecuritySettings
    from codebase_mcp.settings import DatabaseSettings, EmbedderSettings

    return [
        Group(
            "cli", "the CLI on the host (codebase-mcp up, image, pod, ...)", tuple(_cli_settings())
        ),
        Group(
            "server",
            "codebase-mcp serve: the MCP server (the server container)",
            tuple(_model_settings(ServerSettings, "CODEBASE_MCP_", SERVER_HELP)),
        ),
        Group(
            "server-security",
            "codebase-mcp serve --transport http: who may reach /mcp (docs/security.md)",
            tuple(_model_settings(SecuritySettings, "CODEBASE_MCP_", {})),
        ),
        Group(
            "database",
            "where Postgres is: the server and codebase-mcp init",
            tuple(_model_settings(DatabaseSettings, "DATABASE_", {})),
        ),
        Group(
            "embedder",
            "where the embedder is: the server and codebase-mcp init",
            tuple(_model_settings(EmbedderSettings, "EMBEDDER_", {})),
        ),
        Group(
            "init",
            "codebase-mcp init: PID 1 of the server container (options override these)",
            tuple(_init_settings()),
        ),
        Group(
            "embedder-serve",
            "codebase-mcp embedder serve: the built-in embedder (the embedder container)",
            tuple(_model_settings(ServeSettings, "EMBEDDER_", {})),
        ),
    ]


def current(setting: Setting, environ: Mapping[str, str]) -> str | None:
    """The value ``environ`` gives ``setting`` (secrets redacted), ``None`` when unset."""
    if setting.case_sensitive:
        value = environ.get(setting.env)
    else:
        value = None
        for key, candidate in environ.items():  # the last spelling wins, as in pydantic
            if key.upper() == setting.env:
                value = candidate
    if value is None:
        return None
    if setting.env == "DATABASE_URL":
        return redact_dsn(value) if "@" in value else "***"
    if setting.secret or _SECRET_NAME.search(setting.env):
        return "***"
    return value


def env_template() -> str:
    """Every setting as a commented ``.env`` template, at its default (no current values)."""
    lines = [
        "# codebase-mcp settings: every environment variable, commented out at its default.",
        "# Generated by `codebase-mcp config --env` (docs/env.example); uncomment to change one.",
        "# `codebase-mcp up` sets the pod's own environment (see `codebase-mcp pod render`):",
        "# the server, init and embedder settings apply where you run those processes",
        "# yourself (`codebase-mcp serve` on the host, your own pod spec or manifests).",
    ]
    for group in groups():
        lines += ["", f"# --- {group.key}: {group.title} ---"]
        for setting in group.settings:
            lines += textwrap.wrap(setting.help, 96, initial_indent="# ", subsequent_indent="# ")
            lines.append(f"#{setting.env}={setting.default}")
    return "\n".join(lines) + "\n"
