"""Canonical layer order: the same bytes whichever storage driver listed the entries."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.builder import layers
from codebase_mcp.errors import BuildError
from codebase_mcp.proc import Result, Runner

SITE = "opt/venv/lib/python3.13/site-packages"
LONG = "x" * 90  # with SITE, names longer than 100 bytes: PAX extended headers

# (name, type, content or link target)
ENTRIES: list[tuple[str, bytes, str]] = [
    ("opt", tarfile.DIRTYPE, ""),
    ("opt/venv", tarfile.DIRTYPE, ""),
    (f"{SITE}", tarfile.DIRTYPE, ""),
    (f"{SITE}/pkg", tarfile.DIRTYPE, ""),
    (f"{SITE}/pkg/__init__.py", tarfile.REGTYPE, "print('hi')\n"),
    (f"{SITE}/pkg/{LONG}.py", tarfile.REGTYPE, "y = 2\n" * 200),
    (f"{SITE}/pkg-1.0.dist-info", tarfile.DIRTYPE, ""),
    (f"{SITE}/pkg-1.0.dist-info/RECORD", tarfile.REGTYPE, "pkg/__init__.py,,\n"),
    (f"{SITE}/pkg.libs", tarfile.DIRTYPE, ""),
    (f"{SITE}/pkg.libs/lib.so", tarfile.SYMTYPE, "../pkg/__init__.py"),
]


def write_tar(path: Path, entries: Sequence[tuple[str, bytes, str]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = 1795252544
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            payload = None
            if kind == tarfile.REGTYPE:
                payload = io.BytesIO(data.encode())
                info.size = len(data.encode())
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data
            tar.addfile(info, payload)
    return path


def walk_order() -> list[tuple[str, bytes, str]]:
    """A directory, then its children: what overlay's native diff writes."""
    return sorted(ENTRIES, key=lambda e: e[0].split("/"))


def path_order() -> list[tuple[str, bytes, str]]:
    """Whole paths sorted as strings: what vfs (rootless) writes."""
    return sorted(ENTRIES, key=lambda e: e[0])


def test_the_two_drivers_orders_really_differ() -> None:
    assert walk_order() != path_order()
    names = [e[0].rsplit("/", 1)[-1] for e in path_order()]
    assert names.index("pkg-1.0.dist-info") < names.index("__init__.py")


def test_path_sorted_layer_is_rewritten_to_the_walk_ordered_bytes(tmp_path: Path) -> None:
    naive = write_tar(tmp_path / "naive.tar", path_order())
    native = write_tar(tmp_path / "native.tar", walk_order())
    out = tmp_path / "out.tar"
    assert layers.canonical_layer(naive, out) is True
    assert out.read_bytes() == native.read_bytes()
    with tarfile.open(out) as tar:  # still a valid archive, contents intact
        member = tar.extractfile(f"{SITE}/pkg/{LONG}.py")
        assert member is not None and member.read() == ("y = 2\n" * 200).encode()


def test_walk_ordered_layer_is_left_alone(tmp_path: Path) -> None:
    native = write_tar(tmp_path / "native.tar", walk_order())
    out = tmp_path / "out.tar"
    assert layers.canonical_layer(native, out) is False
    assert not out.exists()


