"""``image gc``: what the current lock and definitions no longer reference, and removing it.

Planning is pure (:func:`plan_gc` takes the lists of what exists); only
:func:`apply` removes anything. Conservative by design:

- images: only ``localhost/codebase-mcp-NAME:<32 hex>`` tags (the builder's
  scheme); other tags in those repositories are never touched. When an image's
  current ref cannot be computed (its lock entry is out of date), every tag of
  that image is kept, with a warning.
- store: ``sha256/<hex>`` entries that neither a lock entry nor a kept layer
  names, layer records (``layers/<key>.json``) and unpacked root filesystems
  (``trees/<key>``) that no current image is made of, ``rootfs/*.tar`` (left
  by builders before layers were derivations), build records of images no
  longer present, and work directories left by interrupted builds, but only
  when older than an hour (a build may be running right now).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.builder.build import remove_tree
from codebase_mcp.builder.plan import REF_PREFIX
from codebase_mcp.proc import Runner

HASH_TAG = re.compile(r"^[0-9a-f]{32}$")
STALE_SECONDS = 3600


@dataclass(frozen=True)
class LocalTag:
    ref: str
    image_id: str
    size: int


@dataclass(frozen=True)
class Removal:
    kind: str  # "image", "store", "layer", "tree", "rootfs", "record", "workdir"
    target: str
    size: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Keep:
    """What the current lock and definitions reference."""

    refs: frozenset[str]  # current image refs
    unknown_names: frozenset[str]  # images whose current ref could not be computed
    sha256: frozenset[str]  # store entries named by the lock, or by a kept layer's record
    layer_keys: frozenset[str]  # layers the current images are made of


@dataclass(frozen=True)
class StoreEntry:
    path: Path
    size: int
    mtime: float


def plan_gc(
    keep: Keep,
    tags: Iterable[LocalTag],
    store_root: Path,
    entries: Iterable[StoreEntry],
    now: float,
) -> list[Removal]:
    removals: list[Removal] = []
    remaining_hashes: set[str] = set()
    for tag in sorted(tags, key=lambda t: t.ref):
        repository, _, hash_tag = tag.ref.rpartition(":")
        name = repository.removeprefix(REF_PREFIX)
        if not repository.startswith(REF_PREFIX) or not HASH_TAG.match(hash_tag):
            continue
        if tag.ref in keep.refs or name in keep.unknown_names:
            remaining_hashes.add(hash_tag)
            continue
        removals.append(Removal("image", tag.ref, tag.size, "not the current build of any image"))
    for entry in sorted(entries, key=lambda e: str(e.path)):
        rel = entry.path.relative_to(store_root)
        top = rel.parts[0]
        stale = now - entry.mtime > STALE_SECONDS
        if top == "sha256" and len(rel.parts) == 2:
            if rel.name.startswith(".partial-"):
                if stale:
                    removals.append(
                        Removal("store", str(entry.path), entry.size, "unfinished download")
                    )
            elif rel.name not in keep.sha256:
                removals.append(
                    Removal("store", str(entry.path), entry.size, "no lock entry names this input")
                )
        elif top == "layers" and len(rel.parts) == 2 and rel.suffix == ".json":
            if rel.stem not in keep.layer_keys:
                removals.append(
                    Removal("layer", str(entry.path), entry.size, "no current image has it")
                )
        elif top == "trees" and len(rel.parts) == 2:
            if rel.name not in keep.layer_keys and (stale or not rel.name.startswith(".")):
                removals.append(
                    Removal("tree", str(entry.path), entry.size, "no current image needs it")
                )
        elif top == "rootfs" and len(rel.parts) == 2 and rel.suffix == ".tar":
            removals.append(
                Removal(
                    "rootfs",
                    str(entry.path),
                    entry.size,
                    "left by an older builder (root filesystems are layers now)",
                )
            )
        elif top == "builds" and len(rel.parts) == 2 and rel.suffix == ".json":
            if rel.stem[:32] not in remaining_hashes:
                removals.append(Removal("record", str(entry.path), entry.size, "its image is gone"))
        elif stale and _is_workdir(rel):
            removals.append(
                Removal("workdir", str(entry.path), entry.size, "left by an interrupted build")
            )
    return removals


def _is_workdir(rel: Path) -> bool:
    """Build scratch space: tmp/* and the store's top-level rootfs-*/verify-* directories."""
    if rel.parts[0] == "tmp":
        return len(rel.parts) == 2
    return len(rel.parts) == 1 and re.match(r"^(rootfs|verify)-", rel.parts[0]) is not None


# --- gathering what exists ---------------------------------------------------------
def current_keep(root: Path, store: Path | None, runner: Runner) -> Keep:
    from codebase_mcp.builder.build import Builder
    from codebase_mcp.builder.definitions import image_names
    from codebase_mcp.builder.layerstore import LayerStore
    from codebase_mcp.builder.lockfile import load_lock

    lock = load_lock(root)
    builder = Builder.create(root, store, runner)
    refs: set[str] = set()
    unknown: set[str] = set()
    layer_keys: set[str] = set()
    for name in image_names(root):
        try:
            image_plan = builder.plan(name, lock)[2]
        except Exception as exc:
            ui.warn(f"keeping every build of '{name}': its current ref is unknown ({exc})")
            unknown.add(name)
            continue
        refs.add(image_plan.ref)
        layer_keys.update(layer.key for layer in image_plan.layers)
    sha: set[str] = set()
    layers = LayerStore(builder.store.root)
    for key in layer_keys:
        record = layers.record(key)
        if record is not None:
            sha.add(str(record.get("digest", "")))
    for entry in lock.images.values():
        sha.update(p.sha256 for p in entry.debian.packages)
        if entry.python is not None:
            for w in [*entry.python.wheels, *entry.python.no_deps, *entry.python.tools]:
                sha.add(w.sha256)
    return Keep(frozenset(refs), frozenset(unknown), frozenset(sha), frozenset(layer_keys))


def local_tags(runner: Runner, storage_args: tuple[str, ...] = ()) -> list[LocalTag]:
    out = runner.run(
        [
            "podman",
            *storage_args,
            "images",
            "--format",
            "json",
            "--filter",
            f"reference={REF_PREFIX}*",
        ]
    ).stdout
    tags: dict[str, LocalTag] = {}  # podman lists an image once per tag, each with all names
    for image in json.loads(out or "[]"):
        for name in image.get("Names") or []:
            if name.startswith(REF_PREFIX):
                tags[name] = LocalTag(name, str(image.get("Id", "")), int(image.get("Size", 0)))
    return sorted(tags.values(), key=lambda t: t.ref)


def store_entries(store_root: Path) -> list[StoreEntry]:
    """Files and work directories in the store (a directory counts as one entry)."""
    entries: list[StoreEntry] = []
    if not store_root.is_dir():
        return entries
    for child in store_root.iterdir():
        if child.is_dir() and child.name in (
            "sha256",
            "layers",
            "trees",
            "rootfs",
            "builds",
            "tmp",
        ):
            for item in child.iterdir():
                entries.append(_entry(item))
        elif child.is_dir():
            entries.append(_entry(child))
    return entries


def _entry(path: Path) -> StoreEntry:
    st = path.lstat()
    size = st.st_size
    if path.is_dir() and not path.is_symlink():
        size = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
    return StoreEntry(path, size, st.st_mtime)


# --- removing ----------------------------------------------------------------------
def apply(
    removals: list[Removal], runner: Runner, storage_args: tuple[str, ...] = ()
) -> list[tuple[Removal, str]]:
    """Remove each planned item; returns the ones that could not go, with why."""
    failed = []
    for item in removals:
        if item.kind == "image":
            result = runner.run(["podman", *storage_args, "rmi", item.target], check=False)
            if result.returncode != 0:
                failed.append(
                    (
                        item,
                        result.stderr.strip().splitlines()[-1:][0]
                        if result.stderr.strip()
                        else "podman rmi failed",
                    )
                )
            continue
        path = Path(item.target)
        try:
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)  # an unpacked root filesystem has read-only directories
                if path.exists():
                    raise OSError(f"could not remove everything under {path}")
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            failed.append((item, str(exc)))
    return failed


def gc(
    root: Path,
    store_root: Path,
    *,
    runner: Runner,
    storage_args: tuple[str, ...] = (),
    now: float | None = None,
) -> list[Removal]:
    keep = current_keep(root, store_root, runner)
    return plan_gc(
        keep,
        local_tags(runner, storage_args),
        store_root,
        store_entries(store_root),
        time.time() if now is None else now,
    )
