"""``doctor --fix`` as a plan: what to change on this host, computed from its facts alone.

:func:`plan` is pure. Root gets actions it runs itself: install the missing packages
of the one list (:mod:`codebase_mcp.hostpackages`), set the containers.conf settings
the host needs in /etc/containers/containers.conf and, run through sudo, the asking
user's rootless setup (subordinate ids, /dev/net/tun, user-namespace sysctls). A
plain user gets the per-user fix (~/.config/containers/containers.conf) and, as
``manual``, the exact sudo commands for the rest. :mod:`codebase_mcp.doctor.apply`
runs a plan; a host with nothing to fix gets an empty one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codebase_mcp.doctor import checks, conf
from codebase_mcp.doctor.facts import HostFacts
from codebase_mcp.hostpackages import wanted
from codebase_mcp.proc import quote

APT_ENV = (("DEBIAN_FRONTEND", "noninteractive"),)


@dataclass(frozen=True)
class Command:
    """A host command the fix runs (or, in ``Plan.manual``, that the user must run)."""

    argv: tuple[str, ...]
    why: str
    env: tuple[tuple[str, str], ...] = ()

    def shell(self, sudo: bool = False) -> str:
        """The command line to show; with ``sudo``, one for a person to type (no env)."""
        if sudo:
            return "sudo " + quote(self.argv)
        env = " ".join(f"{k}={v}" for k, v in self.env)
        return (env + " " if env else "") + quote(self.argv)


@dataclass(frozen=True)
class SetConf:
    """Set keys in a containers.conf, merged into the file as it is when the fix runs."""

    path: str
    settings: tuple[tuple[str, str, conf.ConfValue], ...]  # (table, key, value)
    why: str

    def describe(self) -> str:
        keys = "; ".join(f"[{t}] {k} = {conf.render_value(v)}" for t, k, v in self.settings)
        return f"{self.path}: {keys}"


@dataclass(frozen=True)
class WriteFile:
    """Create or replace a file the doctor owns (e.g. its sysctl.d drop-in)."""

    path: str
    text: str
    why: str


Action = Command | SetConf | WriteFile


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()  # run by `doctor --fix`, in order
    manual: tuple[Command, ...] = field(default=())  # for the user to run with sudo

    @property
    def empty(self) -> bool:
        return not self.actions and not self.manual


def missing_packages(facts: HostFacts, *, tests: bool) -> list[str]:
    return [p.name for p in wanted(tests=tests) if facts.found.get(p.check_name) is None]


def install_commands(packages: list[str]) -> list[Command]:
    if not packages:
        return []
    return [
        Command(("apt-get", "update", "-q"), "refresh the package lists", APT_ENV),
        Command(
            ("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages),
            "install what the project needs (the list in codebase_mcp/hostpackages.py)",
            APT_ENV,
        ),
    ]


def rootless_commands(facts: HostFacts) -> list[Action]:
    """The system changes a plain user's rootless podman and builds need (root's to make)."""
    user = facts.rootless_user
    if user is None:
        return []
    out: list[Action] = []
    if not checks.subids_ok(facts):
        out.append(
            Command(tuple(checks.subid_argv(facts)), f"subordinate uid/gid ranges for {user}")
        )
    sysctls = checks.userns_sysctls(facts)
    if sysctls:
        for key, value in sysctls.items():
            out.append(
                Command(
                    ("sysctl", "-w", f"{key}={value}"),
                    f"user namespaces for plain users (kept in {facts.paths.sysctl_file})",
                )
            )
        text = "".join(f"{k} = {v}\n" for k, v in sysctls.items())
        out.append(
            WriteFile(
                str(facts.paths.sysctl_file),
                "# written by `codebase-mcp doctor --fix`\n" + text,
                "keep the sysctls across reboots",
            )
        )
    if not checks.tun_ok(facts):
        out.append(
            Command(
                ("chmod", "0666", "/dev/net/tun"),
                "slirp4netns (rootless pod networking) opens /dev/net/tun",
            )
        )
    return out


def plan(facts: HostFacts, *, tests: bool = False) -> Plan:
    """What ``doctor --fix`` does on this host (``tests``: also what ``make test`` needs)."""
    packages = install_commands(missing_packages(facts, tests=tests))
    settings = checks.conf_settings(facts)
    target = facts.paths.system_conf if facts.uid == 0 else facts.paths.user_conf
    set_conf: list[Action] = []
    if settings:
        set_conf.append(
            SetConf(
                str(target),
                tuple((table, key, value) for (table, key), value in settings.items()),
                "podman's runtime and limits for this host's cgroups and caps",
            )
        )
    rootless = rootless_commands(facts)
    if facts.uid == 0:
        return Plan(actions=(*packages, *set_conf, *rootless))
    # A plain user: the system changes become sudo commands to copy (or, all at once,
    # `sudo codebase-mcp doctor --fix`, which runs them for the user who asked).
    manual = [*packages, *(a for a in rootless if isinstance(a, Command))]
    return Plan(actions=tuple(set_conf), manual=tuple(manual))
