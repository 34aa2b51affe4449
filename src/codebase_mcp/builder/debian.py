"""Debian root filesystems with mmdebstrap: resolve (lock) and build (offline).

Resolution is apt's job: at lock time mmdebstrap installs the image's packages
from the real mirror into a throwaway chroot, and a hook copies out dpkg's
status and the mirror's Packages index, from which every installed package's
version, sha256 and pool path are read. At build time the same mmdebstrap
options run against a local flat repository holding exactly the locked .debs,
with no network, so apt can only choose the locked versions.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from codebase_mcp.builder.definitions import DebianInputs
from codebase_mcp.builder.lockfile import DebianLock, DebPackage
from codebase_mcp.errors import LockError

SNAPSHOT_BASE = "https://snapshot.debian.org/archive/debian"

# Keep images small: no documentation, manuals or translations. Copyright files
# stay (the SBOM reads licenses from them).
DEFAULT_PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/linda/*",
)
DEFAULT_PATH_INCLUDES = ("/usr/share/doc/*/copyright",)


@dataclass(frozen=True)
class Capture:
    """Where the lock-time hook copies dpkg's status and the apt lists."""

    directory: Path


def mode_for_uid(uid: int) -> str:
    """mmdebstrap's mode: plain ``root`` as root, user namespaces otherwise."""
    return "root" if uid == 0 else "unshare"


def common_options(inputs: DebianInputs, mode: str) -> list[str]:
    argv = [
        "mmdebstrap",
        f"--mode={mode}",
        f"--variant={inputs.variant}",
        '--aptopt=Acquire::Languages "none"',
        '--aptopt=APT::Install-Recommends "false"',
    ]
    if inputs.packages:
        argv.append("--include=" + ",".join(sorted(inputs.packages)))
    for pattern in (*DEFAULT_PATH_EXCLUDES, *inputs.path_excludes):
        argv.append(f"--dpkgopt=path-exclude={pattern}")
    for pattern in (*DEFAULT_PATH_INCLUDES, *inputs.path_includes):
        argv.append(f"--dpkgopt=path-include={pattern}")
    argv += [f"--essential-hook={hook}" for hook in inputs.essential_hooks]
    argv += [f"--customize-hook={hook}" for hook in inputs.customize_hooks]
    return argv


def lock_argv(inputs: DebianInputs, mode: str, capture: Capture) -> list[str]:
    """Install from the real mirror into a discarded chroot; copy out what was installed."""
    out = shlex.quote(str(capture.directory))
    hook = (
        f'cp "$1/var/lib/dpkg/status" {out}/status && '
        f'cp "$1"/var/lib/apt/lists/*_Packages "$1"/var/lib/apt/lists/*Release {out}/'
    )
    return [
        *common_options(inputs, mode),
        f"--customize-hook={hook}",
        "--skip=cleanup/apt",
        inputs.suite,
        "/dev/null",
        inputs.mirror,
    ]


def reproducibility_hooks(inputs: DebianInputs, epoch: int) -> list[str]:
    """Remove or normalise what differs between two builds of the same packages."""
    days = epoch // 86400
    sources = shlex.quote(f"deb {inputs.mirror} {inputs.suite} main")
    return [
        # The build's temporary repository path must not stay in the image.
        f'mkdir -p "$1/etc/apt" && echo {sources} > "$1/etc/apt/sources.list"',
        # Filled in by the engine at run time; the build host's copies must not leak in.
        ': > "$1/etc/resolv.conf"; echo localhost > "$1/etc/hostname"',
        # Backup files carry the build's history; logs and caches its time.
        'rm -f "$1"/etc/passwd- "$1"/etc/group- "$1"/etc/shadow- "$1"/etc/gshadow-'
        ' "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old',
        'find "$1/var/log" -type f -delete; rm -rf "$1"/var/cache/ldconfig/*',
        # ssl-cert makes a fresh random "snakeoil" key pair at install time.
        'rm -f "$1"/etc/ssl/certs/ssl-cert-snakeoil.pem "$1"/etc/ssl/private/ssl-cert-snakeoil.key;'
        ' [ ! -d "$1/etc/ssl/certs" ] || find "$1/etc/ssl/certs" -xtype l -delete',
        # Account ages are days since the epoch at creation time.
        f'[ ! -f "$1/etc/shadow" ] || sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\\1{days}:/" '
        '"$1/etc/shadow"',
        # Debian compiles .pyc at install time with timestamps and in an order
        # that differs between root and rootless builds: recompile them all
        # deterministically (hash-based, never re-checked). `env -i` and -B: the
        # modules compileall itself imports must not be written by the import
        # system first (timestamp-based, and only when the caller's environment
        # lacks PYTHONDONTWRITEBYTECODE); -f: rewrite any that were.
        'find "$1" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +; '
        'if [ -x "$1/usr/bin/python3" ]; then chroot "$1" env -i PATH=/usr/bin:/bin '
        "PYTHONHASHSEED=0 /usr/bin/python3 -B -m compileall -f -q -j1 "
        "--invalidation-mode unchecked-hash "
        "/usr/lib/python3 $(cd \"$1\" && ls -d usr/lib/python3.* | sed 's|^|/|'); fi",
    ]


