"""An image as an OCI layout written by the builder: layer blobs, a config, a manifest.

Pure functions make the JSON documents (canonical: sorted keys, no spaces), so
the image ID (the config's sha256) and the manifest digest depend on the
layers and the definition only. ``skopeo copy oci:DIR containers-storage:REF``
then stores the image exactly as written: no storage driver computes a layer,
so root (overlay) and rootless (vfs) get the same image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from codebase_mcp.builder.definitions import RuntimeConfig, canonical_json

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Blob:
    digest: str  # hex
    size: int
    path: Path | None = None  # on disk (layers); None for documents held in memory


def created(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runtime_config(config: RuntimeConfig, labels: dict[str, str]) -> dict[str, object]:
    """The ``config`` member of an image config, from the definition's runtime section."""
    out: dict[str, object] = {}
    if config.user:
        out["User"] = config.user
    if config.expose:
        out["ExposedPorts"] = {f"{port}/tcp": {} for port in sorted(config.expose)}
    if config.env:
        out["Env"] = [f"{key}={value}" for key, value in sorted(config.env.items())]
    if config.entrypoint:
        out["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        out["Cmd"] = list(config.cmd)
    if config.volumes:
        out["Volumes"] = {path: {} for path in sorted(config.volumes)}
    if config.workdir:
        out["WorkingDir"] = config.workdir
    if labels:
        out["Labels"] = dict(sorted(labels.items()))
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    return out


def image_config(
    config: RuntimeConfig,
    labels: dict[str, str],
    diff_ids: Sequence[str],
    epoch: int,
    layer_names: Sequence[str] = (),
) -> bytes:
    """The image config; its sha256 is the image ID."""
    when = created(epoch)
    document: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": when,
        "config": runtime_config(config, labels),
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
    }
    if layer_names:
        document["history"] = [
            {"created": when, "created_by": f"codebase-mcp layer {name}"} for name in layer_names
        ]
    return canonical_json(document).encode()


def manifest(config: bytes, layers: Sequence[Blob]) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": CONFIG,
                "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER, "digest": f"sha256:{b.digest}", "size": b.size} for b in layers
            ],
        }
    ).encode()


def index(manifest_bytes: bytes) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MANIFEST,
                    "digest": f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}",
                    "size": len(manifest_bytes),
                }
            ],
        }
    ).encode()


def write_layout(directory: Path, config: bytes, layers: Sequence[Blob]) -> str:
    """Write an OCI layout; layer blobs are hard links (copies across file systems).

    Returns the manifest digest (``sha256:…``).
    """
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        assert layer.path is not None
        target = blobs / layer.digest
        if not target.exists():
            try:
                os.link(layer.path, target)
            except OSError:
                shutil.copyfile(layer.path, target)
    manifest_bytes = manifest(config, layers)
    for document in (config, manifest_bytes):
        (blobs / hashlib.sha256(document).hexdigest()).write_bytes(document)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_bytes(index(manifest_bytes))
    return f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}"


def storage_transport(storage_args: Sequence[str], ref: str) -> str:
    """``containers-storage:[driver@graphroot+runroot]REF`` for podman's ``--root`` & co."""
    args = list(storage_args)
    values: dict[str, str] = {}
    for flag in ("--root", "--runroot", "--storage-driver"):
        if flag in args:
            values[flag] = args[args.index(flag) + 1]
    if not values:
        return f"containers-storage:{ref}"
    driver = values.get("--storage-driver", "")
    spec = f"{driver}@" if driver else ""
    spec += values.get("--root", "")
    if "--runroot" in values:
        spec += f"+{values['--runroot']}"
    return f"containers-storage:[{spec}]{ref}"


def copy_argv(layout: Path, storage_args: Sequence[str], ref: str) -> list[str]:
    """Store the layout's image in containers-storage under ``ref``, layers as they are."""
    return ["skopeo", "copy", "--quiet", f"oci:{layout}", storage_transport(storage_args, ref)]
