"""A plain user builds the server image rootless and gets root's image, bit for bit.

Run as root (as CI is): the test creates a build user with its own subuid and
subgid ranges, home, podman storage (vfs, the default for a plain user here)
and content-addressed store, and removes them afterwards. The user's store is
seeded with the fetched inputs only (.debs and wheels, copied from root's
store): the root filesystem is made again with mmdebstrap --mode=unshare and
the image with rootless buildah. The server image is the one to use: it is the
only kind with Python layers (build stages, COPY, reordered layer entries),
where most differences between root and rootless builds came from.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, BuildResult, wanted
from codebase_mcp.builder.definitions import load_definition, load_pyproject
from codebase_mcp.builder.lockfile import check_fresh, load_lock
from codebase_mcp.builder.store import default_store
from tests.support.checkout import REPO, copy_checkout

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = "cbm-rootless-test"  # this test's own user: created and removed here
IMAGE = "server"
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

    def run(self, *argv: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        env_args = [f"{k}={v}" for k, v in self.env.items()]
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", *env_args, *argv],
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


def remove_user(user: BuildUser) -> None:
    # Rootless podman leaves a pause process holding the user namespace: it
    # and anything else this test's user still runs were started by this test.
    for pid in user_processes(user.uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["userdel", USER], check=False, capture_output=True)
    for name in ("/etc/subuid", "/etc/subgid"):  # older shadow leaves the ranges behind
        path = Path(name)
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            kept = [line for line in lines if line.split(":")[0] != USER]
            if kept != lines:
                path.write_text("".join(kept))
    shutil.rmtree(user.stage, ignore_errors=True)


def user_python(user: BuildUser) -> str:
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
    pytest.skip(f"no Python {version} that {user.name} can run")


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
    """REPO's inputs with REPO's git history and origin: the same input hash as REPO."""
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(target)], check=True)
    copy_checkout(target)
    origin = subprocess.run(
        ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    git = ["git", "-C", str(target), "remote"]
    if origin:
        subprocess.run([*git, "set-url", "origin", origin], check=True)
    else:
        subprocess.run([*git, "remove", "origin"], check=True)


def seed_store(user: BuildUser) -> None:
    """The user's own store, holding the image's fetched inputs (not the root filesystem)."""
    lock = load_lock(REPO)
    entry = check_fresh(lock, load_definition(REPO, IMAGE), load_pyproject(REPO))
    store = user.stage / "store" / "sha256"
    store.mkdir(parents=True)
    for item in wanted(entry):
        shutil.copyfile(default_store() / "sha256" / item.sha256, store / item.sha256)
    for path in (user.stage / "store", *store.parent.rglob("*")):
        os.chown(path, user.uid, user.gid)


@pytest.fixture(scope="module")
def build_user() -> Iterator[BuildUser]:
    if os.geteuid() != 0:
        pytest.skip("needs root, to create the build user (CI runs as root)")
    stage = Path(tempfile.mkdtemp(prefix="cbm-rootless-", dir="/var/tmp"))
    stage.chmod(0o755)
    try:
        pwd.getpwnam(USER)
        subprocess.run(["userdel", USER], check=True)  # left over from an interrupted run
    except KeyError:
        pass
    create_user(stage)
    user = BuildUser(USER, pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid, stage)
    try:
        (stage / "run").mkdir(mode=0o700)
        os.chown(stage / "run", user.uid, user.gid)
        stage_checkout(stage / "repo")
        link_tree(Path(sysconfig.get_paths()["purelib"]), stage / "site")
        seed_store(user)
        yield user
    finally:
        remove_user(user)


@pytest.fixture(scope="module")
def root_build() -> BuildResult:
    (result,) = Builder.create(REPO).build([IMAGE])  # cached when test_build built it
    return result


def podman_inspect(argv_prefix: list[str], ref: str) -> dict[str, object]:
    out = subprocess.run(
        [*argv_prefix, "podman", "image", "inspect", ref], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(json.loads(out.stdout)[0])


@pytest.mark.timeout(1800)  # a cold rootless build, and root's if test_build did not run
def test_rootless_build_is_bit_for_bit_roots(
    build_user: BuildUser, root_build: BuildResult
) -> None:
    staged = Builder.create(build_user.stage / "repo").plan(IMAGE)[2]
    assert staged.ref == root_build.ref  # same inputs, so the same content address

    python = user_python(build_user)
    cli = "from codebase_mcp.cli import main; main()"
    built = build_user.run(
        python, "-c", cli, "image", "build", IMAGE, "--json",
        "--root", str(build_user.stage / "repo"),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    (result,) = json.loads(built.stdout)["images"]  # stdout holds the JSON alone
    assert result["cached"] is False  # really built, not found
    assert result["ref"] == root_build.ref
    assert result["image_id"] == root_build.image_id
    assert result["digest"] == root_build.digest  # the manifest, byte for byte

    # The user's own storage and store, not root's: a rootless build for real.
    env = [f"{k}={v}" for k, v in build_user.env.items()]
    as_user = ["runuser", "-u", build_user.name, "--", "env", "-i", *env]
    theirs, ours = podman_inspect(as_user, result["ref"]), podman_inspect([], root_build.ref)
    assert theirs["RootFS"] == ours["RootFS"]  # every layer digest
    assert theirs["Config"] == ours["Config"]
    store = build_user.stage / "store" / "rootfs"
    (rootfs,) = store.glob("*.tar")  # made by mmdebstrap --mode=unshare, as the user
    assert rootfs.stat().st_uid == build_user.uid
    graph = build_user.stage / "home" / ".local" / "share" / "containers" / "storage"
    assert graph.is_dir() and graph.stat().st_uid == build_user.uid
