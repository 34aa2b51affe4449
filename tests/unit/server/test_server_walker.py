"""Walking a repository with gitignore semantics and sensible defaults."""

from __future__ import annotations

import os
from pathlib import Path

from codebase_mcp.server.walker import walk_repository


def make(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def walked(root: Path, max_bytes: int = 10_000) -> list[str]:
    return [f.rel_path for f in walk_repository(root, max_file_bytes=max_bytes).files]


def test_negation_and_root_anchored_patterns(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\n/out/\ntmp*\n",
            "a.log": "x",
            "keep.log": "x",
            "sub/keep.log": "x",
            "sub/b.log": "x",
            "out/gen.py": "x",
            "sub/out/real.py": "x",  # /out/ is anchored to the root
            "tmpfile.py": "x",
            "main.py": "x",
        },
    )
    assert walked(tmp_path) == [
        ".gitignore",
        "keep.log",
        "main.py",
        "sub/keep.log",
        "sub/out/real.py",
    ]


def test_nested_gitignore_is_relative_to_its_directory(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pkg/.gitignore": "/local.py\n!important.tmp\n",
            ".gitignore": "*.tmp\n",
            "pkg/local.py": "x",
            "pkg/deeper/local.py": "x",
            "pkg/important.tmp": "x",
            "other.tmp": "x",
            "local.py": "x",
        },
    )
    assert walked(tmp_path) == [
        ".gitignore",
        "local.py",
        "pkg/.gitignore",
        "pkg/deeper/local.py",
        "pkg/important.tmp",
    ]


def test_excluded_directory_cannot_be_reincluded(tmp_path: Path) -> None:
    # Like git: "dir/" then "!dir/file" does not bring the file back.
    make(tmp_path, {".gitignore": "docs/\n!docs/keep.md\n", "docs/keep.md": "x", "a.py": "x"})
    assert walked(tmp_path) == [".gitignore", "a.py"]


def test_other_ignore_files_are_not_read(tmp_path: Path) -> None:
    make(tmp_path, {".prettierignore": "*\n", ".dockerignore": "*\n", "a.py": "x"})
    assert "a.py" in walked(tmp_path)


def test_defaults_skip_vendored_binary_huge_and_generated(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "node_modules/lib/index.js": "x",
            ".git/config": "x",
            "__pycache__/m.cpython-311.pyc": b"\0\0",
            "pkg.egg-info/PKG-INFO": "x",
            "image.png": b"\x89PNG",
            "big.py": "x" * 20_000,
            "package-lock.json": "{}",
            "app.min.js": "x",
            "empty.py": "",
            "ok.py": "print(1)\n",
        },
    )
    result = walk_repository(tmp_path, max_file_bytes=10_000)
    assert [f.rel_path for f in result.files] == ["ok.py"]
    assert result.skipped["image.png"] == "binary"
    assert result.skipped["big.py"].startswith("too large")
    assert result.skipped["package-lock.json"] == "generated"
    assert result.skipped["app.min.js"] == "generated"
    assert result.skipped["empty.py"] == "empty"
    assert "node_modules/lib/index.js" not in result.skipped


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = make(tmp_path / "outside", {"secret.py": "x"})
    repo = make(tmp_path / "repo", {"a.py": "x"})
    os.symlink(outside, repo / "linked_dir")
    os.symlink(outside / "secret.py", repo / "linked.py")
    result = walk_repository(repo, max_file_bytes=10_000)
    assert [f.rel_path for f in result.files] == ["a.py"]
    assert result.skipped == {"linked.py": "symlink", "linked_dir": "symlink"}


def test_git_info_exclude(tmp_path: Path) -> None:
    make(tmp_path, {".git/info/exclude": "private.py\n", "private.py": "x", "public.py": "x"})
    assert walked(tmp_path) == ["public.py"]
