"""The layer store: atomic writes, every use re-hashed, a corrupt blob never returned."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import BinaryIO

import pytest

from codebase_mcp.builder.layerstore import LayerStore
from codebase_mcp.errors import LayerCorrupt, StoreFull


def write(data: bytes):  # type: ignore[no-untyped-def]
    def go(out: BinaryIO) -> None:
        out.write(data)

    return go


def test_a_layer_is_stored_by_its_digest_and_found_by_its_key(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    made = store.put("k1", "app", write(b"layer bytes"))
    assert made.digest == hashlib.sha256(b"layer bytes").hexdigest()
    assert made.path == tmp_path / "sha256" / made.digest
    assert store.get("k1") == made
    assert store.get("k2") is None
    # Another key with the same bytes shares the blob.
    assert store.put("k2", "app", write(b"layer bytes")).path == made.path


def test_a_tampered_blob_is_detected_removed_and_never_returned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LayerStore(tmp_path)
    made = store.put("k1", "python-deps", write(b"good"))
    made.path.chmod(0o644)
    made.path.write_bytes(b"evil")
    assert store.get("k1") is None
    err = capsys.readouterr().err
    assert "corrupt" in err and "python-deps" in err and "not used" in err
    assert not made.path.exists() and not store.record_path("k1").exists()
    with pytest.raises(LayerCorrupt, match="missing or corrupt"):
        store.require("k1")


def test_disk_full_mid_write_leaves_neither_record_nor_blob(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)

    def fills_up(out: BinaryIO) -> None:
        out.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StoreFull) as info:
        store.put("k1", "rootfs", fills_up)
    assert "nothing was stored" in info.value.message and info.value.hint
    assert store.get("k1") is None
    assert list((tmp_path / "sha256").iterdir()) == []
    assert list((tmp_path / "layers").iterdir()) == []


def test_an_unreadable_record_is_dropped(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    store.put("k1", "app", write(b"a"))
    store.record_path("k1").write_text("{not json")
    assert store.get("k1") is None
    assert not store.record_path("k1").exists()
