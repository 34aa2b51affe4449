"""The project's own files as a build input: which files, their digest, the wheel."""

from __future__ import annotations

from pathlib import Path

from codebase_mcp.builder.definitions import canonical_json, sha256_text
from codebase_mcp.builder.store import file_sha256

SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def project_files(root: Path, patterns: list[str]) -> list[Path]:
    """Files matched by the glob patterns, relative to ``root``, sorted, caches skipped."""
    found: set[Path] = set()
    for pattern in patterns:
        # Before Python 3.13 a trailing "**" matches directories only.
        expanded = pattern + "/*" if pattern.endswith("**") else pattern
        for path in root.glob(expanded):
            rel = path.relative_to(root)
            if (
                path.is_file()
                and not SKIPPED_PARTS.intersection(rel.parts)
                and path.suffix != ".pyc"
            ):
                found.add(rel)
    return sorted(found)


def files_digest(root: Path, files: list[Path]) -> str:
    """One hash over the paths, contents and executable bits of ``files``.

    The bit is read from the mode, not with os.access: access depends on who
    asks (a root-owned 0744 file is executable for root only), the hash must not.
    """
    entries = [[str(f), file_sha256(root / f), executable(root / f)] for f in files]
    return sha256_text(canonical_json(entries))


def executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


def wheel_argv(python: str, out_dir: Path) -> list[str]:
    """Build the project wheel with hatchling (reproducible under SOURCE_DATE_EPOCH)."""
    return [python, "-m", "hatchling", "build", "--target", "wheel", "--directory", str(out_dir)]
