"""The database password: generated once, kept in a 0600 file, handed to podman as a secret.

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


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def ensure_password(path: Path) -> str:
    """Read the password at ``path``, creating it (mode 0600) on first use."""
    if path.is_file():
        password = path.read_text().strip()
        if password:
            return password
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = generate_password()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def secret_payload(password: str, key: str = "password") -> str:
    """The body ``podman secret create`` stores: ``{"password": "<base64>"}``."""
    return json.dumps({key: base64.b64encode(password.encode()).decode()})


def secret_exists(runner: Runner, name: str) -> bool:
    return runner.run(["podman", "secret", "inspect", name], check=False).returncode == 0


def ensure_podman_secret(runner: Runner, name: str, password_file: Path) -> bool:
    """Create the podman secret from the password file unless it exists; True if created."""
    if secret_exists(runner, name):
        return False
    password = ensure_password(password_file)
    runner.run(
        ["podman", "secret", "create", name, "-"],  # body on stdin: never in argv or a file
        input=secret_payload(password),
        hint="`podman secret ls` shows the secrets podman knows",
    )
    return True
