"""A plain build user, made and removed by root, for rootless builds in tests and benches.

The user gets subuid/subgid ranges, and a stage under /var/tmp holding its
home (so its podman storage), runtime dir, content-addressed store (seeded
with the fetched inputs only, so root filesystems are made again, rootless),
a clone of the checkout with the same inputs as REPO, and the project venv's
packages (hard links). Everything goes away afterwards, the user included.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.builder.build import Builder, wanted
from codebase_mcp.builder.definitions import load_definition, load_pyproject
from codebase_mcp.builder.lockfile import check_fresh, load_lock
from codebase_mcp.builder.store import default_store
from tests.support.checkout import REPO, copy_checkout

USER = "cbm-rootless-test"  # owned by the tests: created and removed here
SUBIDS = 65536


@dataclass(frozen=True)
class BuildUser:
    name: str
    uid: int
    gid: int
    stage: Path  # everything the user has: home, runtime dir, store, checkout, Python path

    @property
    def env(self) -> dict[str, str]:
        home = self.stage / "home"
        return {
            "HOME": str(home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.stage / "run"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "CODEBASE_MCP_STORE": str(self.stage / "store"),
            "PYTHONPATH": f"{self.stage / 'repo' / 'src'}:{self.stage / 'site'}",
        }

    @property
    def argv_prefix(self) -> list[str]:
        """Run what follows as this user, in this environment alone."""
        env_args = [f"{k}={v}" for k, v in self.env.items()]
        return ["runuser", "-u", self.name, "--", "env", "-i", *env_args]

    def run(self, *argv: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv_prefix, *argv],
            cwd=self.stage,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def free_subid_start(*files: str) -> int:
    """The first id after every range in /etc/subuid and /etc/subgid (at least 100000)."""
    end = 100000
    for text in files:
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                end = max(end, int(parts[1]) + int(parts[2]))
    return end


def has_subids(name: str) -> bool:
    files = [Path("/etc/subuid"), Path("/etc/subgid")]
    return all(
        f.exists() and any(line.split(":")[0] == name for line in f.read_text().splitlines())
        for f in files
    )


def create_user(stage: Path) -> None:
    home = stage / "home"
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
         "--user-group", USER],
        check=True,
    )  # fmt: skip
    if not has_subids(USER):  # useradd adds ranges only when /etc/login.defs says so
        start = free_subid_start(
            *(Path(f).read_text() for f in ("/etc/subuid", "/etc/subgid") if Path(f).exists())
        )
        span = f"{start}-{start + SUBIDS - 1}"
        subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, USER], check=True)


def user_processes(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
    return pids


def remove_user(uid: int, stage: Path | None) -> None:
    # Rootless podman leaves a pause process holding the user namespace: it
    # and anything else this user still runs were started by the tests.
    for pid in user_processes(uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while user_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(["userdel", USER], check=False, capture_output=True)
    for name in ("/etc/subuid", "/etc/subgid"):  # older shadow leaves the ranges behind
        path = Path(name)
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            kept = [line for line in lines if line.split(":")[0] != USER]
            if kept != lines:
                path.write_text("".join(kept))
    if stage is not None:
        shutil.rmtree(stage, ignore_errors=True)


def user_python(user: BuildUser) -> str | None:
    """An interpreter the user may run, of this Python's version (the venv's may be
    under /root)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        *(f"{d}/python{version}" for d in ("/usr/local/bin", "/usr/bin")),
    ]
    for candidate in candidates:
        probe = user.run(candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def link_tree(source: Path, target: Path) -> None:
    """Hard links where possible (instant, nothing to copy), copies across file systems."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(
        source,
        target,
        copy_function=link_or_copy,
        symlinks=True,
        ignore=shutil.ignore_patterns("__editable__*", "_editable_impl_*", "__pycache__"),
    )


def stage_checkout(target: Path) -> None:
    """REPO's inputs with REPO's git history: the same input hash as REPO."""
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(target)], check=True)
    copy_checkout(target)


def seed_store(user: BuildUser, image: str) -> None:
    """The user's own store, holding the image's fetched inputs (not the root filesystem)."""
    Builder.create(REPO).fetch([image])  # into root's store, if it lacks any
    lock = load_lock(REPO)
    entry = check_fresh(lock, load_definition(REPO, image), load_pyproject(REPO))
    store = user.stage / "store" / "sha256"
    store.mkdir(parents=True)
    for item in wanted(entry):
        shutil.copyfile(default_store() / "sha256" / item.sha256, store / item.sha256)
    for path in (user.stage / "store", *store.parent.rglob("*")):
        os.chown(path, user.uid, user.gid)


CLI = "from codebase_mcp.cli import main; main()"


@contextmanager
def build_user(image: str) -> Iterator[BuildUser]:
    """Root only: a build user ready to build ``image`` rootless; removed on exit."""
    stage = Path(tempfile.mkdtemp(prefix="cbm-rootless-", dir="/var/tmp"))
    stage.chmod(0o755)
    with contextlib.suppress(KeyError):  # left over from an interrupted run, with its stage
        leftover = pwd.getpwnam(USER)
        old_stage = Path(leftover.pw_dir).parent
        remove_user(leftover.pw_uid, old_stage if old_stage.name.startswith("cbm-") else None)
    create_user(stage)
    user = BuildUser(USER, pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid, stage)
    try:
        (stage / "run").mkdir(mode=0o700)
        os.chown(stage / "run", user.uid, user.gid)
        stage_checkout(stage / "repo")
        link_tree(Path(sysconfig.get_paths()["purelib"]), stage / "site")
        seed_store(user, image)
        yield user
    finally:
        remove_user(user.uid, stage)
