"""Several embedder endpoints behind one client: health, backoff, load and model identity.

The pure half (this module's functions) decides; :class:`EndpointPool` keeps the
state and does the HTTP probing. :mod:`codebase_mcp.server.embeddings` sends the
embedding requests through it.

- Every endpoint starts *assumed healthy*. A request that fails on it (no
  connection, a timeout, a reset mid-answer, a 5xx other than 503) marks it
  down; it is probed again (``GET /api/tags``) after a backoff that doubles per
  failure (0.5 s, 1 s, 2 s ... up to ``backoff_max``), in the background while
  other endpoints serve. When none is healthy, every endpoint is probed at once,
  backoff or not, before a request gives up.
- Requests go to the healthy endpoint with the fewest inputs in flight (ties:
  fewer requests, then fewer answered so far), so queries find the idle one and
  index batches spread.
- With more than one endpoint, every endpoint must serve the model under the
  same digest (``/api/tags``; for the project's embedder the sha256 of the
  weights, for Ollama the model's manifest digest). A mix is refused for every
  request, with both digests named, until it is fixed; an endpoint that comes
  back with another digest than the one in use is kept out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from codebase_mcp.errors import EmbedderModelMix, EmbedderUnavailable

log = logging.getLogger("codebase_mcp.server.embedder")

Status = Literal["unknown", "ok", "down", "model missing", "model mismatch"]
BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 30.0
PROBE_TIMEOUT = 3.0


@dataclass
class Endpoint:
    url: str
    status: Status = "unknown"  # unknown: not probed, used as healthy until a request fails
    failures: int = 0  # consecutive
    retry_at: float = 0.0  # monotonic time of the next probe while not healthy
    in_flight: int = 0
    in_flight_inputs: int = 0
    answered: int = 0
    failed: int = 0
    digest: str | None = None
    error: str | None = None
    probing: bool = field(default=False, repr=False)

    @property
    def healthy(self) -> bool:
        return self.status in ("unknown", "ok")

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.url,
            "status": self.status,
            "in_flight": self.in_flight,
            "answered": self.answered,
            "failed": self.failed,
        }
        if self.digest:
            out["digest"] = self.digest
        if self.error and not self.healthy:
            out["error"] = self.error
        return out


def backoff_delay(
    failures: int, *, base: float = BACKOFF_BASE, cap: float = DEFAULT_BACKOFF_MAX
) -> float:
    """Seconds before a down endpoint is probed again after ``failures`` in a row (pure)."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


def choose(endpoints: Sequence[Endpoint], exclude: frozenset[str] = frozenset()) -> Endpoint | None:
    """The healthy endpoint with the least work in flight, or None (pure)."""
    usable = [e for e in endpoints if e.healthy and e.url not in exclude]
    if not usable:
        return None
    return min(usable, key=lambda e: (e.in_flight_inputs, e.in_flight, e.answered))


def model_digest(tags: Any, model: str) -> tuple[bool, str | None]:
    """From an ``/api/tags`` answer: is ``model`` served, and under which digest (pure).

    ``all-minilm`` matches ``all-minilm:latest`` as in Ollama; a name with a tag
    matches only that tag.
    """
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        return False, None
    wanted = {model, f"{model}:latest"} if ":" not in model else {model}
    found = False
    for entry in models:
        if not isinstance(entry, dict):
            continue
        names = {str(entry.get("name", "")), str(entry.get("model", ""))}
        if names & wanted:
            digest = entry.get("digest")
            if isinstance(digest, str) and digest:
                return True, digest.removeprefix("sha256:")
            found = True
    return found, None


def identity_mix(endpoints: Sequence[Endpoint]) -> dict[str, list[str]]:
    """Digest -> URLs of the endpoints that reported one (pure); two keys or more: a mix."""
    by_digest: dict[str, list[str]] = {}
    for endpoint in endpoints:
        if endpoint.digest is not None and endpoint.status == "ok":
            by_digest.setdefault(endpoint.digest, []).append(endpoint.url)
    return by_digest


def mix_error(model: str, by_digest: dict[str, list[str]]) -> EmbedderModelMix:
    listed = "; ".join(f"{', '.join(urls)} -> {digest[:16]}" for digest, urls in by_digest.items())
    return EmbedderModelMix(
        f"the embedder endpoints serve different weights for model {model!r}: {listed}",
        hint="point CODEBASE_MCP_EMBEDDER_URLS only at embedders running the same model "
        "(vectors of different weights cannot share an index)",
    )


def unavailable_error(endpoints: Sequence[Endpoint]) -> EmbedderUnavailable:
    if len(endpoints) == 1:
        only = endpoints[0]
        return EmbedderUnavailable(
            f"cannot reach the embedder at {only.url}: {only.error or only.status}",
            hint="check EMBEDDER_URL and that the embedder is running",
        )
    listed = "; ".join(f"{e.url}: {e.error or e.status}" for e in endpoints)
    return EmbedderUnavailable(
        f"no embedder endpoint is healthy ({len(endpoints)} configured): {listed}",
        hint="start an embedder, or fix CODEBASE_MCP_EMBEDDER_URLS",
    )


