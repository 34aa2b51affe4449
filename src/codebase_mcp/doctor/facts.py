"""What the doctor knows about a host, gathered once; checks and fixes are pure functions of it.

Every file the doctor reads or writes is under :class:`HostPaths`, so tests point it at
a temporary directory (a fake root) and give it a fake runner.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import resource
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codebase_mcp.builder.store import default_store, writable_dir
from codebase_mcp.doctor import conf
from codebase_mcp.errors import ConfigError
from codebase_mcp.hostpackages import PACKAGES
from codebase_mcp.proc import Runner

CgroupMode = Literal["v2", "hybrid", "v1"]

MIN_VERSIONS = {"podman": (4, 3), "buildah": (1, 28), "mmdebstrap": (1, 3), "skopeo": (1, 9)}
# What podman (4.x, root) gives a container for nofile and nproc unless containers.conf
# says otherwise; rootless podman takes the user's own hard limits instead.
PODMAN_DEFAULT_LIMIT = 1048576
LIMITS = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
# podman's (containers/common) default helper_binaries_dir (4.3: these four; later
# releases also accept "$BINDIR", podman's own directory). The pause image's catatonit is
# looked up there first, then on $PATH.
DEFAULT_HELPER_DIRS = (
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
)
# Run in a child: can this process raise a hard limit (root with CAP_SYS_RESOURCE can,
# unless a container or VM caps it, as on the project's CI machines)?
_RAISE_PROBE = (
    "import resource, sys; r, v = int(sys.argv[1]), int(sys.argv[2]); resource.setrlimit(r, (v, v))"
)


@dataclass(frozen=True)
class HostPaths:
    """Where the doctor reads and writes; ``root`` is ``/`` except in tests."""

    root: Path = Path("/")
    home: Path = field(default_factory=Path.home)
    path: tuple[str, ...] = field(
        default_factory=lambda: tuple(os.environ.get("PATH", os.defpath).split(os.pathsep))
    )

    def system(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def system_conf(self) -> Path:
        """The containers.conf ``doctor --fix`` edits as root."""
        return self.system("/etc/containers/containers.conf")

    @property
    def user_conf(self) -> Path:
        """The containers.conf ``doctor --fix`` edits as a plain user."""
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and self.root == Path("/") else self.home / ".config"
        return base / "containers" / "containers.conf"

    def conf_files(self, rootless: bool) -> list[Path]:
        """The containers.conf files podman reads, in order (later ones win)."""
        files = [
            self.system("/usr/share/containers/containers.conf"),
            self.system_conf,
            *sorted(self.system("/etc/containers/containers.conf.d").glob("*.conf")),
        ]
        if rootless:
            files += [self.user_conf, *sorted(self.user_conf.with_suffix(".conf.d").glob("*.conf"))]
        return files

    @property
    def sysctl_file(self) -> Path:
        return self.system("/etc/sysctl.d/50-codebase-mcp.conf")


@dataclass(frozen=True)
class Limit:
    hard: int  # resource.RLIM_INFINITY: unlimited
    can_raise: bool  # to PODMAN_DEFAULT_LIMIT
    # The most a container can be given whatever the hard limit says. nproc: the
    # kernel's pid_max. On the CI VMs runc refused every nproc above pid_max (32768)
    # with EPERM ("error setting rlimit type 6"), root, hard limit 96363; a container
    # cannot run more processes than there are pids anyway, so nothing is lost.
    ceiling: int | None = None

    def allows(self, value: int) -> bool:
        if self.ceiling is not None and value > self.ceiling:
            return False
        return self.can_raise or self.hard == resource.RLIM_INFINITY or value <= self.hard

    @property
    def cap(self) -> int:
        """The value to give containers when the default is not allowed."""
        hard = PODMAN_DEFAULT_LIMIT if self.hard == resource.RLIM_INFINITY else self.hard
        return hard if self.ceiling is None else min(hard, self.ceiling)


@dataclass
class HostFacts:
    uid: int
    user: str
    python: tuple[int, int]
    found: dict[str, str | None]  # Package.check_name -> where it is (None: missing)
    versions: dict[str, tuple[int, ...] | None]
    podman_info: dict[str, Any] | None
    limits: dict[str, Limit]
    conf: dict[str, Any]  # the effective containers.conf
    cgroup_mode: CgroupMode
    subuid: str
    subgid: str
    tun_mode: int | None
    paths: HostPaths = field(default_factory=HostPaths)
    sudo_user: str | None = None  # root run through sudo: the user who asked
    helper_dirs: tuple[str, ...] = DEFAULT_HELPER_DIRS
    errors: dict[str, str] = field(default_factory=dict)
    # Rootless builds: user namespaces (mmdebstrap --mode=unshare, buildah).
    userns_max: int | None = None  # /proc/sys/user/max_user_namespaces
    userns_clone: int | None = None  # Debian's kernel.unprivileged_userns_clone, if present
    # The content-addressed store: every user needs one they can write.
    store: str = ""
    store_writable: bool = True

    @property
    def rootless_user(self) -> str | None:
        """Whose rootless setup to check and fix: this user, or the one root runs for (sudo)."""
        return self.user if self.uid != 0 else self.sudo_user


def parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def gather(
    runner: Runner | None = None,
    paths: HostPaths | None = None,
    *,
    uid: int | None = None,
    user: str | None = None,
    limits: dict[str, Limit] | None = None,
) -> HostFacts:
    """Read the host. Tests pretend: ``uid``/``user`` to gather for, the ``limits`` to see."""
    runner = runner or Runner()
    paths = paths or HostPaths()
    uid = os.getuid() if uid is None else uid
    errors: dict[str, str] = {}
    documents = []
    for path in paths.conf_files(rootless=uid != 0):
        if path.is_file():
            try:
                documents.append(conf.parse(path.read_text(), str(path)))
            except ConfigError as exc:
                errors["containers.conf"] = exc.message
    config = conf.effective(documents)
    path_list = os.pathsep.join(paths.path)
    podman = shutil.which("podman", path=path_list)
    helper_dirs = _helper_dirs(config, podman, paths)
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        found[package.check_name] = _find(package.provides, helper_dirs, path_list, paths)
    versions: dict[str, tuple[int, ...] | None] = {}
    for name in MIN_VERSIONS:
        where = found.get(name)
        if where:
            result = runner.run([where, "--version"], check=False)
            versions[name] = parse_version(result.stdout or result.stderr)
    info = None
    if podman:
        result = runner.run([podman, "info", "--format", "json"], check=False)
        if result.returncode == 0:
            info = json.loads(result.stdout)
        else:
            errors["podman info"] = (result.stderr.strip().splitlines() or ["failed"])[-1]
    store = default_store()
    sudo_user = os.environ.get("SUDO_USER") if uid == 0 else None
    return HostFacts(
        uid=uid,
        user=user or getpass.getuser(),
        python=(sys.version_info.major, sys.version_info.minor),
        found=found,
        versions=versions,
        podman_info=info,
        limits=limits or _limits(runner, paths),
        conf=config,
        cgroup_mode=cgroup_mode(paths.system("/sys/fs/cgroup")),
        subuid=_read(paths.system("/etc/subuid")),
        subgid=_read(paths.system("/etc/subgid")),
        tun_mode=_mode(paths.system("/dev/net/tun")),
        paths=paths,
        sudo_user=sudo_user if sudo_user and sudo_user != "root" else None,
        helper_dirs=tuple(helper_dirs),
        errors=errors,
        userns_max=_read_int(paths.system("/proc/sys/user/max_user_namespaces")),
        userns_clone=_read_int(paths.system("/proc/sys/kernel/unprivileged_userns_clone")),
        store=str(store),
        store_writable=writable_dir(store),
    )


def _helper_dirs(config: dict[str, Any], podman: str | None, paths: HostPaths) -> list[str]:
    """podman's helper_binaries_dir, ``$BINDIR`` resolved (dropped while podman is missing)."""
    configured = conf.lookup(config, "engine", "helper_binaries_dir")
    dirs = [str(d) for d in configured] if isinstance(configured, list) else DEFAULT_HELPER_DIRS
    bindir = str(Path(os.path.realpath(podman)).parent) if podman else None
    out = []
    for entry in dirs:
        if not entry.startswith("$BINDIR"):
            out.append(str(paths.system(entry)))
        elif bindir is not None:
            out.append(bindir + entry.removeprefix("$BINDIR"))
    return out


