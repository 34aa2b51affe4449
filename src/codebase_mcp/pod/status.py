"""Turn ``podman container inspect`` JSON into per-container status: pure parsing."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from codebase_mcp.errors import PodError

Overall = Literal["healthy", "starting", "unhealthy", "stopped", "missing"]


class ContainerStatus(BaseModel):
    name: str  # postgres, embedder, server
    container: str  # podman's name: <pod>-<name>
    state: str  # running, exited, ...
    health: str  # healthy, unhealthy, starting, or "" when the image has no probe
    restarts: int
    image: str
    exit_code: int = 0
    # podman's healthcheck command (["CMD-SHELL", ...] or ["CMD", ...]); [] = none
    probe: list[str] = []


class PodStatus(BaseModel):
    name: str
    status: Overall
    endpoint: str | None
    containers: list[ContainerStatus]


def parse_inspect(text: str, pod: str) -> list[ContainerStatus]:
    """Containers of ``pod`` out of ``podman container inspect`` JSON, sorted by name."""
    try:
        data = json.loads(text or "[]")
    except ValueError as exc:
        raise PodError("`podman container inspect` printed something that is not JSON") from exc
    if not isinstance(data, list):
        raise PodError("`podman container inspect` printed something unexpected")
    rows = [_container(item, pod) for item in data if isinstance(item, dict)]
    return sorted(rows, key=lambda c: c.name)


def _container(item: dict[str, Any], pod: str) -> ContainerStatus:
    full = str(item.get("Name", ""))
    state = item.get("State") or {}
    # podman 4.3 reports State.Health; some 4.x releases used State.Healthcheck.
    health = state.get("Health") or state.get("Healthcheck") or {}
    prefix = f"{pod}-"
    config = item.get("Config") or {}
    probe = (config.get("Healthcheck") or {}).get("Test") or []
    return ContainerStatus(
        name=full[len(prefix) :] if full.startswith(prefix) else full,
        container=full,
        state=str(state.get("Status", "unknown")),
        health=str(health.get("Status", "")),
        restarts=int(item.get("RestartCount", 0) or 0),
        image=str(item.get("ImageName", "")),
        exit_code=int(state.get("ExitCode", 0) or 0),
        probe=[str(a) for a in probe],
    )


def overall(containers: list[ContainerStatus], expected: tuple[str, ...]) -> Overall:
    """One word for the pod: every expected container running and healthy = healthy."""
    by_name = {c.name: c for c in containers}
    if not containers:
        return "missing"
    if any(name not in by_name for name in expected):
        return "unhealthy"
    chosen = [by_name[name] for name in expected]
    if all(c.state != "running" for c in chosen):
        return "stopped"
    if any(c.state != "running" or c.health == "unhealthy" for c in chosen):
        return "unhealthy"
    if all(c.health in ("healthy", "") for c in chosen):
        return "healthy"
    return "starting"
