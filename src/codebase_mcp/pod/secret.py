"""The database password and the MCP auth token: generated once, kept in 0600 files,
handed to podman as secrets.

Why a podman secret with a JSON body: on podman 4.3 the ``kind: Secret``
document is broken and a secret *volume* panics, but
``env.valueFrom.secretKeyRef`` reads a podman secret whose data is a JSON map
of base64 values, and every later podman still accepts that format. The file
under the pod's state directory is the source of truth, so the same password
comes back after ``podman secret rm`` and keeps matching the database volume.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from codebase_mcp.proc import Runner

PASSWORD_BYTES = 24  # 32 URL-safe characters
TOKEN_BYTES = 32  # 43 URL-safe characters: a valid RFC 6750 bearer token


def generate_password(nbytes: int = PASSWORD_BYTES) -> str:
    return secrets.token_urlsafe(nbytes)


def ensure_password(path: Path, nbytes: int = PASSWORD_BYTES) -> str:
    """Read the password at ``path``, creating it (mode 0600) on first use."""
    if path.is_file():
        password = path.read_text().strip()
        if password:
            return password
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = generate_password(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def secret_payload(password: str, key: str = "password") -> str:
    """The body ``podman secret create`` stores: ``{"password": "<base64>"}``."""
    return json.dumps({key: base64.b64encode(password.encode()).decode()})


def secret_exists(runner: Runner, name: str) -> bool:
    return runner.run(["podman", "secret", "inspect", name], check=False).returncode == 0


def ensure_token(path: Path) -> str:
    """The MCP bearer token at ``path``, created (mode 0600) on first use."""
    return ensure_password(path, TOKEN_BYTES)


def ensure_podman_secret(
    runner: Runner, name: str, password_file: Path, key: str = "password"
) -> bool:
    """Create the podman secret from the file unless it exists; True if created."""
    if secret_exists(runner, name):
        return False
    password = ensure_password(password_file)
    runner.run(
        ["podman", "secret", "create", name, "-"],  # body on stdin: never in argv or a file
        input=secret_payload(password, key),
        hint="`podman secret ls` shows the secrets podman knows",
    )
    return True