def _find(provides: str, helper_dirs: list[str], path_list: str, paths: HostPaths) -> str | None:
    """Where a package's program, helper binary or file is, as podman would look for it."""
    if provides.startswith("helper:"):
        name = provides.removeprefix("helper:")
        for directory in helper_dirs:
            candidate = Path(directory) / name
            if candidate.is_file():  # podman: a regular file, symlinks followed
                return str(candidate)
        return shutil.which(name, path=path_list)
    if provides.startswith("/"):
        candidate = paths.system(provides)
        return str(candidate) if candidate.exists() else None
    return shutil.which(provides, path=path_list)


def cgroup_mode(root: Path) -> CgroupMode:
    if (root / "cgroup.controllers").is_file():
        return "v2"
    if (root / "unified").is_dir():
        return "hybrid"
    return "v1"


def _limits(runner: Runner, paths: HostPaths) -> dict[str, Limit]:
    ceilings = {"nproc": _read_int(paths.system("/proc/sys/kernel/pid_max"))}
    return {
        name: _limit(runner, which, ceilings.get(name)) for name, which in sorted(LIMITS.items())
    }


def _limit(runner: Runner, which: int, ceiling: int | None) -> Limit:
    hard = resource.getrlimit(which)[1]
    if hard == resource.RLIM_INFINITY or hard >= PODMAN_DEFAULT_LIMIT:
        return Limit(hard=hard, can_raise=True, ceiling=ceiling)
    probe = [sys.executable, "-c", _RAISE_PROBE, str(which), str(PODMAN_DEFAULT_LIMIT)]
    can_raise = runner.run(probe, check=False).returncode == 0
    return Limit(hard=hard, can_raise=can_raise, ceiling=ceiling)


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _mode(path: Path) -> int | None:
    return path.stat().st_mode & 0o777 if path.exists() else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
