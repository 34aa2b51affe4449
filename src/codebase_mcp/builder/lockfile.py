"""The committed lock (``build/lock.json``): every input pinned by content hash.

Written only by ``codebase-mcp image lock``, atomically (temp file + rename),
read by everything else. Deterministic: sorted keys and entries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from codebase_mcp.builder.definitions import ImageDefinition
from codebase_mcp.errors import LockError, LockMissing, LockOutOfDate

LOCK_PATH = Path("build/lock.json")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DebPackage(Frozen):
    name: str
    version: str
    arch: str
    sha256: str
    size: int
    filename: str  # pool path, relative to the mirror
    url: str
    snapshot_url: str

    @property
    def deb_name(self) -> str:
        return self.filename.rsplit("/", 1)[-1]


class DebianLock(Frozen):
    suite: str
    mirror: str
    snapshot: str  # snapshot.debian.org timestamp of the mirror state locked
    packages: list[DebPackage]


class LockedWheel(Frozen):
    name: str
    version: str
    filename: str
    url: str
    sha256: str


class PythonLock(Frozen):
    version: str
    platform: str
    wheels: list[LockedWheel]  # the project's dependencies, resolved
    no_deps: list[LockedWheel]  # installed without dependencies
    tools: list[LockedWheel]  # build tools mounted at build time, not installed (pip)


class ImageLock(Frozen):
    resolved_from: dict[str, Any]
    debian: DebianLock
    python: PythonLock | None = None


class UpstreamLock(Frozen):
    """An image built elsewhere, used by digest only (never pulled by tests here)."""

    reference: str  # what was resolved, e.g. docker.io/ollama/ollama:latest
    digest: str | None = None  # sha256:… of the manifest; None until a lock could reach it

    @property
    def pinned(self) -> str | None:
        """``repository@digest``: the tag (or an old digest) dropped, a registry port kept."""
        if self.digest is None:
            return None
        return f"{repository_of(self.reference)}@{self.digest}"


def repository_of(reference: str) -> str:
    """``host:5000/a/b:tag`` → ``host:5000/a/b``; a ``:`` before the last ``/`` is a port."""
    name = reference.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    return f"{head}{slash}{last.split(':', 1)[0]}"


class Lock(Frozen):
    version: Literal[1] = 1
    source_date_epoch: int
    images: dict[str, ImageLock]
    upstream: dict[str, UpstreamLock] = {}

    def image(self, name: str) -> ImageLock:
        if name not in self.images:
            raise LockOutOfDate(
                f"the lock has no entry for image '{name}'",
                hint="run `codebase-mcp image lock` and commit build/lock.json",
            )
        return self.images[name]


def lock_path(root: Path) -> Path:
    return root / LOCK_PATH


def load_lock(root: Path) -> Lock:
    path = lock_path(root)
    if not path.is_file():
        raise LockMissing(
            f"{path} does not exist",
            hint="run `codebase-mcp image lock` (needs the Debian mirror and PyPI) and commit it",
        )
    try:
        return Lock.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise LockError(
            f"{path} is not a valid lock:\n{exc}",
            hint="regenerate it with `codebase-mcp image lock`",
        ) from exc


def dump_lock(lock: Lock) -> str:
    return json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_lock(root: Path, lock: Lock) -> Path:
    """Write atomically: a failure midway leaves the previous lock untouched."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_lock(lock))
    tmp.replace(path)
    return path


def check_fresh(lock: Lock, definition: ImageDefinition, pyproject: dict[str, Any]) -> ImageLock:
    """The image's lock entry, or LockOutOfDate naming the first differing input."""
    entry = lock.image(definition.name)
    wanted = definition.resolution_inputs(pyproject)
    diff = first_difference(entry.resolved_from, wanted, prefix=f"images.{definition.name}")
    if diff is not None:
        raise LockOutOfDate(
            f"build/lock.json is out of date for image '{definition.name}': {diff}",
            hint=f"run `codebase-mcp image lock {definition.name}` and commit build/lock.json",
        )
    return entry


def first_difference(locked: Any, wanted: Any, prefix: str) -> str | None:
    if isinstance(locked, dict) and isinstance(wanted, dict):
        for key in sorted(set(locked) | set(wanted)):
            if key not in locked:
                return f"{prefix}.{key} is new in the definition"
            if key not in wanted:
                return f"{prefix}.{key} is in the lock but no longer in the definition"
            diff = first_difference(locked[key], wanted[key], f"{prefix}.{key}")
            if diff is not None:
                return diff
        return None
    if locked != wanted:
        if isinstance(locked, list) and isinstance(wanted, list):
            added = sorted(set(map(str, wanted)) - set(map(str, locked)))
            removed = sorted(set(map(str, locked)) - set(map(str, wanted)))
            return f"{prefix} changed (added: {added or 'none'}, removed: {removed or 'none'})"
        return f"{prefix} is {locked!r} in the lock but {wanted!r} in the definition"
    return None
