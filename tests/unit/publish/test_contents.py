from __future__ import annotations

import io
import tarfile
from pathlib import Path

from codebase_mcp.publish.contents import extract_wanted, read_contents, resolve_inside
from tests.unit.publish.conftest import DEP5, status_text

SITE = "opt/venv/lib/python3.13/site-packages"


def make_tree(root: Path) -> None:
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status_text([("libc6", "2.41-12")]))
    (root / "usr/share/doc/libc6").mkdir(parents=True)
    (root / "usr/share/doc/libc6/copyright").write_text(DEP5)
    # Debian links some doc dirs to another package's (relative and absolute targets).
    (root / "usr/share/doc/libc6-dev").symlink_to("libc6")
    (root / "usr/share/doc/libc-bin").symlink_to("/usr/share/doc/libc6")
    dist = root / SITE / "asyncpg-0.32.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.4\nName: asyncpg\nVersion: 0.32.0\nLicense-Expression: Apache-2.0\n"
    )


def test_reads_status_copyrights_and_dist_infos(tmp_path: Path) -> None:
    make_tree(tmp_path)
    contents = read_contents(tmp_path)
    assert "Package: libc6" in contents.dpkg_status
    assert set(contents.copyrights) == {"libc6", "libc6-dev", "libc-bin"}
    assert contents.copyrights["libc-bin"] == DEP5
    assert [(d.name, d.version) for d in contents.dists] == [("asyncpg", "0.32.0")]
    assert contents.dists[0].metadata["License-Expression"] == "Apache-2.0"


def test_absolute_symlinks_stay_inside_the_image(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/link").symlink_to("/etc/hostname")  # the host's file must not be read
    assert resolve_inside(tmp_path, "etc/link") == tmp_path / "etc/hostname"
    (tmp_path / "up").symlink_to("../../..")
    assert resolve_inside(tmp_path, "up/etc/passwd") is None


def test_extracts_only_what_the_sbom_needs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    make_tree(tree)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/python3").write_bytes(b"\x7fELF" * 1000)
    tar_path = tmp_path / "image.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(tree, arcname=".")
        evil = tarfile.TarInfo("usr/share/doc/evil")
        evil.type = tarfile.SYMTYPE
        evil.linkname = "../../../../../../etc"
        tar.addfile(evil, io.BytesIO())
    target = tmp_path / "out"
    extract_wanted(tar_path, target)
    assert not tar_path.exists()
    assert not (target / "usr/bin/python3").exists()
    assert not (target / "usr/share/doc/evil").exists()
    contents = read_contents(target)
    assert contents.copyrights["libc6-dev"] == DEP5
    assert [d.name for d in contents.dists] == ["asyncpg"]


def test_an_image_without_a_venv_lists_no_python_packages(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert read_contents(tmp_path, None).dists == []
    assert read_contents(tmp_path, "/usr/local/venv").dists == []
