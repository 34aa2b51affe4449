"""Which filesystem events watch mode lets through to a sync job."""

from __future__ import annotations

from pathlib import Path

import pytest
from watchfiles import Change

from codebase_mcp.server.watch import ChangeFilter
from codebase_mcp.server.watchstore import watch_view


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".gitignore").write_text("*.log\n/generated/\n!keep.log\n")
    return tmp_path


@pytest.mark.parametrize(
    "rel",
    ["src/app.py", "README.md", "keep.log", "deep/nested/generated/x.py", "Makefile"],
)
def test_source_changes_pass(repo: Path, rel: str) -> None:
    assert ChangeFilter(str(repo))(Change.modified, str(repo / rel))


@pytest.mark.parametrize(
    "rel",
    [
        ".git/index",  # every git command touches it
        "node_modules/left-pad/index.js",
        "pkg/__pycache__/mod.cpython-311.pyc",
        "src/app.py.swp",
        "src/.app.py.swx",
        "src/app.py~",
        "src/.#app.py",
        "src/4913",  # vim's write test
        "assets/logo.png",
        "package-lock.json",
        "dist/bundle.min.js",
        "debug.log",  # top-level .gitignore
        "generated/out.py",
        "mypkg.egg-info/PKG-INFO",
    ],
)
def test_noise_is_dropped(repo: Path, rel: str) -> None:
    assert not ChangeFilter(str(repo))(Change.modified, str(repo / rel))


def test_root_itself_passes_so_its_removal_is_seen(repo: Path) -> None:
    assert ChangeFilter(str(repo))(Change.deleted, str(repo))


def test_paths_outside_the_root_are_dropped(repo: Path) -> None:
    assert not ChangeFilter(str(repo / "sub"))(Change.added, str(repo / "other.py"))


def test_no_gitignore_is_fine(tmp_path: Path) -> None:
    assert ChangeFilter(str(tmp_path))(Change.added, str(tmp_path / "debug.log"))


def test_unwatched_view() -> None:
    assert watch_view(None) == {"watching": False, "state": "not watched"}
