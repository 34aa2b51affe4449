"""The eval's fetcher: pins read and checked, archives verified, unpacked all or nothing."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from codebase_mcp.builder.store import Store
from codebase_mcp.errors import ConfigError, FetchError, HashMismatch
from codebase_mcp.evaluation.repos import checkout, load_pins, select, unpack

EVAL = Path(__file__).resolve().parents[3] / "eval"


def make_tar(members: dict[str, bytes], *, link: tuple[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            tar.addfile(info)
    return buf.getvalue()


class Response(io.BytesIO):
    def __enter__(self) -> Response:
        return self


def pins_file(tmp_path: Path, sha: str, subdirectory: str = "pkg-1.0/src") -> Path:
    path = tmp_path / "repos.toml"
    path.write_text(
        f"""
[[repo]]
name = "pkg"
kind = "test"
version = "1.0"
source = "pypi"
url = ["http://mirror.invalid/pkg-1.0.tar.gz"]
sha256 = "{sha}"
archive = "tar.gz"
subdirectory = "{subdirectory}"
license = "MIT"
role = "eval"
"""
    )
    return path


ARCHIVE = make_tar({"pkg-1.0/src/a.py": b"def a():\n    return 1\n", "pkg-1.0/README": b"hi\n"})
SHA = hashlib.sha256(ARCHIVE).hexdigest()


def test_checkout_fetches_verifies_and_unpacks_the_subdirectory(tmp_path: Path) -> None:
    (pin,) = load_pins(pins_file(tmp_path, SHA))
    root = checkout(
        pin,
        store=Store(tmp_path / "store"),
        cache=tmp_path / "cache",
        opener=lambda url: Response(ARCHIVE),
    )
    assert root == tmp_path / "cache" / f"pkg-{SHA[:12]}" / "pkg-1.0" / "src"
    assert (root / "a.py").read_text() == "def a():\n    return 1\n"
    # A second checkout uses the unpacked tree: no download (the opener would fail).
    assert (
        checkout(
            pin, store=Store(tmp_path / "store"), cache=tmp_path / "cache", opener=lambda url: 1 / 0
        )
        == root
    )  # type: ignore[arg-type,return-value]


def test_hash_mismatch_is_refused_and_nothing_is_stored_or_unpacked(tmp_path: Path) -> None:
    (pin,) = load_pins(pins_file(tmp_path, SHA))
    tampered = make_tar({"pkg-1.0/src/a.py": b"import os; os.system('evil')\n"})
    with pytest.raises(HashMismatch, match=SHA):
        checkout(
            pin,
            store=Store(tmp_path / "store"),
            cache=tmp_path / "cache",
            opener=lambda url: Response(tampered),
        )
    assert not any((tmp_path / "store" / "sha256").iterdir())
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_damaged_archive_leaves_nothing_half_unpacked(tmp_path: Path) -> None:
    truncated = ARCHIVE[: len(ARCHIVE) // 2]
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(truncated)
    target = tmp_path / "cache" / "pkg"
    with pytest.raises(FetchError, match="cannot unpack"):
        unpack(archive, target)
    assert list((tmp_path / "cache").iterdir()) == []  # no target, no temporary directory


@pytest.mark.parametrize(
    ("members", "link"),
    [
        ({"../escape.py": b"x"}, None),
        ({"ok.py": b"x"}, ("pkg/link", "/etc/passwd")),
    ],
)
def test_members_writing_outside_the_target_are_refused(
    tmp_path: Path, members: dict[str, bytes], link: tuple[str, str] | None
) -> None:
    archive = tmp_path / "unsafe.tar.gz"
    archive.write_bytes(make_tar(members, link=link))
    with pytest.raises(FetchError):
        unpack(archive, tmp_path / "cache" / "pkg")
    assert list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "escape.py").exists()


def test_absolute_member_names_stay_inside_the_target(tmp_path: Path) -> None:
    archive = tmp_path / "abs.tar.gz"
    archive.write_bytes(make_tar({"/tmp/evil-eval-member": b"x"}))
    unpack(archive, tmp_path / "cache" / "pkg")
    assert (tmp_path / "cache" / "pkg" / "tmp" / "evil-eval-member").read_bytes() == b"x"
    assert not Path("/tmp/evil-eval-member").exists()


def test_a_missing_subdirectory_is_a_clear_error(tmp_path: Path) -> None:
    (pin,) = load_pins(pins_file(tmp_path, SHA, subdirectory="pkg-1.0/lib"))
    with pytest.raises(ConfigError, match="pkg-1.0/lib is not in the archive"):
        checkout(
            pin,
            store=Store(tmp_path / "store"),
            cache=tmp_path / "cache",
            opener=lambda url: Response(ARCHIVE),
        )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("sha256 = ", 'sha256 = "abc" #'), "not 64 hex digits"),
        (('role = "eval"', 'role = "other"'), "role 'other'"),
        (('subdirectory = "pkg-1.0/src"', 'subdirectory = "../up"'), "without '..'"),
        (('license = "MIT"', ""), "missing license"),
        (('license = "MIT"', 'license = "MIT"\nmirror = "x"'), "unknown field"),
    ],
)
def test_bad_pins_are_refused_with_the_reason(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = pins_file(tmp_path, SHA)
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_pins(path)


def test_select_by_name_and_role(tmp_path: Path) -> None:
    pins = load_pins(EVAL / "repos.toml")
    assert {p.role for p in select(pins, None, "eval")} == {"eval"}
    assert [p.name for p in select(pins, ["fd"], "eval")] == ["fd"]
    with pytest.raises(ConfigError, match="unknown repository nope"):
        select(pins, ["nope"], None)


def test_the_committed_pins_are_valid_and_diverse() -> None:
    pins = load_pins(EVAL / "repos.toml")
    scored = [p for p in pins if p.role == "eval"]
    assert len(scored) >= 4 and "starlette" in {p.name for p in scored}
    assert len({p.source for p in scored}) >= 3  # PyPI, npm, Debian
    assert [p.name for p in pins if p.role == "bench"]  # the ~500-file benchmark repository
