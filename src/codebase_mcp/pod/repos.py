"""The repositories a pod mounts: remembered in its state, managed by ``codebase-mcp repo``.

``up --repo PATH`` mounts and remembers repositories (read-only, ``/repos/N``);
``repo add/remove`` edit that list for the next ``up``. A remembered repository that
no longer exists is skipped by ``up`` (with a warning naming it), not forgotten: an
unplugged disk comes back, a deleted checkout is forgotten with ``repo remove``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from codebase_mcp.errors import PodError, UsageError
from codebase_mcp.pod.models import RepoMount, repo_mounts
from codebase_mcp.pod.state import PodState, load_state, save_state


def present_mounts(
    repos: list[str], exists: Callable[[str], bool] = os.path.isdir
) -> tuple[tuple[RepoMount, ...], list[str]]:
    """(the mounts of the repositories that exist, the missing ones).

    Each repository keeps the container path it has with every remembered one mounted,
    so skipping a missing repository does not move the others.
    """
    missing = [r for r in repos if not exists(r)]
    mounts = tuple(m for m in repo_mounts(repos) if m.host_path not in missing)
    return mounts, missing


def forget_hint(path: str) -> str:
    return f"`codebase-mcp repo remove {path}` forgets it"


def _state(directory: Path, pod: str) -> PodState:
    state = load_state(directory)
    if state is None:
        raise PodError(
            f"pod '{pod}' has not been brought up here yet: it remembers no repositories",
            hint="`codebase-mcp up --repo /abs/path` mounts a repository and remembers it",
        )
    return state


def add(directory: Path, pod: str, path: str) -> bool:
    """Remember ``path`` (absolute, existing) for the next ``up``; False if it already is."""
    state = _state(directory, pod)
    if path in state.repos:
        return False
    repo_mounts([*state.repos, path])  # refuses paths the server's root mapping cannot carry
    save_state(directory, state.model_copy(update={"repos": sorted([*state.repos, path])}))
    return True


def remove(directory: Path, pod: str, path: str) -> str:
    """Forget ``path`` (as given, or as it resolves); the remembered spelling that went."""
    state = _state(directory, pod)
    candidates = {path, os.path.abspath(path), str(Path(path).resolve())}
    matches = [r for r in state.repos if r in candidates]
    if not matches:
        known = ", ".join(state.repos) or "none"
        raise UsageError(
            f"pod '{pod}' does not remember {path} (it remembers: {known})",
            hint="`codebase-mcp repo list` shows them",
        )
    save_state(
        directory, state.model_copy(update={"repos": [r for r in state.repos if r != matches[0]]})
    )
    return matches[0]