def build_argv(inputs: DebianInputs, mode: str, repo: Path, output: Path, epoch: int) -> list[str]:
    """Build the root filesystem tarball from the local repository of locked .debs."""
    return [
        *common_options(inputs, mode),
        *[f"--customize-hook={hook}" for hook in reproducibility_hooks(inputs, epoch)],
        inputs.suite,
        str(output),
        # copy:// rather than file://: apt copies each .deb into the chroot's
        # cache, so the repository never has to be mounted inside the chroot.
        f"deb [trusted=yes] copy://{repo} ./",
    ]


# The only host variables mmdebstrap sees at build time: where programs and the
# user's home are, and where temporary files go. Anything else (PYTHON*, LANG,
# proxies, APT_CONFIG...) could reach maintainer scripts and hooks and make the
# root filesystem depend on who runs the build.
HOST_ENV_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR")


def build_env(epoch: int, host: Mapping[str, str] | None = None) -> dict[str, str]:
    """The complete environment of the build-time mmdebstrap (run with inherit_env=False)."""
    host = os.environ if host is None else host
    kept = {key: host[key] for key in HOST_ENV_KEPT if key in host}
    kept.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return {**kept, "SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C.UTF-8", "TZ": "UTC"}


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """Parse deb822 paragraphs (dpkg status, Packages). Continuation lines are kept."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key is not None:
                fields[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields:
            yield fields


def installed_packages(status_text: str) -> list[tuple[str, str, str]]:
    result = []
    for st in stanzas(status_text):
        if st.get("Status", "").endswith(" installed"):
            result.append((st["Package"], st["Version"], st["Architecture"]))
    return sorted(result)


def release_date(release_text: str) -> datetime:
    for st in stanzas(release_text):
        if "Date" in st:
            return parsedate_to_datetime(st["Date"]).astimezone(UTC)
    raise LockError("the mirror's Release file has no Date field")


def snapshot_stamp(date: datetime) -> str:
    return date.strftime("%Y%m%dT%H%M%SZ")


def resolve_from_capture(inputs: DebianInputs, capture: Capture) -> tuple[DebianLock, int]:
    """Build the lock entry from the captured status + Packages; returns it and the epoch."""
    status = (capture.directory / "status").read_text()
    index: dict[tuple[str, str, str], dict[str, str]] = {}
    for packages_file in sorted(capture.directory.glob("*_Packages")):
        for st in stanzas(packages_file.read_text(errors="replace")):
            index.setdefault((st["Package"], st["Version"], st["Architecture"]), st)
    releases = sorted(capture.directory.glob("*Release"))
    if not releases:
        raise LockError("mmdebstrap left no Release file to date the lock")
    date = release_date(releases[0].read_text(errors="replace"))
    stamp = snapshot_stamp(date)
    mirror = inputs.mirror.rstrip("/")
    packages = []
    for name, version, arch in installed_packages(status):
        found = index.get((name, version, arch))
        if found is None:
            raise LockError(
                f"{name} {version} ({arch}) is installed but not in the mirror's index",
                hint="the mirror changed during `lock`; run it again",
            )
        packages.append(
            DebPackage(
                name=name,
                version=version,
                arch=arch,
                sha256=found["SHA256"],
                size=int(found["Size"]),
                filename=found["Filename"],
                url=f"{mirror}/{found['Filename']}",
                snapshot_url=f"{SNAPSHOT_BASE}/{stamp}/{found['Filename']}",
            )
        )
    lock = DebianLock(suite=inputs.suite, mirror=inputs.mirror, snapshot=stamp, packages=packages)
    return lock, int(date.timestamp())


def write_flat_repo(repo: Path, debs: list[tuple[DebPackage, Path]]) -> list[str]:
    """Link the store's .debs into ``repo``; returns the argv that writes Packages."""
    pool = repo / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    for package, stored in debs:
        target = pool / package.deb_name
        if not target.exists():
            try:
                os.link(stored, target)
            except OSError:
                target.symlink_to(stored)
    return ["dpkg-scanpackages", "--multiversion", "pool", "/dev/null"]


def release_text(suite: str, packages_index: bytes, epoch: int) -> str:
    """A Release file for the flat repository.

    mmdebstrap selects the essential set with apt's ``?archive`` pattern, so
    the repository must say which suite it is.
    """
    date = datetime.fromtimestamp(epoch, UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")
    digest = hashlib.sha256(packages_index).hexdigest()
    return (
        f"Origin: codebase-mcp\nLabel: codebase-mcp locked packages\nSuite: {suite}\n"
        f"Codename: {suite}\nDate: {date}\nArchitectures: amd64 all\n"
        f"SHA256:\n {digest} {len(packages_index)} Packages\n"
    )
