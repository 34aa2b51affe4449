"""Walk a repository the way git sees it, plus sensible defaults.

Ignore rules come from every ``.gitignore`` on the way down (each relative to
its own directory, later and deeper rules win, ``!`` re-includes, a leading
``/`` anchors to that directory) and ``.git/info/exclude``; the matching is
pathspec's ``GitIgnoreSpec``, a faithful gitignore implementation. Like git, an
excluded directory is pruned: nothing below it can be re-included. Other
``.*ignore`` files (``.prettierignore``, ``.dockerignore``) are deliberately not
read: they describe other tools' inputs, and one with ``*`` would empty the index.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

# Directories that are never the user's own source: VCS metadata, dependencies,
# caches and build outputs.
DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".bzr", "node_modules", "bower_components", "vendor",
        "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
        ".ruff_cache", ".eggs", "site-packages", "dist", "build", "target", ".next",
        ".nuxt", ".cache", ".gradle", ".idea", ".vscode", "coverage", ".terraform",
    }
)  # fmt: skip
# Files that are generated or not text: skipped without reading them.
BINARY_SUFFIXES = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".svgz", ".pdf", ".zip",
        ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tar", ".jar", ".war", ".class",
        ".so", ".dylib", ".dll", ".exe", ".o", ".a", ".lib", ".pyc", ".pyo", ".whl", ".egg",
        ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp3", ".mp4", ".wav", ".ogg", ".mov",
        ".avi", ".webm", ".sqlite", ".db", ".bin", ".dat", ".npy", ".npz", ".pkl", ".onnx",
        ".safetensors", ".pt", ".parquet", ".wasm",
    }
)  # fmt: skip
GENERATED_NAMES = frozenset(
    {
        "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Cargo.lock",
        "uv.lock", "composer.lock", "Gemfile.lock", "go.sum",
    }
)  # fmt: skip
GENERATED_SUFFIXES = (".min.js", ".min.css", ".js.map", ".css.map", ".bundle.js")


@dataclass(frozen=True)
class FileEntry:
    rel_path: str  # relative to the repository root, "/" separated
    abs_path: str
    size: int


@dataclass
class WalkResult:
    files: list[FileEntry] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # rel_path -> reason


@dataclass(frozen=True)
class _Rules:
    base: str  # directory the rules are relative to ("" = root)
    spec: pathspec.GitIgnoreSpec


def _load_rules(directory: Path, base: str, name: str = ".gitignore") -> _Rules | None:
    try:
        text = (directory / name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
    return _Rules(base, spec) if spec.patterns else None


def is_ignored(rules: list[_Rules], rel_path: str, is_dir: bool) -> bool:
    """Git's answer for one path: the last matching rule of the deepest file decides."""
    decision: bool | None = None
    for rule in rules:
        if rule.base and not rel_path.startswith(rule.base + "/"):
            continue
        local = rel_path[len(rule.base) + 1 :] if rule.base else rel_path
        result = rule.spec.check_file(local + "/" if is_dir else local)
        if result.include is not None:
            decision = result.include
    return bool(decision)


def _generated(name: str) -> bool:
    return name in GENERATED_NAMES or name.endswith(GENERATED_SUFFIXES)


def walk_repository(root: str | Path, *, max_file_bytes: int) -> WalkResult:
    """Every file worth indexing under ``root``, and why the others were skipped."""
    root_path = Path(root)
    result = WalkResult()
    rules: list[_Rules] = []
    exclude = _load_rules(root_path / ".git" / "info", "", "exclude")
    if exclude:
        rules.append(exclude)
    _walk_dir(root_path, "", rules, result, max_file_bytes)
    result.files.sort(key=lambda f: f.rel_path)
    return result


def _walk_dir(
    directory: Path, rel: str, rules: list[_Rules], result: WalkResult, max_bytes: int
) -> None:
    local = _load_rules(directory, rel)
    active = [*rules, local] if local else rules
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        result.skipped[rel or "."] = f"unreadable directory: {exc.strerror or exc}"
        return
    for entry in entries:
        rel_path = f"{rel}/{entry.name}" if rel else entry.name
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            result.skipped[rel_path] = f"unreadable: {exc.strerror or exc}"
            continue
        if stat.S_ISLNK(info.st_mode):
            # Symlinks could lead outside the allowed roots: never followed.
            if not is_ignored(active, rel_path, is_dir=False):
                result.skipped[rel_path] = "symlink"
            continue
        if stat.S_ISDIR(info.st_mode):
            if entry.name in DEFAULT_IGNORED_DIRS or entry.name.endswith(".egg-info"):
                continue
            if is_ignored(active, rel_path, is_dir=True):
                continue
            _walk_dir(Path(entry.path), rel_path, active, result, max_bytes)
            continue
        if not stat.S_ISREG(info.st_mode) or is_ignored(active, rel_path, is_dir=False):
            continue
        suffix = os.path.splitext(entry.name)[1].lower()
        if suffix in BINARY_SUFFIXES:
            result.skipped[rel_path] = "binary"
        elif _generated(entry.name):
            result.skipped[rel_path] = "generated"
        elif info.st_size > max_bytes:
            result.skipped[rel_path] = f"too large ({info.st_size} bytes > {max_bytes})"
        elif info.st_size == 0:
            result.skipped[rel_path] = "empty"
        else:
            result.files.append(FileEntry(rel_path, entry.path, info.st_size))
