"""``codebase-mcp doctor``: is this host ready to build and run the stack, and what to fix.

Facts are gathered once (programs, versions, ``podman info``, limits, subuid
ranges); the checks are pure functions of those facts, so they are tested
without a host.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import resource
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from codebase_mcp.builder.store import default_store, writable_dir
from codebase_mcp.proc import Runner

Status = Literal["ok", "warn", "fail"]

MIN_VERSIONS = {"podman": (4, 3), "buildah": (1, 28), "mmdebstrap": (1, 3), "skopeo": (1, 9)}
APT_PACKAGES = {
    "podman": "podman",
    "buildah": "buildah",
    "mmdebstrap": "mmdebstrap",
    "skopeo": "skopeo",
    "dpkg-scanpackages": "dpkg-dev",
    "runc": "runc",
    "newuidmap": "uidmap",
}
# podman's default nofile limit for containers, which must fit under the host's hard limit.
PODMAN_DEFAULT_NOFILE = 1048576


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class HostFacts:
    uid: int
    user: str
    python: tuple[int, int]
    programs: dict[str, str | None]  # name -> path
    versions: dict[str, tuple[int, ...] | None]
    podman_info: dict[str, Any] | None
    nofile_hard: int
    containers_conf: str  # concatenated text of the containers.conf files found
    subuid: str
    subgid: str
    tun_mode: int | None
    errors: dict[str, str] = field(default_factory=dict)
    # Rootless builds: user namespaces (mmdebstrap --mode=unshare, buildah).
    userns_max: int | None = None  # /proc/sys/user/max_user_namespaces
    userns_clone: int | None = None  # Debian's kernel.unprivileged_userns_clone, if present
    # The content-addressed store: every user needs one they can write.
    store: str = ""
    store_writable: bool = True


def parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def gather(runner: Runner | None = None) -> HostFacts:
    runner = runner or Runner()
    programs = {name: shutil.which(name) for name in APT_PACKAGES}
    versions: dict[str, tuple[int, ...] | None] = {}
    errors: dict[str, str] = {}
    for name in MIN_VERSIONS:
        if programs.get(name):
            result = runner.run([name, "--version"], check=False)
            versions[name] = parse_version(result.stdout or result.stderr)
    info = None
    if programs.get("podman"):
        result = runner.run(["podman", "info", "--format", "json"], check=False)
        if result.returncode == 0:
            info = json.loads(result.stdout)
        else:
            errors["podman info"] = (result.stderr.strip().splitlines() or ["failed"])[-1]
    conf_paths = [
        Path("/usr/share/containers/containers.conf"),
        Path("/etc/containers/containers.conf"),
        *sorted(Path("/etc/containers/containers.conf.d").glob("*.conf")),
        Path.home() / ".config/containers/containers.conf",
    ]
    conf = "\n".join(p.read_text() for p in conf_paths if p.is_file())
    tun = Path("/dev/net/tun")
    store = default_store()
    return HostFacts(
        uid=os.getuid(),
        user=getpass.getuser(),
        python=(sys.version_info.major, sys.version_info.minor),
        programs=programs,
        versions=versions,
        podman_info=info,
        nofile_hard=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        containers_conf=conf,
        subuid=_read(Path("/etc/subuid")),
        subgid=_read(Path("/etc/subgid")),
        tun_mode=tun.stat().st_mode & 0o777 if tun.exists() else None,
        errors=errors,
        userns_max=_read_int(Path("/proc/sys/user/max_user_namespaces")),
        userns_clone=_read_int(Path("/proc/sys/kernel/unprivileged_userns_clone")),
        store=str(store),
        store_writable=writable_dir(store),
    )


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def evaluate(facts: HostFacts) -> list[CheckResult]:
    results = [check_python(facts)]
    results += [check_program(facts, name) for name in APT_PACKAGES]
    results += [check_runtime(facts), check_ulimits(facts), check_storage(facts)]
    results.append(check_store(facts))
    if facts.uid != 0:
        results += [check_subids(facts), check_userns(facts), check_tun(facts)]
    return results


def check_python(facts: HostFacts) -> CheckResult:
    version = ".".join(map(str, facts.python))
    if facts.python >= (3, 11):
        return CheckResult("python", "ok", f"Python {version}")
    return CheckResult(
        "python", "fail", f"Python {version} is too old", "install Python 3.11 or newer"
    )


def check_program(facts: HostFacts, name: str) -> CheckResult:
    package = APT_PACKAGES[name]
    optional = name in {"skopeo"} or (name == "newuidmap" and facts.uid == 0)
    path = facts.programs.get(name)
    if path is None:
        return CheckResult(
            name, "warn" if optional else "fail", "not installed", f"sudo apt-get install {package}"
        )
    version = facts.versions.get(name)
    minimum = MIN_VERSIONS.get(name)
    if minimum and version and version < minimum:
        shown = ".".join(map(str, version))
        wanted = ".".join(map(str, minimum))
        return CheckResult(
            name,
            "fail",
            f"{shown} is older than {wanted}",
            f"upgrade {package} (Debian 12 ships a recent enough one)",
        )
    shown = ".".join(map(str, version)) if version else path
    return CheckResult(name, "ok", shown)


def check_runtime(facts: HostFacts) -> CheckResult:
    info = facts.podman_info
    if info is None:
        return CheckResult(
            "oci runtime",
            "fail",
            facts.errors.get("podman info", "podman is not usable"),
            "install podman, then run `podman info` to see what fails",
        )
    host = info.get("host", {})
    runtime = host.get("ociRuntime", {}).get("name", "?")
    cgroups = host.get("cgroupVersion", "?")
    hybrid = cgroups == "v1" and Path("/sys/fs/cgroup/unified").is_dir()
    if runtime == "crun" and (cgroups == "v1" or hybrid):
        return CheckResult(
            "oci runtime",
            "fail",
            f"crun on cgroups {cgroups} (hybrid cgroups are refused by crun)",
            'set `[engine] runtime = "runc"` in /etc/containers/containers.conf '
            "(and `apt-get install runc`)",
        )
    return CheckResult("oci runtime", "ok", f"{runtime}, cgroups {cgroups}")


def check_ulimits(facts: HostFacts) -> CheckResult:
    configured = re.search(
        r"^\s*default_ulimits\s*=\s*\[(.*?)\]", facts.containers_conf, re.MULTILINE | re.DOTALL
    )
    wanted = PODMAN_DEFAULT_NOFILE
    if configured:
        match = re.search(r"nofile=(\d+):(\d+)", configured.group(1))
        if match:
            wanted = int(match.group(2))
    if wanted <= facts.nofile_hard:
        return CheckResult(
            "ulimits", "ok", f"nofile hard limit {facts.nofile_hard}, containers get {wanted}"
        )
    cap = min(facts.nofile_hard, 20000)
    return CheckResult(
        "ulimits",
        "fail",
        f"containers would get nofile={wanted} but this host caps it at {facts.nofile_hard} "
        "(setrlimit fails)",
        f'add `default_ulimits = ["nofile={cap}:{cap}"]` under [containers] in '
        "/etc/containers/containers.conf",
    )


def check_storage(facts: HostFacts) -> CheckResult:
    info = facts.podman_info or {}
    driver = info.get("store", {}).get("graphDriverName", "?")
    if facts.uid != 0 and driver == "vfs":
        return CheckResult(
            "storage",
            "warn",
            "vfs driver: images are the same as root's, but each build stage is a full "
            "copy (slower, much more disk)",
            "install fuse-overlayfs (and make /dev/fuse usable), or configure "
            '`driver = "overlay"` in ~/.config/containers/storage.conf on a kernel with '
            "rootless overlay; run `podman system reset` first, the storage is per driver",
        )
    return CheckResult("storage", "ok", f"{driver} driver")


def check_store(facts: HostFacts) -> CheckResult:
    if facts.store_writable:
        return CheckResult("store", "ok", facts.store)
    return CheckResult(
        "store",
        "fail",
        f"{facts.store} is not writable by {facts.user}",
        "every user builds into a store of their own: set CODEBASE_MCP_STORE (or "
        "XDG_CACHE_HOME) to a directory you own; inputs are re-fetched or can be copied "
        "from another store's sha256/ folder",
    )


# Rootless, a container's uids 1..N map to the user's subordinate ids: the images
# have users up to 65534 (nobody; app is 10001), and podman maps 65536.
MIN_SUBIDS = 65536


def subid_count(text: str, user: str, uid: int) -> int:
    """How many subordinate ids /etc/subuid (or subgid) gives ``user``."""
    total = 0
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in {user, str(uid)} and parts[2].isdigit():
            total += int(parts[2])
    return total


def check_subids(facts: HostFacts) -> CheckResult:
    counts = {
        name: subid_count(text, facts.user, facts.uid)
        for name, text in (("/etc/subuid", facts.subuid), ("/etc/subgid", facts.subgid))
    }
    fix = (
        f"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {facts.user} "
        "(pick a range no other user has)"
    )
    missing = [name for name, count in counts.items() if count == 0]
    if missing:
        return CheckResult(
            "subuid/subgid",
            "fail",
            f"no range for {facts.user} in {', '.join(missing)} "
            "(rootless podman and mmdebstrap --mode=unshare need one)",
            fix,
        )
    small = [f"{name} has {count}" for name, count in counts.items() if count < MIN_SUBIDS]
    if small:
        return CheckResult(
            "subuid/subgid",
            "fail",
            f"{', '.join(small)} ids for {facts.user}; rootless podman maps {MIN_SUBIDS} "
            "(the images have users up to 65534, nobody)",
            fix,
        )
    return CheckResult("subuid/subgid", "ok", f"ranges for {facts.user}")


def check_userns(facts: HostFacts) -> CheckResult:
    if facts.userns_max == 0:
        return CheckResult(
            "user namespaces",
            "fail",
            "user.max_user_namespaces is 0: rootless buildah and mmdebstrap "
            "--mode=unshare cannot start",
            "sudo sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/)",
        )
    if facts.userns_clone == 0:
        return CheckResult(
            "user namespaces",
            "fail",
            "kernel.unprivileged_userns_clone is 0: plain users cannot create user namespaces",
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/)",
        )
    return CheckResult("user namespaces", "ok", "available to plain users")


def check_tun(facts: HostFacts) -> CheckResult:
    if facts.tun_mode is None or facts.tun_mode & 0o006 == 0o006:
        return CheckResult("rootless network", "ok", "/dev/net/tun usable")
    return CheckResult(
        "rootless network",
        "warn",
        f"/dev/net/tun is mode {facts.tun_mode:o}: slirp4netns cannot start for a plain user "
        "(image builds do not need it: they run with --network none)",
        "sudo chmod 0666 /dev/net/tun (published ports of a rootless pod need it)",
    )


def run_checks(runner: Runner | None = None) -> list[CheckResult]:
    return evaluate(gather(runner))


def as_json(results: list[CheckResult]) -> str:
    ok = all(r.status != "fail" for r in results)
    return json.dumps({"ok": ok, "checks": [asdict(r) for r in results]}, indent=2)
