"""Wait for each dependency with backoff until a deadline; one log line per attempt.

A probe is a plain function ``probe(timeout) -> detail`` that raises on any
failure; :func:`wait_for` retries it. Everything here is synchronous on
purpose: ``time.sleep`` and blocking sockets are interrupted by the init's
signal handlers (PEP 475 runs the handler, whose exception propagates), so a
SIGTERM during the waits stops the init at once. Postgres probes run their
asyncpg coroutine with :func:`asyncio.run`.

asyncio/asyncpg and urllib.request are imported by the probe that uses them, not
here: an init that waits for neither (``--no-wait-database``, ``--no-wait-embedder``)
does not pay for them at start-up (docs/init.md, "Start-up time").
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from codebase_mcp.errors import DatabaseTimeout, DependencyTimeout, EmbedderTimeout
from codebase_mcp.init.backoff import Backoff, Deadline
from codebase_mcp.init.log import EventLog

Probe = Callable[[float], str]


class NotReady(Exception):
    """One probe attempt found the dependency not ready (retried until the deadline)."""


@dataclass(frozen=True)
class Dependency:
    """What the init waits for, for log lines and the final error."""

    name: str
    address: str  # safe to log: never contains a password
    setting: str  # which settings to check when it never comes up
    error: type[DependencyTimeout] = DependencyTimeout
    secrets: tuple[str, ...] = field(default=(), repr=False)  # scrubbed from error text


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``Type: message`` on one line, shortened, with any secret replaced by ``***``."""
    text = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else "")
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    line = " ".join(line.split())
    return line if len(line) <= 300 else line[:297] + "..."


