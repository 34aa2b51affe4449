"""The doctor's checks: pure functions of :class:`~codebase_mcp.doctor.facts.HostFacts`.

Each says what it found and, when it is not ok, how to fix it by hand;
:mod:`codebase_mcp.doctor.fix` plans the same fixes as actions. The settings the
containers.conf fix writes are decided here (:func:`conf_settings`), so a check and
its fix can never disagree.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Literal

from codebase_mcp.doctor import conf
from codebase_mcp.doctor.facts import MIN_VERSIONS, PODMAN_DEFAULT_LIMIT, HostFacts
from codebase_mcp.hostpackages import Package, wanted

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""


def evaluate(facts: HostFacts, *, tests: bool = False) -> list[CheckResult]:
    """Every check; ``tests``: also what ``make test`` needs beyond the stack."""
    results = [check_python(facts)]
    results += [check_package(facts, package) for package in wanted(tests=tests)]
    results += [check_runtime(facts), check_ulimits(facts), check_storage(facts)]
    results.append(check_store(facts))
    if facts.rootless_user is not None:
        results += [check_subids(facts), check_userns(facts), check_tun(facts)]
    return results


def _sudo(facts: HostFacts) -> str:
    return "" if facts.uid == 0 else "sudo "


def check_python(facts: HostFacts) -> CheckResult:
    version = ".".join(map(str, facts.python))
    if facts.python >= (3, 11):
        return CheckResult("python", "ok", f"Python {version}")
    return CheckResult(
        "python", "fail", f"Python {version} is too old", "install Python 3.11 or newer"
    )


def missing_status(facts: HostFacts, package: Package) -> Status:
    """How bad it is that ``package`` is missing, for this user."""
    if package.need == "optional":
        return "warn"
    if package.need == "rootless" and facts.rootless_user is None:
        return "warn"  # root's own runs do not need it; its users do (--fix installs it)
    return "fail"


def check_package(facts: HostFacts, package: Package) -> CheckResult:
    name = package.check_name
    path = facts.found.get(name)
    if path is None:
        if package.provides.startswith("helper:"):
            where = ", ".join(facts.helper_dirs) or "no helper_binaries_dir"
            detail = f"not found in podman's helper_binaries_dir ({where}) nor on $PATH"
        else:
            detail = "not installed"
        return CheckResult(
            name,
            missing_status(facts, package),
            f"{detail}: {package.purpose}",
            f"{_sudo(facts)}apt-get install {package.name}",
        )
    version = facts.versions.get(name)
    minimum = MIN_VERSIONS.get(name)
    if minimum and version and version < minimum:
        shown = ".".join(map(str, version))
        wanted_version = ".".join(map(str, minimum))
        return CheckResult(
            name,
            "fail",
            f"{shown} is older than {wanted_version}",
            f"upgrade {package.name} (Debian 12 ships a recent enough one)",
        )
    shown = ".".join(map(str, version)) if version else path
    return CheckResult(name, "ok", shown)


# --- containers.conf: the runtime and the limits ------------------------------------------


def needs_runc(facts: HostFacts) -> bool:
    """crun refuses hybrid (and v1) cgroups: podman must be told to use runc."""
    configured = conf.lookup(facts.conf, "engine", "runtime")
    return facts.cgroup_mode != "v2" and configured != "runc"


def _configured_limits(facts: HostFacts) -> list[str]:
    value = conf.lookup(facts.conf, "containers", "default_ulimits")
    return [str(v) for v in value] if isinstance(value, list) else []


def _configured_hard(entries: list[str], name: str) -> int | None:
    for entry in entries:
        match = re.fullmatch(rf"\s*{name}=(-?\d+)(?::(-?\d+))?\s*", entry)
        if match:
            return int(match.group(2) or match.group(1))
    return None


def limits_to_set(facts: HostFacts) -> dict[str, int]:
    """Limits a container would get beyond what this host allows: name -> the host's cap."""
    entries = _configured_limits(facts)
    out: dict[str, int] = {}
    for name, limit in sorted(facts.limits.items()):
        configured = _configured_hard(entries, name)
        # Rootless podman clamps an unconfigured limit to the user's own hard limit.
        value = configured if configured is not None else (
            PODMAN_DEFAULT_LIMIT if facts.uid == 0 else None
        )  # fmt: skip
        if value is not None and value >= 0 and not limit.allows(value):
            out[name] = limit.cap
    return out


def conf_settings(facts: HostFacts) -> dict[tuple[str, str], conf.ConfValue]:
    """The containers.conf settings this host needs and does not have yet."""
    settings: dict[tuple[str, str], conf.ConfValue] = {}
    if needs_runc(facts):
        settings[("engine", "runtime")] = "runc"
    caps = limits_to_set(facts)
    if caps:
        kept = [e for e in _configured_limits(facts) if e.split("=", 1)[0].strip() not in caps]
        settings[("containers", "default_ulimits")] = (
            *kept,
            *(f"{name}={cap}:{cap}" for name, cap in sorted(caps.items())),
        )
    return settings


def _conf_fix(facts: HostFacts, key: tuple[str, str]) -> str:
    value = conf_settings(facts)[key]
    target = facts.paths.system_conf if facts.uid == 0 else facts.paths.user_conf
    return f"set `{key[1]} = {conf.render_value(value)}` under [{key[0]}] in {target}"


