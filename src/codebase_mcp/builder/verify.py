"""``image verify``: rebuild from nothing in a throwaway storage and compare with the stored build.

The rebuild uses a fresh containers-storage (``--root``/``--runroot``) and a
fresh layer store (every layer made again: root filesystem, venv, project), so
nothing is shared with the first build but the fetched inputs. The first build
may have been built here or substituted from a registry: either way the image
must be the one the inputs make. On a difference, the first differing layer of
each image is exported and compared file by file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.builder.build import Builder, remove_tree
from codebase_mcp.builder.layerstore import LayerStore
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.errors import NotReproducible
from codebase_mcp.proc import Runner


@dataclass(frozen=True)
class Storage:
    """A containers-storage location, as engine arguments."""

    args: tuple[str, ...] = ()
    scratch: Path | None = None  # throwaway storages: a work folder beside the storage
    runroot: Path | None = None

    @classmethod
    def throwaway(cls, base: Path, driver: str) -> Storage:
        # podman refuses run roots longer than 50 characters: keep it short, under /tmp.
        runroot = Path("/tmp") / f"cbm-verify-{base.name[-8:]}"
        args = ("--root", str(base / "root"), "--runroot", str(runroot), "--storage-driver", driver)
        return cls(args, scratch=base, runroot=runroot)


@contextmanager
def throwaway_storage(store: Store, runner: Runner, prefix: str) -> Iterator[Storage]:
    """A fresh containers-storage under the store, emptied and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=store.root))
    storage = Storage.throwaway(base, storage_driver(runner))
    try:
        yield storage
    finally:
        runner.run(["podman", *storage.args, "rmi", "-a", "-f"], check=False)
        remove_tree(base)  # its layer store's unpacked tree has read-only directories
        shutil.rmtree(runroot_of(storage), ignore_errors=True)


def runroot_of(storage: Storage) -> Path:
    assert storage.runroot is not None
    return storage.runroot


def scratch_of(storage: Storage) -> Path:
    assert storage.scratch is not None
    return storage.scratch


def storage_driver(runner: Runner) -> str:
    return runner.run(["podman", "info", "--format", "{{.Store.GraphDriverName}}"]).stdout.strip()


def layers(runner: Runner, storage: Storage, ref: str) -> tuple[str, list[str]]:
    out = runner.run(["podman", *storage.args, "image", "inspect", ref]).stdout
    info = json.loads(out)[0]
    return str(info["Id"]), list(info["RootFS"]["Layers"])


def verify_images(
    root: Path, names: list[str], store: Path | None = None
) -> list[dict[str, object]]:
    runner = Runner()
    store_obj = Store(store or default_store())
    original = Builder(root=root, store=store_obj, runner=runner)
    reports = []
    for name in names:
        (first,) = original.build([name])
        with throwaway_storage(store_obj, runner, "verify-") as storage:
            again = Builder(
                root=root,
                store=store_obj,
                runner=runner,
                storage_args=storage.args,
                layer_store=LayerStore(scratch_of(storage) / "layers"),
            )
            with ui.step(f"{name}: rebuilding from scratch in a throwaway storage"):
                (second,) = again.build([name], force=True)
            id_a, layers_a = layers(runner, Storage(), first.ref)
            id_b, layers_b = layers(runner, storage, second.ref)
            if id_a != id_b or layers_a != layers_b:
                detail = explain(
                    runner,
                    (first.ref, second.ref),
                    storage,
                    (layers_a, layers_b),
                    scratch_of(storage),
                )
                raise NotReproducible(
                    f"image '{name}' is not reproducible: image id {id_a[:12]} vs {id_b[:12]}; "
                    f"{detail}",
                    hint="the differing file above names what to normalise (see "
                    "docs/builder.md, 'Reproducibility')",
                )
            reports.append(
                {
                    "name": name,
                    "ref": first.ref,
                    "image_id": f"sha256:{id_a}",
                    "layers": layers_a,
                    "identical": True,
                }
            )
    return reports


def explain(
    runner: Runner,
    refs: tuple[str, str],
    storage: Storage,
    both_layers: tuple[list[str], list[str]],
    base: Path,
) -> str:
    layers_a, layers_b = both_layers
    if refs[0] != refs[1]:
        return f"the inputs changed during the rebuild ({refs[0]} vs {refs[1]})"
    index = next(
        (i for i, (a, b) in enumerate(zip(layers_a, layers_b, strict=False)) if a != b),
        min(len(layers_a), len(layers_b)),
    )
    if len(layers_a) != len(layers_b):
        return f"layer counts differ ({len(layers_a)} vs {len(layers_b)})"
    if index >= len(layers_a):
        return "layers are identical, the image configuration differs: " + config_difference(
            runner, refs, storage
        )
    tar_a = export_layer(runner, Storage(), refs[0], index, base / "a")
    tar_b = export_layer(runner, storage, refs[1], index, base / "b")
    path = first_differing_file(tar_a, tar_b)
    return f"layer {index + 1} differs, first at {path}"


IGNORED_KEYS = {"Id", "Digest", "RepoTags", "RepoDigests", "Names", "NamesHistory", "GraphDriver"}


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not prefix and key in IGNORED_KEYS:
                continue
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def config_difference(runner: Runner, refs: tuple[str, str], storage: Storage) -> str:
    a = json.loads(runner.run(["podman", "image", "inspect", refs[0]]).stdout)[0]
    b = json.loads(runner.run(["podman", *storage.args, "image", "inspect", refs[1]]).stdout)[0]
    flat_a, flat_b = flatten(a), flatten(b)
    keys = [k for k in sorted(set(flat_a) | set(flat_b)) if flat_a.get(k) != flat_b.get(k)]
    return "; ".join(f"{k}: {flat_a.get(k)!r} vs {flat_b.get(k)!r}" for k in keys[:6]) or "?"


def export_layer(runner: Runner, storage: Storage, ref: str, index: int, out: Path) -> Path:
    runner.run(
        ["podman", *storage.args, "image", "save", "--format", "oci-dir", "-o", str(out), ref]
    )
    index_json = json.loads((out / "index.json").read_text())
    manifest_digest = index_json["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((out / "blobs" / "sha256" / manifest_digest).read_text())
    layer_digest = str(manifest["layers"][index]["digest"]).split(":", 1)[1]
    return out / "blobs" / "sha256" / layer_digest


def tar_entries(path: Path) -> dict[str, tuple[object, ...]]:
    entries: dict[str, tuple[object, ...]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            content = ""
            if member.isfile():
                fh = tar.extractfile(member)
                content = hashlib.sha256(fh.read() if fh else b"").hexdigest()
            entries[member.name] = (
                member.type,
                member.mode,
                member.uid,
                member.gid,
                member.mtime,
                member.linkname,
                content,
            )
    return entries


def first_differing_file(tar_a: Path, tar_b: Path) -> str:
    a, b = tar_entries(tar_a), tar_entries(tar_b)
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            return f"/{name.lstrip('./')} ({describe(a.get(name))} vs {describe(b.get(name))})"
    return "(no file differs: the layer metadata does)"


def describe(entry: tuple[object, ...] | None) -> str:
    if entry is None:
        return "absent"
    _kind, mode, uid, gid, mtime, _link, content = entry
    return f"mode {int(str(mode)):o} uid {uid} gid {gid} mtime {mtime} sha256 {str(content)[:12]}"
