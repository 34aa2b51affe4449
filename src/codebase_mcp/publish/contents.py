"""What an image really holds: its dpkg status, copyright files and Python dist-infos.

Read without starting the image (its entrypoint never runs): as root the image
is mounted read-only (``podman image mount``, ~0.5 s); as a plain user, where
mounting needs ``podman unshare``, a stopped container is exported once and only
the few files needed are extracted (a few seconds).
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from codebase_mcp.proc import Runner

DPKG_STATUS = "var/lib/dpkg/status"
DOC_DIR = "usr/share/doc"
_WANTED = re.compile(
    r"^(var/lib/dpkg/status|usr/share/doc/[^/]+/copyright|.*/site-packages/[^/]+\.dist-info/METADATA)$"
)


@dataclass(frozen=True)
class Dist:
    """One installed Python distribution, from its dist-info METADATA."""

    name: str
    version: str
    metadata: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ImageContents:
    dpkg_status: str
    copyrights: dict[str, str]  # Debian package name → its copyright file
    dists: list[Dist]


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_inside(root: Path, rel: str, depth: int = 0) -> Path | None:
    """``rel`` under ``root``, following symlinks as the image would (never onto the host)."""
    current = root
    parts = PurePosixPath(rel).parts
    for i, part in enumerate(parts):
        if part in ("/", ""):
            continue
        candidate = current / part
        if candidate.is_symlink():
            if depth > 20:
                return None
            target = os.readlink(candidate)
            base = "" if target.startswith("/") else str(current.relative_to(root))
            rest = "/".join(parts[i + 1 :])
            joined = os.path.normpath(f"{base}/{target}/{rest}").lstrip("/")
            if joined.startswith(".."):
                return None
            return resolve_inside(root, joined, depth + 1)
        current = candidate
    return current


def read_contents(root: Path, venv: str | None = "/opt/venv") -> ImageContents:
    """Parse an image's files laid out under ``root`` (a mount or an extraction).

    Python distributions are read from ``venv`` (the image's virtualenv; None:
    the image has no Python of its own to list).
    """
    status_path = resolve_inside(root, DPKG_STATUS)
    status = status_path.read_text() if status_path and status_path.is_file() else ""
    copyrights: dict[str, str] = {}
    doc = resolve_inside(root, DOC_DIR)
    if doc is not None and doc.is_dir():
        for entry in sorted(doc.iterdir()):
            path = resolve_inside(root, f"{DOC_DIR}/{entry.name}/copyright")
            if path is not None and path.is_file():
                copyrights[entry.name] = path.read_text(errors="replace")
    dists = []
    site = "lib/python*/site-packages/*.dist-info/METADATA"
    venv_dir = resolve_inside(root, venv) if venv else None
    found = sorted(venv_dir.glob(site)) if venv_dir is not None and venv_dir.is_dir() else []
    for metadata_path in found:
        headers = HeaderParser().parsestr(metadata_path.read_text(errors="replace"))
        meta = {
            k: str(v)
            for k, v in headers.items()
            if k in ("Name", "Version", "License", "License-Expression")
        }
        if "Name" in meta and "Version" in meta:
            dists.append(Dist(meta["Name"], meta["Version"], meta))
    return ImageContents(status, copyrights, sorted(dists, key=lambda d: normalize(d.name)))


@contextmanager
def image_files(
    ref: str, runner: Runner, storage_args: tuple[str, ...] = (), *, mount: bool | None = None
) -> Iterator[Path]:
    """A directory holding the image's files (read-only; do not write to it).

    ``mount``: mount the image (default: when running as root) or export it.
    """
    podman = ["podman", *storage_args]
    if mount if mount is not None else os.geteuid() == 0:
        mountpoint = runner.run([*podman, "image", "mount", ref]).stdout.strip()
        try:
            yield Path(mountpoint)
        finally:
            runner.run([*podman, "image", "unmount", ref], check=False)
        return
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-sbom-") as tmp:
        container = runner.run([*podman, "create", "--pull=never", ref, "/bin/true"]).stdout
        container = container.strip()
        try:
            runner.run([*podman, "export", "-o", f"{tmp}/image.tar", container])
        finally:
            runner.run([*podman, "rm", "-f", container], check=False)
        extract_wanted(Path(tmp) / "image.tar", Path(tmp) / "root")
        yield Path(tmp) / "root"


def extract_wanted(tar_path: Path, target: Path) -> None:
    """Only the files the SBOM needs (and symlinks, which paths may go through)."""
    target.mkdir()
    with tarfile.open(tar_path) as tar:
        members = []
        for member in tar:
            name = member.name.removeprefix("./")
            if (member.issym() and name.startswith(DOC_DIR)) or _WANTED.match(name):
                members.append(member)
        tar.extractall(target, members=members, filter=_safe)  # noqa: S202 - filtered
    tar_path.unlink()


def _safe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, skipping (not failing on) links that leave the tree."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None
