"""What the installed podman's ``kube play`` can do, as a pure function of its version.

Facts measured or taken from the podman release notes (see
docs/deployment.md, "podman versions"):

- 4.3 (Debian 12): livenessProbe only; a ``kind: Secret`` document is broken
  and a secret *volume* panics, but ``env.valueFrom.secretKeyRef`` to a podman
  secret whose data is a JSON map of base64 values works (and still does in
  5.x, kept for backward compatibility);
- 4.4: startupProbe, the Secret kind, PVC documents for existing volumes, Quadlet;
- 4.6: init containers no longer restart forever under ``restartPolicy: Always``;
- 4.8: a ``containerPort`` without ``hostPort`` is no longer published on 0.0.0.0;
- 5.0: ``emptyDir: {medium: Memory}`` is a tmpfs (before: a named volume).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import NamedTuple

from codebase_mcp.errors import PodError
from codebase_mcp.proc import Runner


class PodmanVersion(NamedTuple):
    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Features:
    """Switches the templates read; each names the podman release that brought it."""

    startup_probe: bool  # 4.4
    secret_kind: bool  # 4.4
    pvc_document: bool  # 4.4
    quadlet: bool  # 4.4
    init_containers: bool  # 4.6
    internal_container_ports: bool  # 4.8: safe to declare ports that have no hostPort
    emptydir_tmpfs: bool  # 5.0

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> PodmanVersion:
    """``4.3.1``, ``5.2.0-rc1``, ``v4.9`` → a comparable version."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise PodError(
            f"cannot read the podman version from {text!r}",
            hint="check `podman version --format json` works on this host",
        )
    major, minor, patch = match.groups()
    return PodmanVersion(int(major), int(minor), int(patch or 0))


def features_for(version: PodmanVersion) -> Features:
    return Features(
        startup_probe=version >= (4, 4),
        secret_kind=version >= (4, 4),
        pvc_document=version >= (4, 4),
        quadlet=version >= (4, 4),
        init_containers=version >= (4, 6),
        internal_container_ports=version >= (4, 8),
        emptydir_tmpfs=version >= (5, 0),
    )


# What `render` assumes when no podman is asked (e.g. rendering on a laptop
# for a server): the oldest supported release, whose output works everywhere.
OLDEST_SUPPORTED = PodmanVersion(4, 3, 1)


def version_from_json(text: str) -> PodmanVersion:
    """The version out of ``podman version --format json`` (server side when remote)."""
    try:
        data = json.loads(text)
        block = data.get("Server") or data["Client"]
        return parse_version(str(block["Version"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PodError(
            "`podman version --format json` printed something unexpected",
            hint="run it by hand; podman 4.3 or newer is needed",
        ) from exc


def detect_version(runner: Runner) -> PodmanVersion:
    result = runner.run(
        ["podman", "version", "--format", "json"],
        hint="podman is needed for the pod: `sudo apt-get install podman`",
    )
    version = version_from_json(result.stdout)
    if version < OLDEST_SUPPORTED[:2]:
        raise PodError(
            f"podman {version} is too old: kube play needs 4.3 or newer",
            hint="install podman from Debian 12 (4.3) or newer",
        )
    return version
