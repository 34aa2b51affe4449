"""Copies of the parts of the checkout the builder reads, to change or share safely."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP_FILES = ("pyproject.toml", "README.md", ".gitignore")
TOP_DIRS = ("src", "migrations", "images")


def copy_checkout(target: Path, source: Path = REPO) -> Path:
    """The parts of the checkout the builder reads (no .git), to change without touching it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    target.mkdir(parents=True, exist_ok=True)
    for name in TOP_FILES:
        shutil.copy2(source / name, target / name)
    for name in TOP_DIRS:
        shutil.copytree(source / name, target / name, ignore=ignore)
    (target / "build").mkdir(exist_ok=True)
    shutil.copy2(source / "build" / "lock.json", target / "build" / "lock.json")
    return target