class EndpointPool:
    """The endpoints' state, their probes and the identity check."""

    def __init__(
        self,
        urls: Sequence[str],
        model: str,
        client: httpx.AsyncClient,
        *,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        if not urls:
            raise ValueError("EndpointPool needs at least one URL")
        self.endpoints = [Endpoint(url.rstrip("/")) for url in urls]
        self.model = model
        self.backoff_max = backoff_max
        self.probe_timeout = probe_timeout
        # One endpoint cannot be mixed with anything: no identity probe, no extra round trip.
        self.verify_identity = len(self.endpoints) > 1
        self.digest: str | None = None  # the identity in use, once an endpoint reported it
        self._client = client
        self._verified = not self.verify_identity
        self._verify_lock = asyncio.Lock()
        self._probes: set[asyncio.Task[None]] = set()

    # --- state changes -------------------------------------------------------
    def mark_down(self, endpoint: Endpoint, error: str) -> None:
        endpoint.failed += 1
        self._set_unhealthy(endpoint, "down", error)

    def mark_missing(self, endpoint: Endpoint, error: str) -> None:
        endpoint.failed += 1
        self._set_unhealthy(endpoint, "model missing", error)

    def _set_unhealthy(self, endpoint: Endpoint, status: Status, error: str) -> None:
        was_healthy = endpoint.healthy
        endpoint.status = status
        endpoint.error = error
        endpoint.failures += 1
        delay = backoff_delay(endpoint.failures, cap=self.backoff_max)
        endpoint.retry_at = time.monotonic() + delay
        if was_healthy:
            log.warning(
                "embedder %s is %s (%s); next probe in %.1fs", endpoint.url, status, error, delay
            )

    def _set_ok(self, endpoint: Endpoint, digest: str | None) -> None:
        if not endpoint.healthy:
            log.warning("embedder %s is back", endpoint.url)
        endpoint.status = "ok"
        endpoint.failures = 0
        endpoint.error = None
        endpoint.digest = digest

    # --- probing ---------------------------------------------------------------
    async def probe(self, endpoint: Endpoint) -> None:
        """Look at one endpoint (``GET /api/tags``) and set its status."""
        try:
            response = await self._client.get(
                f"{endpoint.url}/api/tags", timeout=self.probe_timeout
            )
            response.raise_for_status()
            served, digest = model_digest(response.json(), self.model)
        except (httpx.HTTPError, ValueError) as exc:
            self._set_unhealthy(endpoint, "down", _describe(exc))
            return
        if not served:
            self._set_unhealthy(endpoint, "model missing", f"does not serve {self.model!r}")
            return
        if self.verify_identity:
            if digest is None:
                self._set_unhealthy(
                    endpoint, "model mismatch", f"reports no digest for {self.model!r}"
                )
                return
            if self._verified and self.digest is not None and digest != self.digest:
                self._set_unhealthy(
                    endpoint,
                    "model mismatch",
                    f"serves {self.model!r} as {digest[:16]}, the others as {self.digest[:16]}",
                )
                return
        self._set_ok(endpoint, digest)

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(e) for e in self.endpoints))

    def probe_due_in_background(self) -> None:
        """Start a probe of every down endpoint whose backoff has passed (not awaited)."""
        now = time.monotonic()
        for endpoint in self.endpoints:
            if not endpoint.healthy and not endpoint.probing and endpoint.retry_at <= now:
                endpoint.probing = True
                task = asyncio.create_task(self._probe_flagged(endpoint))
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe_flagged(self, endpoint: Endpoint) -> None:
        try:
            await self.probe(endpoint)
        finally:
            endpoint.probing = False

    async def ensure_verified(self) -> None:
        """First use (and after a refused mix): every endpoint must serve the same weights."""
        if self._verified:
            return
        async with self._verify_lock:
            if self._verified:
                return
            await self.probe_all()
            by_digest = identity_mix(self.endpoints)
            if len(by_digest) > 1:
                for endpoint in self.endpoints:  # nobody is used until it is fixed
                    if endpoint.status == "ok":
                        endpoint.status = "model mismatch"
                        endpoint.error = "endpoints serve different weights"
                raise mix_error(self.model, by_digest)
            if by_digest:
                self.digest = next(iter(by_digest))
                self._verified = True
            # No endpoint answered: nothing to compare yet, look again on the next request.

    async def aclose(self) -> None:
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)

    # --- reports ---------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """The health of every endpoint, for ``/health`` (after :meth:`probe_all`)."""
        healthy = [e for e in self.endpoints if e.status == "ok"]
        by_digest = identity_mix(self.endpoints) if self.verify_identity else {}
        mismatched = any(e.status == "model mismatch" for e in self.endpoints)
        if len(by_digest) > 1 or (mismatched and not healthy):
            status = "model mix"
        elif healthy:
            status = "ok"
        elif any(e.status == "model missing" for e in self.endpoints):
            status = "model missing"
        else:
            status = "down"
        out: dict[str, Any] = {
            "status": status,
            "url": self.endpoints[0].url,
            "model": self.model,
            "healthy": f"{len(healthy)}/{len(self.endpoints)}",
            "endpoints": [e.view() for e in self.endpoints],
        }
        if self.digest:
            out["digest"] = self.digest
        return out


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
