"""What the rest of the project (pod, tests, publish) uses from the builder."""

from __future__ import annotations

import os
from pathlib import Path

from codebase_mcp.errors import ConfigError


def repo_root(start: Path | None = None) -> Path:
    """The checkout: $CODEBASE_MCP_ROOT, or the nearest parent with images/ and pyproject."""
    env = os.environ.get("CODEBASE_MCP_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "images").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    source = Path(__file__).resolve().parents[3]
    if (source / "images").is_dir():
        return source
    raise ConfigError(
        "not inside a codebase-mcp checkout (no images/ and pyproject.toml found)",
        hint="run from the repository, or set CODEBASE_MCP_ROOT to it",
    )


def image_ref(name: str, root: Path | None = None) -> str:
    """``localhost/codebase-mcp-<name>:<input-hash>`` without building anything."""
    from codebase_mcp.builder.build import Builder

    return Builder.create(root or repo_root()).plan(name)[2].ref


def build(names: list[str], root: Path | None = None) -> list[object]:
    """Build (or find cached, or substitute) images; returns BuildResult objects.

    ``CODEBASE_MCP_SUBSTITUTE`` (see `image build --substitute`) names a substituter.
    """
    from codebase_mcp.builder.build import Builder
    from codebase_mcp.builder.substitute import from_environment

    checkout = root or repo_root()
    builder = Builder.create(checkout)
    builder.substituter = from_environment(checkout)
    return list(builder.build(names))


def upstream_ref(name: str, root: Path | None = None) -> str:
    """``repository@sha256:…`` of an upstream image pinned in the lock (e.g. ``ollama``)."""
    from codebase_mcp.builder.lockfile import load_lock
    from codebase_mcp.errors import LockOutOfDate

    lock = load_lock(root or repo_root())
    entry = lock.upstream.get(name)
    if entry is None:
        raise LockOutOfDate(
            f"the lock has no upstream image '{name}'",
            hint="declare it in images/upstream.toml and run `codebase-mcp image lock`",
        )
    if entry.pinned is None:
        raise LockOutOfDate(
            f"upstream image '{name}' ({entry.reference}) is not pinned by digest in the lock",
            hint="run `codebase-mcp image lock --upstream` on a host that can reach the registry, "
            "and commit build/lock.json; an unpinned tag is never used",
        )
    return entry.pinned
