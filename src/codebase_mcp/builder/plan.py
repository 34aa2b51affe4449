"""Plan a build: the image's layers as derivations, their keys, the input hash, the labels.

Everything here is pure (no processes): tests check plans without an engine.

An image is a stack of layers, each a derivation: a key (the hash of everything
that goes into the layer, nothing else) and a recipe. The builder makes a layer
once per key and keeps it in the store (``layerstore.py``); an image is then
assembled from the layers' blobs and a config (``oci.py``). The layers, in order:

1. ``rootfs``: the Debian root filesystem (mmdebstrap from the locked .debs).
2. ``python-common``: the venv itself and the locked wheels that every Python
   image on the same root filesystem has (shared by the server and embedder).
3. ``python-deps``: the image's other locked wheels (absent when none).
4. ``app``: the project wheel (absent without ``[project]``). It depends on the
   project files, pip and the interpreter, not on the other wheels (pip runs
   with --no-deps), so a source edit remakes this layer only, and images with
   the same project share it.
5. ``files``: files from the image's folder at their paths in the image.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from codebase_mcp import __version__
from codebase_mcp.builder.definitions import ImageDefinition, canonical_json, sha256_text
from codebase_mcp.builder.lockfile import ImageLock, LockedWheel
from codebase_mcp.errors import DefinitionError

REF_PREFIX = "localhost/codebase-mcp-"
HASH_LABEL = "io.codebase-mcp.input-hash"
# Bump when the builder changes how images are made: it is part of every input hash.
BUILDER_FORMAT = 5
# Bump when a layer's recipe changes: it is part of every layer key.
LAYER_FORMAT = 1

LayerKind = Literal["rootfs", "python", "app", "files"]


@dataclass(frozen=True)
class LayerPlan:
    """One layer of an image: what it is made of, and its key."""

    name: str
    kind: LayerKind
    key: str
    rootfs: str = ""  # key of the root filesystem layer a python/app layer is made on
    venv: str = ""
    wheels: tuple[LockedWheel, ...] = ()  # python: the wheels installed
    skeleton: bool = False  # python: the layer holds the venv itself
    pip: LockedWheel | None = None
    files: tuple[tuple[str, str, int], ...] = ()  # files: (path in image, source, mode)


@dataclass(frozen=True)
class ImagePlan:
    name: str
    ref: str
    input_hash: str
    layers: tuple[LayerPlan, ...]
    labels: dict[str, str] = field(default_factory=dict)
    project_digest: str | None = None  # hash of the project files copied in, if any
    rootfs_key: str = ""  # what the root filesystem is made of (see build.rootfs_key)

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    def layer(self, kind: LayerKind) -> LayerPlan | None:
        return next((layer for layer in self.layers if layer.kind == kind), None)


def _key(payload: dict[str, object]) -> str:
    return sha256_text(canonical_json({"format": LAYER_FORMAT, **payload}))


def _id(wheel: LockedWheel) -> tuple[str, str, str]:
    return (wheel.name, wheel.version, wheel.sha256)


def _wheel_ids(wheels: tuple[LockedWheel, ...] | list[LockedWheel]) -> list[list[str]]:
    return sorted([w.name, w.version, w.sha256] for w in wheels)


def rootfs_layer(rootfs_key: str) -> LayerPlan:
    return LayerPlan("rootfs", "rootfs", _key({"kind": "rootfs", "rootfs": rootfs_key}))


def python_layer(
    name: str,
    rootfs: LayerPlan,
    venv: str,
    pip: LockedWheel,
    wheels: list[LockedWheel],
    *,
    skeleton: bool,
    epoch: int,
) -> LayerPlan:
    ordered = tuple(sorted(wheels, key=lambda w: (w.name, w.version)))
    key = _key(
        {
            "kind": "python",
            "rootfs": rootfs.key,
            "venv": venv,
            "pip": pip.sha256,
            "wheels": _wheel_ids(ordered),
            "skeleton": skeleton,
            "epoch": epoch,
        }
    )
    return LayerPlan(
        name, "python", key, rootfs=rootfs.key, venv=venv, wheels=ordered, skeleton=skeleton,
        pip=pip,
    )  # fmt: skip


def app_layer(
    rootfs: LayerPlan, venv: str, pip: LockedWheel, project_digest: str, epoch: int
) -> LayerPlan:
    key = _key(
        {
            "kind": "app",
            "rootfs": rootfs.key,
            "venv": venv,
            "pip": pip.sha256,
            "project": project_digest,
            "epoch": epoch,
        }
    )
    return LayerPlan("app", "app", key, rootfs=rootfs.key, venv=venv, pip=pip)


def files_layer(files: list[tuple[str, str, str, int]], epoch: int) -> LayerPlan:
    """``files``: (path in image, source path, sha256 of the source, mode)."""
    entries = sorted(files)
    # The source's path is where this checkout is: not part of the key, its content is.
    content = [[dest, sha, mode] for dest, _src, sha, mode in entries]
    key = _key({"kind": "files", "files": content, "epoch": epoch})
    return LayerPlan(
        "files", "files", key, files=tuple((dest, src, mode) for dest, src, _sha, mode in entries)
    )


def check_image_path(image: str, path: str) -> str:
    """An absolute, normalised path inside the image (no '..', not '/')."""
    clean = posixpath.normpath(path)
    if not path.startswith("/") or clean != path or clean == "/" or "/../" in f"{clean}/":
        raise DefinitionError(
            f"image '{image}': files key '{path}' is not a normalised absolute path in the image",
            hint='write it like "/usr/local/bin/tool" (no "..", no trailing "/")',
        )
    return clean


def common_wheels(entries: list[ImageLock]) -> list[LockedWheel]:
    """The locked wheels every one of ``entries`` installs (same name, version and hash)."""
    sets = [{_id(w): w for w in [*e.python.wheels, *e.python.no_deps]} for e in entries if e.python]
    if not sets:
        return []
    shared = set(sets[0]).intersection(*sets[1:])
    return sorted((sets[0][s] for s in shared), key=lambda w: (w.name, w.version))


def python_layers(
    rootfs: LayerPlan,
    venv: str,
    entry: ImageLock,
    shared: list[LockedWheel],
    epoch: int,
) -> list[LayerPlan]:
    """The venv layers: the wheels shared with sibling images, then the image's own."""
    assert entry.python is not None
    pip = entry.python.tools[0]
    installed = [*entry.python.wheels, *entry.python.no_deps]
    shared_ids = {_id(w) for w in shared}
    own = [w for w in installed if _id(w) not in shared_ids]
    common = [w for w in installed if _id(w) in shared_ids]
    layers = [python_layer("python-common", rootfs, venv, pip, common, skeleton=True, epoch=epoch)]
    if own:
        layers.append(
            python_layer("python-deps", rootfs, venv, pip, own, skeleton=False, epoch=epoch)
        )
    return layers


