"""The image documents: canonical JSON, so the image ID depends on the inputs alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from codebase_mcp.builder import oci
from codebase_mcp.builder.definitions import RuntimeConfig

CONFIG = RuntimeConfig(
    user="10001:10001",
    workdir="/tmp",
    env={"PATH": "/usr/bin", "LANG": "C.UTF-8"},
    entrypoint=["/opt/venv/bin/x"],
    cmd=["serve"],
    expose=[8000],
    stop_signal="SIGTERM",
    volumes=["/data"],
)


def test_config_is_canonical_and_carries_the_runtime() -> None:
    data = oci.image_config(CONFIG, {"b": "2", "a": "1"}, ["aa" * 32], 1767225600, ["rootfs"])
    assert data == oci.image_config(
        CONFIG, {"a": "1", "b": "2"}, ["aa" * 32], 1767225600, ["rootfs"]
    )
    doc = json.loads(data)
    assert data.decode() == json.dumps(doc, sort_keys=True, separators=(",", ":"))
    config = doc["config"]
    assert config["Env"] == ["LANG=C.UTF-8", "PATH=/usr/bin"]
    assert config["ExposedPorts"] == {"8000/tcp": {}} and config["Volumes"] == {"/data": {}}
    assert config["User"] == "10001:10001" and config["StopSignal"] == "SIGTERM"
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{'aa' * 32}"]}
    assert doc["created"] == "2026-01-01T00:00:00Z"
    assert doc["history"] == [
        {"created": doc["created"], "created_by": "codebase-mcp layer rootfs"}
    ]


def test_layout_links_the_blobs_and_names_the_manifest(tmp_path: Path) -> None:
    blob = tmp_path / "layer.tar"
    blob.write_bytes(b"tar")
    digest = hashlib.sha256(b"tar").hexdigest()
    config = oci.image_config(CONFIG, {}, [digest], 0)
    manifest_digest = oci.write_layout(tmp_path / "img", config, [oci.Blob(digest, 3, blob)])
    blobs = tmp_path / "img" / "blobs" / "sha256"
    assert (blobs / digest).stat().st_ino == blob.stat().st_ino  # a hard link, not a copy
    index = json.loads((tmp_path / "img" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == manifest_digest
    manifest = json.loads((blobs / manifest_digest.split(":")[1]).read_text())
    assert manifest["config"]["digest"] == f"sha256:{hashlib.sha256(config).hexdigest()}"
    assert manifest["layers"] == [{"mediaType": oci.LAYER, "digest": f"sha256:{digest}", "size": 3}]


def test_storage_transport_names_a_throwaway_storage() -> None:
    args = ("--root", "/s/root", "--runroot", "/tmp/r", "--storage-driver", "vfs")
    assert (
        oci.storage_transport(args, "localhost/x:1")
        == "containers-storage:[vfs@/s/root+/tmp/r]localhost/x:1"
    )
    assert oci.storage_transport((), "localhost/x:1") == "containers-storage:localhost/x:1"
    argv = oci.copy_argv(Path("/l"), (), "localhost/x:1")
    assert argv == ["skopeo", "copy", "--quiet", "oci:/l", "containers-storage:localhost/x:1"]
