"""Helpers for tests that play parts of the rendered pod on real podman."""

from __future__ import annotations

import subprocess
import time

import yaml


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def only_container(spec: str, name: str) -> str:
    """The rendered Pod with only the container ``name`` (and the volumes it mounts)."""
    (pod,) = [d for d in yaml.safe_load_all(spec) if d]
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == name]
    pod["spec"]["containers"] = [container]
    mounted = {m["name"] for m in container["volumeMounts"]}
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] in mounted]
    return yaml.safe_dump(pod, sort_keys=True)


def wait_healthy(container: str, timeout: float = 60) -> None:
    """Until podman's own healthcheck of ``container`` passes; fails with its log."""
    deadline = time.monotonic() + timeout
    while podman("healthcheck", "run", container, check=False).returncode != 0:
        assert time.monotonic() < deadline, podman("logs", container, check=False).stderr
        time.sleep(0.3)
