"""Canonical layer tars: the same files give the same bytes, whoever wrote the source."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from codebase_mcp.builder import tarball
from codebase_mcp.errors import BuildError

EPOCH = 1767225600


def tree(root: Path) -> Path:
    site = root / "opt" / "venv" / "lib" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg-1.0.dist-info").mkdir()
    (site / "pkg" / "__init__.py").write_text("print('hi')\n")
    (site / "pkg" / ("x" * 120 + ".py")).write_text("y = 2\n")  # a PAX long name
    (site / "pkg-1.0.dist-info" / "RECORD").write_text("pkg/__init__.py,,\n")
    (root / "opt" / "venv" / "bin").mkdir()
    (root / "opt" / "venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    os.link(site / "pkg" / "__init__.py", site / "pkg" / "again.py")
    return root


def tar_bytes(root: Path) -> bytes:
    out = io.BytesIO()
    tarball.tree_tar(root, out, EPOCH)
    return out.getvalue()


def test_tree_tar_is_in_walk_order_owned_by_root_at_the_epoch(tmp_path: Path) -> None:
    data = tar_bytes(tree(tmp_path / "a"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[:3] == ["opt", "opt/venv", "opt/venv/bin"]
    # walk order: pkg's children before pkg-1.0.dist-info ('-' sorts before '/' as a string)
    assert names.index("opt/venv/lib/site-packages/pkg/__init__.py") < names.index(
        "opt/venv/lib/site-packages/pkg-1.0.dist-info"
    )
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", EPOCH)}
    link = next(m for m in members if m.name.endswith("again.py"))
    assert link.islnk() and link.linkname.endswith("pkg/__init__.py")


def test_same_files_same_bytes_whatever_the_times_and_creation_order(tmp_path: Path) -> None:
    a = tree(tmp_path / "a")
    b = tmp_path / "b"
    b.mkdir()
    # Made in another order, with other times.
    for path in sorted(a.rglob("*"), key=str, reverse=True):
        rel = path.relative_to(a)
        target = b / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.symlink_to(os.readlink(path))
        elif path.is_dir():
            target.mkdir(exist_ok=True)
        elif rel.name == "again.py":
            continue
        else:
            target.write_bytes(path.read_bytes())
            os.utime(target, (1, 1))
    os.link(
        b / "opt/venv/lib/site-packages/pkg/__init__.py",
        b / "opt/venv/lib/site-packages/pkg/again.py",
    )
    assert tar_bytes(a) == tar_bytes(b)


def source_tar(path: Path, members: list[tuple[str, bytes, str]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = EPOCH + 100
            info.uid, info.uname = 999, "postgres"
            data = content.encode()
            if kind == tarfile.LNKTYPE or kind == tarfile.SYMTYPE:
                info.linkname = content
                data = b""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def test_canonical_tar_reorders_repoints_hard_links_and_drops_devices(tmp_path: Path) -> None:
    src = source_tar(
        tmp_path / "src.tar",
        [
            ("./", tarfile.DIRTYPE, ""),
            ("./usr", tarfile.DIRTYPE, ""),
            ("./usr/bin", tarfile.DIRTYPE, ""),
            ("./usr/bin/z", tarfile.REGTYPE, "data"),  # carries the data in the source
            ("./usr/bin/a", tarfile.LNKTYPE, "./usr/bin/z"),  # but comes first in walk order
            ("./dev", tarfile.DIRTYPE, ""),
            ("./dev/null", tarfile.CHRTYPE, ""),
            ("./usr/bin/sh", tarfile.SYMTYPE, "dash"),
        ],
    )
    out = io.BytesIO()
    tarball.canonical_tar(src, out, EPOCH)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == ["dev", "usr", "usr/bin", "usr/bin/a", "usr/bin/sh", "usr/bin/z"]
        first = members["usr/bin/a"]
        assert first.isreg() and tar.extractfile(first).read() == b"data"  # type: ignore[union-attr]
        assert members["usr/bin/z"].islnk() and members["usr/bin/z"].linkname == "usr/bin/a"
        assert all(m.mtime == EPOCH and m.uid == 999 and m.uname == "" for m in members.values())
    again = io.BytesIO()
    tarball.canonical_tar(src, again, EPOCH)
    assert again.getvalue() == out.getvalue()


def test_canonical_tar_refuses_a_fifo(tmp_path: Path) -> None:
    src = source_tar(tmp_path / "src.tar", [("./run/fifo", tarfile.FIFOTYPE, "")])
    with pytest.raises(BuildError, match="FIFO"):
        tarball.canonical_tar(src, io.BytesIO(), EPOCH)