def test_hard_link_before_its_target_is_refused(tmp_path: Path) -> None:
    entries = [
        ("a", tarfile.DIRTYPE, ""),
        ("a-b", tarfile.REGTYPE, "data"),
        ("a/link", tarfile.LNKTYPE, "a-b"),  # walk order puts a/link before a-b
    ]
    path = write_tar(tmp_path / "links.tar", sorted(entries, key=lambda e: e[0]))
    with pytest.raises(BuildError, match="hard link"):
        layers.canonical_layer(path, tmp_path / "out.tar")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_dir(tmp_path: Path, order: list[tuple[str, bytes, str]]) -> tuple[Path, str]:
    """What `podman push REF dir:X` writes: blobs by digest, config, manifest.json."""
    export = tmp_path / "image"
    export.mkdir()
    base = write_tar(tmp_path / "base.tar", [("etc", tarfile.DIRTYPE, "")])
    layer = write_tar(tmp_path / "layer.tar", order)
    digests = []
    for blob in (base, layer):
        digest = sha(blob)
        blob.replace(export / digest)
        digests.append(digest)
    config = json.dumps(
        {"config": {"Labels": {"x": "y"}}, "rootfs": {"diff_ids": [f"sha256:{d}" for d in digests]}}
    )
    config_digest = hashlib.sha256(config.encode()).hexdigest()
    (export / config_digest).write_text(config)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"digest": f"sha256:{config_digest}", "size": len(config)},
        "layers": [
            {"mediaType": layers.UNCOMPRESSED, "digest": f"sha256:{d}", "size": 1} for d in digests
        ],
    }
    (export / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")))
    return export, config_digest


def test_exported_image_gets_new_layer_config_and_manifest_digests(tmp_path: Path) -> None:
    export, old_config = export_dir(tmp_path, path_order())
    expected_layer = sha(write_tar(tmp_path / "expected.tar", walk_order()))
    assert layers.rewrite_exported(export) is True
    manifest = json.loads((export / "manifest.json").read_text())
    new_config = manifest["config"]["digest"].removeprefix("sha256:")
    assert new_config != old_config and not (export / old_config).exists()
    assert sha(export / new_config) == new_config
    assert manifest["layers"][1]["digest"] == f"sha256:{expected_layer}"
    assert sha(export / expected_layer) == expected_layer
    config = json.loads((export / new_config).read_text())
    assert config["rootfs"]["diff_ids"][1] == f"sha256:{expected_layer}"
    assert config["config"] == {"Labels": {"x": "y"}}  # everything else untouched
    assert sorted(p.name for p in export.iterdir()) == sorted(
        ["manifest.json", new_config, expected_layer, manifest["layers"][0]["digest"][7:]]
    )


def test_exported_image_in_walk_order_is_not_touched(tmp_path: Path) -> None:
    export, _ = export_dir(tmp_path, walk_order())
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    assert layers.rewrite_exported(export) is False
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before


class FakePodman(Runner):
    """push writes an export like podman's; pull answers a new image ID."""

    def __init__(self, tmp_path: Path, order: list[tuple[str, bytes, str]]) -> None:
        super().__init__()
        self.tmp_path = tmp_path
        self.order = order

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
        args = [str(a) for a in argv]
        self.calls.append(tuple(args))
        if args[1:3] == ["--root", "/s"] and "push" in args:
            target = Path(args[-1].removeprefix("dir:"))
            export, _ = export_dir(self.tmp_path, self.order)
            export.replace(target)
        if "pull" in args:
            manifest = json.loads((Path(args[-1][4:]) / "manifest.json").read_text())
            return Result(tuple(args), 0, manifest["config"]["digest"] + "\n")
        if "inspect" in args:
            return Result(tuple(args), 0, "old0id\n")
        return Result(tuple(args), 0, "")


def test_canonicalise_reimports_and_retags_only_when_needed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    runner = FakePodman(tmp_path, path_order())
    new_id = layers.canonicalise_image(runner, ("--root", "/s"), "localhost/x:1", work)
    assert new_id is not None
    verbs = [c[3] if c[3] != "image" else c[4] for c in runner.calls]
    assert verbs == ["push", "inspect", "pull", "tag", "rm"]
    assert runner.calls[3] == ("podman", "--root", "/s", "tag", new_id, "localhost/x:1")
    assert runner.calls[4][-1] == "old0id"
    assert not (work / "image").exists()

    (tmp_path / "again").mkdir()
    quiet = FakePodman(tmp_path / "again", walk_order())
    assert layers.canonicalise_image(quiet, ("--root", "/s"), "localhost/x:1", work) is None
    assert [c[3] for c in quiet.calls] == ["push"]