def input_hash(
    *,
    provenance: dict[str, str],
    rootfs: str,
    definition: ImageDefinition,
    layers: list[LayerPlan],
    entry: ImageLock,
    epoch: int,
    project_digest: str | None,
) -> str:
    """The content address of an image: everything that goes into it, and nothing else."""
    payload = {
        "builder": [__version__, BUILDER_FORMAT],
        "layers": [[layer.name, layer.key] for layer in layers],
        "rootfs": rootfs,
        "provenance": provenance,
        "lock": entry.model_dump(mode="json", exclude={"resolved_from"}),
        "epoch": epoch,
        "project": project_digest,
        "config": definition.config.model_dump(mode="json"),
        "description": definition.description,
    }
    return sha256_text(canonical_json(payload))


def requirements_text(wheels: list[LockedWheel] | tuple[LockedWheel, ...]) -> str:
    """pip requirements pinning every wheel by version and hash (installed with --no-deps)."""
    lines = [
        f"{w.name}=={w.version} --hash=sha256:{w.sha256}"
        for w in sorted(wheels, key=lambda w: w.name)
    ]
    return "\n".join(lines) + "\n"


def image_ref(name: str, digest: str) -> str:
    return f"{REF_PREFIX}{name}:{digest[:32]}"


def oci_labels(
    definition: ImageDefinition, digest: str, epoch: int, provenance: dict[str, str] | None = None
) -> dict[str, str]:
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": f"codebase-mcp-{definition.name}",
        "org.opencontainers.image.description": definition.description,
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "MIT",
        HASH_LABEL: digest,
    }
    for key in ("revision", "source"):
        if provenance and provenance.get(key):
            labels[f"org.opencontainers.image.{key}"] = provenance[key]
    labels.update(definition.config.labels)
    return dict(sorted(labels.items()))
