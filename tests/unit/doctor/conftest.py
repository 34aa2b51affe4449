"""A fake host for the doctor: a directory as its root, a runner that plays apt-get and podman.

``apt-get install`` creates what each installed package provides (from the one package
list), so ``doctor --fix`` can be run for real against it: it writes its files under
the fake root, and a second run must find nothing left to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.doctor import HostFacts, HostPaths, Limit
from codebase_mcp.hostpackages import PACKAGES
from codebase_mcp.proc import Result, Runner, failure

VERSIONS = {"podman": "4.3.1", "buildah": "1.28.2", "mmdebstrap": "1.3.5", "skopeo": "1.9.3"}
# What a CI VM reads: capped hard limits that root cannot raise, and pid_max 32768 (runc
# refuses an nproc above it there).
CAPPED = {
    "nofile": Limit(hard=20000, can_raise=False),
    "nproc": Limit(hard=96363, can_raise=False, ceiling=32768),
}


@dataclass
class FakeHost(Runner):
    root: Path = Path("/nonexistent")
    installed: list[str] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.root / "usr" / "bin"

    @property
    def paths(self) -> HostPaths:
        return HostPaths(root=self.root, home=self.root / "home" / "dev", path=(str(self.bin),))

    def install(self, *names: str) -> None:
        for package in PACKAGES:
            if package.name not in names:
                continue
            if package.provides.startswith("helper:"):
                target = self.root / "usr/libexec/podman" / package.provides.split(":")[1]
            elif package.provides.startswith("/"):
                target = self.root / package.provides.lstrip("/")
            else:
                target = self.bin / package.provides
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("#!/bin/sh\n")
            target.chmod(0o755)
            self.installed.append(package.name)

    def run(  # type: ignore[override]
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        hint: str | None = None,
        **_: Any,
    ) -> Result:
        args = tuple(os.fspath(a) for a in argv)
        self.calls.append(args)
        name = Path(args[0]).name
        result = Result(args, 0)
        if name == "apt-get" and args[1] == "install":
            assert env and env.get("DEBIAN_FRONTEND") == "noninteractive"
            self.install(*[a for a in args[2:] if not a.startswith("-")])
        elif args[1:2] == ("--version",):
            result = Result(args, 0, f"{name} version {VERSIONS.get(name, '1.0')}\n")
        elif args[1:2] == ("info",):
            runtime = "crun"
            conf = self.root / "etc/containers/containers.conf"
            if conf.is_file() and 'runtime = "runc"' in conf.read_text():
                runtime = "runc"
            info = {"host": {"ociRuntime": {"name": runtime}, "cgroupVersion": "v1"},
                    "store": {"graphDriverName": "overlay"}}  # fmt: skip
            result = Result(args, 0, json.dumps(info))
        if check and result.returncode != 0:
            raise failure(result, hint)
        return result


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    """A fresh Debian-like host: nothing installed, hybrid cgroups, no containers.conf."""
    (tmp_path / "sys/fs/cgroup/unified").mkdir(parents=True)
    (tmp_path / "dev/net").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir(parents=True)
    monkeypatch.setenv("CODEBASE_MCP_STORE", str(tmp_path / "store"))
    return FakeHost(root=tmp_path)


def facts(**over: Any) -> HostFacts:
    """A healthy root host, as this project's CI machines are once set up."""
    base: dict[str, Any] = dict(
        uid=0,
        user="root",
        python=(3, 11),
        found={p.check_name: f"/usr/bin/{p.check_name}" for p in PACKAGES},
        versions={name: tuple(map(int, v.split("."))) for name, v in VERSIONS.items()},
        podman_info={
            "host": {"ociRuntime": {"name": "runc"}, "cgroupVersion": "v1"},
            "store": {"graphDriverName": "overlay"},
        },
        limits=dict(CAPPED),
        conf={
            "containers": {"default_ulimits": ["nofile=20000:20000", "nproc=4096:4096"]},
            "engine": {"runtime": "runc"},
        },
        cgroup_mode="hybrid",
        subuid="",
        subgid="",
        tun_mode=0o666,
        paths=HostPaths(root=Path("/fake"), home=Path("/fake/home/dev")),
    )
    base.update(over)
    return HostFacts(**base)


ROOTLESS: dict[str, Any] = dict(
    uid=1000,
    user="dev",
    subuid="dev:100000:65536\n",
    subgid="dev:100000:65536\n",
    userns_max=15000,
    userns_clone=1,
    podman_info={
        "host": {"ociRuntime": {"name": "runc"}, "cgroupVersion": "v2"},
        "store": {"graphDriverName": "vfs"},
    },
    cgroup_mode="v2",
    conf={},
)