def check_runtime(facts: HostFacts) -> CheckResult:
    info = facts.podman_info
    if info is None:
        if needs_runc(facts):
            return CheckResult(
                "oci runtime",
                "fail",
                f"cgroups {facts.cgroup_mode}: podman must use runc (crun refuses them), "
                "and containers.conf does not say so",
                _conf_fix(facts, ("engine", "runtime")),
            )
        return CheckResult(
            "oci runtime",
            "fail",
            facts.errors.get("podman info", "podman is not usable"),
            "install podman, then run `podman info` to see what fails",
        )
    host = info.get("host", {})
    runtime = host.get("ociRuntime", {}).get("name", "?")
    if runtime == "crun" and facts.cgroup_mode != "v2":
        return CheckResult(
            "oci runtime",
            "fail",
            f"crun on {facts.cgroup_mode} cgroups (crun refuses them)",
            _conf_fix(facts, ("engine", "runtime")) if needs_runc(facts) else
            "podman ignores `runtime = \"runc\"`: check CONTAINERS_CONF and "
            "containers.conf.d/",
        )  # fmt: skip
    return CheckResult("oci runtime", "ok", f"{runtime}, cgroups {facts.cgroup_mode}")


def check_ulimits(facts: HostFacts) -> CheckResult:
    caps = limits_to_set(facts)
    entries = _configured_limits(facts)
    shown = ", ".join(
        f"{n} hard limit {lim.hard}"
        + (f", pid_max {lim.ceiling}" if lim.ceiling is not None else "")
        + (f" (containers: {c})" if (c := _configured_hard(entries, n)) is not None else "")
        for n, lim in sorted(facts.limits.items())
    )
    if not caps:
        return CheckResult("ulimits", "ok", shown)
    names = ", ".join(sorted(caps))
    return CheckResult(
        "ulimits",
        "fail",
        f"containers would get {names} above this host's cap ({shown}, not raisable): "
        "setrlimit fails in every container",
        _conf_fix(facts, ("containers", "default_ulimits")),
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


# --- rootless: subordinate ids, user namespaces, /dev/net/tun -----------------------------

# Rootless, a container's uids 1..N map to the user's subordinate ids: the images
# have users up to 65534 (nobody; app is 10001), and podman maps 65536.
MIN_SUBIDS = 65536
FIRST_SUBID = 100000


def subid_count(text: str, user: str, uid: int | None) -> int:
    """How many subordinate ids /etc/subuid (or subgid) gives ``user``."""
    total = 0
    names = {user} if uid is None else {user, str(uid)}
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in names and parts[2].isdigit():
            total += int(parts[2])
    return total


def free_subid_range(*texts: str) -> tuple[int, int]:
    """The first and last id of a 65536-id range no entry of ``texts`` uses."""
    end = FIRST_SUBID
    for text in texts:
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                end = max(end, int(parts[1]) + int(parts[2]))
    return end, end + MIN_SUBIDS - 1


def subid_argv(facts: HostFacts) -> list[str]:
    user = facts.rootless_user
    assert user is not None
    first, last = free_subid_range(facts.subuid, facts.subgid)
    ids = f"{first}-{last}"
    return ["usermod", "--add-subuids", ids, "--add-subgids", ids, user]


def _uid(facts: HostFacts) -> int | None:
    return facts.uid if facts.uid != 0 else None  # sudo: the user's uid is not known here


def subids_ok(facts: HostFacts) -> bool:
    user = facts.rootless_user
    assert user is not None
    return all(
        subid_count(text, user, _uid(facts)) >= MIN_SUBIDS for text in (facts.subuid, facts.subgid)
    )


def check_subids(facts: HostFacts) -> CheckResult:
    user = facts.rootless_user
    assert user is not None
    counts = {
        name: subid_count(text, user, _uid(facts))
        for name, text in (("/etc/subuid", facts.subuid), ("/etc/subgid", facts.subgid))
    }
    fix = f"sudo {' '.join(subid_argv(facts))}"
    missing = [name for name, count in counts.items() if count == 0]
    if missing:
        return CheckResult(
            "subuid/subgid",
            "fail",
            f"no range for {user} in {', '.join(missing)} "
            "(rootless podman and mmdebstrap --mode=unshare need one)",
            fix,
        )
    small = [f"{name} has {count}" for name, count in counts.items() if count < MIN_SUBIDS]
    if small:
        return CheckResult(
            "subuid/subgid",
            "fail",
            f"{', '.join(small)} ids for {user}; rootless podman maps {MIN_SUBIDS} "
            "(the images have users up to 65534, nobody)",
            fix,
        )
    return CheckResult("subuid/subgid", "ok", f"ranges for {user}")


def userns_sysctls(facts: HostFacts) -> dict[str, str]:
    """The sysctls plain users need for user namespaces, where this host lacks them."""
    wanted_values: dict[str, str] = {}
    if facts.userns_max == 0:
        wanted_values["user.max_user_namespaces"] = "15000"
    if facts.userns_clone == 0:
        wanted_values["kernel.unprivileged_userns_clone"] = "1"
    return wanted_values


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


def tun_ok(facts: HostFacts) -> bool:
    return facts.tun_mode is None or facts.tun_mode & 0o006 == 0o006


def check_tun(facts: HostFacts) -> CheckResult:
    if tun_ok(facts):
        return CheckResult("rootless network", "ok", "/dev/net/tun usable")
    assert facts.tun_mode is not None
    return CheckResult(
        "rootless network",
        "warn",
        f"/dev/net/tun is mode {facts.tun_mode:o}: slirp4netns cannot start for a plain user "
        "(image builds do not need it: they run with --network none)",
        "sudo chmod 0666 /dev/net/tun (published ports of a rootless pod need it; "
        "not kept across reboots)",
    )


def as_json(results: list[CheckResult]) -> str:
    ok = all(r.status != "fail" for r in results)
    return json.dumps({"ok": ok, "checks": [asdict(r) for r in results]}, indent=2)