def wait_for(
    dep: Dependency,
    probe: Probe,
    *,
    deadline: Deadline,
    backoff: Backoff,
    log: EventLog,
    attempt_timeout: float = 5.0,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Run ``probe`` until it succeeds; raise ``dep.error`` once the deadline has passed.

    Never sleeps past the deadline, and an attempt's timeout is cut to what is
    left (at least 0.1 s), so the whole wait ends within deadline + one attempt.
    """
    delays = backoff.delays(rng)
    start = deadline.clock()
    attempt = 0
    while True:
        attempt += 1
        timeout = max(0.1, deadline.clamp(attempt_timeout))
        try:
            detail = probe(timeout)
        except Exception as exc:  # any failure of one attempt is retried
            error = describe(exc, dep.secrets)
        else:
            elapsed = deadline.clock() - start
            log.info(
                "wait.ready",
                dependency=dep.name,
                address=dep.address,
                attempt=attempt,
                elapsed_s=round(elapsed, 3),
                detail=detail,
            )
            return detail
        if deadline.expired():
            elapsed = deadline.clock() - start
            log.error(
                "wait.timeout",
                dependency=dep.name,
                address=dep.address,
                attempt=attempt,
                elapsed_s=round(elapsed, 3),
                error=error,
            )
            raise dep.error(
                f"{dep.name} at {dep.address} not ready after {elapsed:.1f}s "
                f"({attempt} attempts); last error: {error}",
                hint=f"check {dep.setting}; a slow start needs a longer "
                "--deadline (CODEBASE_MCP_INIT_DEADLINE)",
            )
        delay = deadline.clamp(next(delays))
        log.warning(
            "wait.retry",
            dependency=dep.name,
            address=dep.address,
            attempt=attempt,
            next_delay_s=round(delay, 3),
            error=error,
        )
        sleep(delay)


# --- Postgres ---------------------------------------------------------------
PG_SETTING = (
    "DATABASE_URL (or DATABASE_HOST/DATABASE_PORT/DATABASE_USER/DATABASE_NAME and "
    "DATABASE_PASSWORD_FILE) and that Postgres is running"
)


@dataclass
class PostgresProbe:
    """TCP connect, authenticate, ``SELECT 1``, the ``vector`` extension available.

    With ``read_versions`` the same connection also reads ``alembic_version``
    (kept in :attr:`versions`), so the migration check needs no second
    connection and a database restarting in between is retried like any wait.
    """

    dsn: str = field(repr=False)
    read_versions: bool = False
    versions: frozenset[str] | None = None

    def __call__(self, timeout: float) -> str:
        import asyncio

        return asyncio.run(asyncio.wait_for(self._once(timeout), timeout))

    async def _once(self, timeout: float) -> str:
        import asyncpg

        conn = await asyncpg.connect(self.dsn, timeout=timeout)
        try:
            one = await conn.fetchval("SELECT 1", timeout=timeout)
            if one != 1:
                raise NotReady(f"SELECT 1 returned {one!r}")
            row = await conn.fetchrow(
                "SELECT default_version, installed_version FROM pg_available_extensions "
                "WHERE name = 'vector'",
                timeout=timeout,
            )
            if row is None:
                raise NotReady(
                    "the pgvector extension is not available on this server "
                    "(use the codebase-mcp postgres image, or install postgresql-17-pgvector)"
                )
            if self.read_versions:
                from codebase_mcp.migrate import read_versions

                self.versions = await read_versions(conn)
            version = conn.get_server_version()
            installed = row["installed_version"]
            state = f"installed {installed}" if installed else f"available {row['default_version']}"
            return f"PostgreSQL {version.major}.{version.minor}, vector {state}"
        finally:
            await conn.close(timeout=timeout)


def postgres_dependency(redacted_dsn: str, password: str | None) -> Dependency:
    return Dependency(
        name="postgres",
        address=redacted_dsn,
        setting=PG_SETTING,
        error=DatabaseTimeout,
        secrets=(password,) if password else (),
    )


# --- the embedder (Ollama API) ------------------------------------------------
EMBEDDER_SETTING = "EMBEDDER_URL, EMBEDDER_MODEL and EMBEDDER_PULL, and that the embedder runs"


def model_key(name: str) -> str:
    """Ollama names without a tag mean ``:latest``: ``all-minilm`` == ``all-minilm:latest``."""
    name = name.strip()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def has_model(tags: dict[str, Any], model: str) -> bool:
    wanted = model_key(model)
    for entry in tags.get("models") or []:
        if not isinstance(entry, dict):
            continue
        names = {entry.get("name"), entry.get("model")}
        if any(isinstance(n, str) and model_key(n) == wanted for n in names):
            return True
    return False


def _get(url: str, timeout: float) -> bytes:
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def pull_model(
    base_url: str, model: str, *, deadline: Deadline, timeout: float, log: EventLog
) -> None:
    """``POST /api/pull`` (streamed NDJSON), logging each new status and progress every second."""
    import urllib.request

    body = json.dumps({"model": model, "stream": True}).encode()
    request = urllib.request.Request(  # noqa: S310
        f"{base_url}/api/pull",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    log.info("embedder.pull.start", model=model, url=base_url)
    last_status = ""
    last_log = 0.0
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        for raw in response:
            line = raw.strip()
            if not line:
                continue
            event = json.loads(line)
            if "error" in event:
                raise NotReady(f"pull of {model} failed: {event['error']}")
            status = str(event.get("status", ""))
            now = time.monotonic()
            if status != last_status or now - last_log >= 1.0:
                fields: dict[str, object] = {"model": model, "status": status}
                total, done = event.get("total"), event.get("completed")
                if isinstance(total, int) and total > 0 and isinstance(done, int):
                    fields["percent"] = round(100 * done / total, 1)
                log.info("embedder.pull.progress", **fields)
                last_status, last_log = status, now
            if status == "success":
                log.info("embedder.pull.done", model=model)
                return
            # Only a download in progress is cut off: a quick error line must still be seen.
            if "total" in event and deadline.expired():
                raise NotReady(f"pulling {model} did not finish before the deadline")
    raise NotReady(f"pull of {model} ended without 'success' (last status {last_status!r})")


def embedder_probe(
    base_url: str, model: str, *, pull: bool, deadline: Deadline, log: EventLog
) -> Probe:
    """``GET /``, then ``GET /api/tags`` has the model; pull it when missing and allowed."""
    base_url = base_url.rstrip("/")

    def probe(timeout: float) -> str:
        _get(f"{base_url}/", timeout)
        tags = json.loads(_get(f"{base_url}/api/tags", timeout))
        if not isinstance(tags, dict):
            raise NotReady(f"/api/tags answered {type(tags).__name__}, not an object")
        if has_model(tags, model):
            return f"model {model} present"
        if not pull:
            raise NotReady(
                f"model {model} is not on the embedder and pulling is off "
                "(set EMBEDDER_PULL=true, or pull it on the embedder)"
            )
        # A pull may take longer than one attempt: it is bounded by the deadline.
        pull_model(base_url, model, deadline=deadline, timeout=max(timeout, 30.0), log=log)
        tags = json.loads(_get(f"{base_url}/api/tags", timeout))
        if not has_model(tags, model):
            raise NotReady(f"model {model} still missing from /api/tags after the pull")
        return f"model {model} pulled"

    return probe


def embedder_dependency(base_url: str, model: str) -> Dependency:
    return Dependency(
        name="embedder",
        address=f"{base_url.rstrip('/')} (model {model})",
        setting=EMBEDDER_SETTING,
        error=EmbedderTimeout,
    )
