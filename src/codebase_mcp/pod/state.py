"""Where a pod's host-side files live, and what ``up`` remembers for ``status``/``down``.

``$CODEBASE_MCP_DATA_DIR`` (default ``$XDG_DATA_HOME/codebase-mcp``, i.e.
``~/.local/share/codebase-mcp``) holds ``pods/<name>/``: the password file
(0600), the MCP auth token (0600, ``up --auth``), the rendered YAML (0600),
``state.json`` and, with git credentials, ``git/`` (0500, owned by the server's
uid: see codebase_mcp.pod.gitcreds).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

from codebase_mcp.errors import ConfigError
from codebase_mcp.pod.models import Embedder, Profile


def data_home() -> Path:
    explicit = os.environ.get("CODEBASE_MCP_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "codebase-mcp"


def pod_dir(name: str, base: Path | None = None) -> Path:
    return (base or data_home()) / "pods" / name


class PodState(BaseModel):
    """What the last ``up`` of a pod used."""

    name: str
    profile: Profile
    port: int
    host_ip: str
    images: dict[str, str]
    repos: list[str]
    podman_version: str
    embedder: Embedder = "builtin"  # state files from before --embedder have none
    auth: bool = False  # /mcp needs the bearer token in auth_token_file (up --auth)
    # Git sources: the allowed hosts, and the host files the credentials are copied
    # from at every up (paths only: the content lives in the private copy, pods/<name>/git).
    git_hosts: list[str] = []
    git_files: dict[str, str] = {}

    @property
    def endpoint(self) -> str:
        return f"http://{self.host_ip}:{self.port}/mcp"


def state_file(directory: Path) -> Path:
    return directory / "state.json"


def password_file(directory: Path) -> Path:
    return directory / "db-password"


def auth_token_file(directory: Path) -> Path:
    return directory / "auth-token"


def yaml_file(directory: Path) -> Path:
    return directory / "pod.yaml"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (it may hold paths and names worth hiding)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def save_state(directory: Path, state: PodState) -> None:
    write_private(state_file(directory), state.model_dump_json(indent=2) + "\n")


def load_state(directory: Path) -> PodState | None:
    path = state_file(directory)
    if not path.is_file():
        return None
    try:
        return PodState.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise ConfigError(
            f"{path} is not a state file this version understands",
            hint=f"remove it (`rm {path}`) and run `codebase-mcp up` again",
        ) from exc
