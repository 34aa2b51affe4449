"""Map the paths users know (host) to the paths the server reads (container), safely.

A path is allowed only if, after normalising ``..`` and resolving symlinks, it
lies inside one of the configured roots. Without roots every path maps to
itself (the server runs on the host) and any existing directory is allowed,
except the kernel's pseudo-filesystems (``/proc``, ``/sys``, ``/dev``), which
are never a repository, whatever a symlink says.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.errors import PathNotAllowed
from codebase_mcp.server.config import RootMapping

PATH_MAX = 4096  # Linux: longer paths cannot be opened anyway
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class ResolvedRepo:
    host_path: str  # as the user knows it (normalised)
    container_path: str  # real path the server reads


class PathMapper:
    def __init__(self, roots: list[RootMapping]) -> None:
        # Longest prefix first so nested mounts win.
        self.roots = sorted(roots, key=lambda r: len(r.host), reverse=True)

    def to_container(self, host_path: str) -> str:
        """Lexical mapping host -> container; raises if outside every root."""
        if not host_path or not host_path.startswith("/"):
            raise PathNotAllowed(
                f"repository path {host_path[:200]!r} is not absolute",
                hint="pass the absolute path of the repository on your machine",
            )
        if len(host_path) > PATH_MAX or "\x00" in host_path:
            raise PathNotAllowed(
                f"repository path {host_path[:80]!r}... is not a usable path "
                f"(longer than {PATH_MAX} characters, or with a NUL character)",
                hint="pass the absolute path of the repository on your machine",
            )
        normal = posixpath.normpath(host_path)
        if not self.roots:
            return normal
        for root in self.roots:
            if _inside(normal, root.host):
                rest = normal[len(root.host) :].lstrip("/")
                return posixpath.join(root.container, rest) if rest else root.container
        allowed = ", ".join(r.host for r in self.roots)
        raise PathNotAllowed(
            f"repository path {host_path} is outside the allowed roots ({allowed})",
            hint="index a repository under one of those roots, or mount it and add it to "
            "CODEBASE_MCP_ROOTS",
        )

    def to_host(self, container_path: str) -> str:
        """Container -> host for results (paths the server stored are inside a root)."""
        for root in sorted(self.roots, key=lambda r: len(r.container), reverse=True):
            if _inside(container_path, root.container):
                rest = container_path[len(root.container) :].lstrip("/")
                return posixpath.join(root.host, rest) if rest else root.host
        return container_path

    def _container_root_for(self, container_path: str) -> str | None:
        for root in sorted(self.roots, key=lambda r: len(r.container), reverse=True):
            if _inside(container_path, root.container):
                return root.container
        return None

    def resolve_repo(self, host_path: str) -> ResolvedRepo:
        """Check a repository path for indexing: mapped, existing, a directory, no escape."""
        container = self.to_container(host_path)
        if not os.path.lexists(container):
            raise PathNotAllowed(
                f"repository path {host_path} does not exist"
                + (f" (seen by the server as {container})" if container != host_path else ""),
                hint="check the path; in a container, check that its root is mounted",
            )
        real = os.path.realpath(container)
        if self.roots:
            root = self._container_root_for(container)
            real_root = os.path.realpath(root) if root else None
            if real_root is None or not _inside(real, real_root):
                raise PathNotAllowed(
                    f"repository path {host_path} leads outside the allowed roots "
                    "through a symlink",
                    hint="index the symlink's target directly, under an allowed root",
                )
        pseudo = next((p for p in PSEUDO_FILESYSTEMS if _inside(real, p)), None)
        if pseudo is not None:
            raise PathNotAllowed(
                f"repository path {host_path} is (or leads to) {pseudo}, a kernel "
                "pseudo-filesystem, not a repository",
                hint="pass the top directory of a source checkout",
            )
        if not Path(real).is_dir():
            raise PathNotAllowed(
                f"repository path {host_path} is not a directory",
                hint="pass the repository's top directory, not a file",
            )
        return ResolvedRepo(host_path=posixpath.normpath(host_path), container_path=real)

    def directory_filter(self, host_dir: str) -> str:
        """A search ``directory`` filter: host path (or relative) -> container prefix."""
        if host_dir.startswith("/"):
            return self.to_container(host_dir)
        return posixpath.normpath(host_dir)
