from __future__ import annotations

import json
from typing import Any

import pytest

from codebase_mcp.errors import PodError
from codebase_mcp.pod.models import CONTAINERS
from codebase_mcp.pod.status import ContainerStatus, overall, parse_inspect


def inspect_item(name: str, status: str = "running", health: str | None = "healthy",
                 restarts: int = 0) -> dict[str, Any]:  # fmt: skip
    """Trimmed from real `podman container inspect` output of podman 4.3.1."""
    state: dict[str, Any] = {"Status": status, "Running": status == "running", "ExitCode": 0}
    if health is not None:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    return {
        "Name": name,
        "Config": {"Healthcheck": {"Test": ["CMD-SHELL", "pg_isready", "||", "exit", "1"]}},
        "ImageName": f"localhost/codebase-mcp-{name.rsplit('-', 1)[1]}:5b6209a8",
        "RestartCount": restarts,
        "State": state,
    }


def test_parse_inspect_strips_the_pod_prefix_and_sorts() -> None:
    text = json.dumps([inspect_item("cm-server", restarts=2), inspect_item("cm-postgres")])
    rows = parse_inspect(text, "cm")
    assert [r.name for r in rows] == ["postgres", "server"]
    assert rows[1] == ContainerStatus(
        name="server", container="cm-server", state="running", health="healthy",
        restarts=2, image="localhost/codebase-mcp-server:5b6209a8",
        probe=["CMD-SHELL", "pg_isready", "||", "exit", "1"],
    )  # fmt: skip


def test_parse_inspect_reads_the_older_healthcheck_key() -> None:
    item = inspect_item("cm-server", health=None)
    item["State"]["Healthcheck"] = {"Status": "starting"}
    assert parse_inspect(json.dumps([item]), "cm")[0].health == "starting"


def test_parse_inspect_rejects_non_json() -> None:
    with pytest.raises(PodError):
        parse_inspect("Error: no such container", "cm")


def rows(**health: str) -> list[ContainerStatus]:
    items = [inspect_item(f"cm-{n}", health=health.get(n, "healthy")) for n in CONTAINERS]
    return parse_inspect(json.dumps(items), "cm")


def test_overall_words() -> None:
    assert overall([], CONTAINERS) == "missing"
    assert overall(rows(), CONTAINERS) == "healthy"
    assert overall(rows(server="starting"), CONTAINERS) == "starting"
    assert overall(rows(embedder="unhealthy"), CONTAINERS) == "unhealthy"
    partial = [r for r in rows() if r.name != "embedder"]
    assert overall(partial, CONTAINERS) == "unhealthy"
    stopped = [r.model_copy(update={"state": "exited"}) for r in rows()]
    assert overall(stopped, CONTAINERS) == "stopped"
    one_down = [r.model_copy(update={"state": "exited"}) if r.name == "server" else r
                for r in rows()]  # fmt: skip
    assert overall(one_down, CONTAINERS) == "unhealthy"


def test_exec_probe_mirrors_podmans_healthcheck_forms() -> None:
    from codebase_mcp.pod.podman import exec_probe_argv

    shell = ["CMD-SHELL", "pg_isready", "-h", "127.0.0.1", "||", "exit", "1"]
    assert exec_probe_argv("cm-postgres", shell) == [
        "podman", "exec", "cm-postgres", "/bin/sh", "-c", "pg_isready -h 127.0.0.1 || exit 1",
    ]  # fmt: skip
    assert exec_probe_argv("c", ["CMD", "codebase-mcp", "health"]) == [
        "podman", "exec", "c", "codebase-mcp", "health",
    ]  # fmt: skip
    assert exec_probe_argv("c", []) is None
    assert exec_probe_argv("c", ["NONE"]) is None
