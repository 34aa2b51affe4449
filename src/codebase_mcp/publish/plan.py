"""Plan a publish (pure): where each image goes and the argv that puts it there.

Each image is pushed once, to an immutable tag equal to its input hash
(``REGISTRY/REPO/NAME:<hash32>``); podman reports the manifest digest it
pushed (``--digestfile``). Extra tags are then copied registry-side *from that
digest* with ``skopeo copy --preserve-digests``, so every tag names the very
manifest the digest file records. Credentials are never in an argv: podman and
skopeo read the engine's auth file (``podman login``) or ``REGISTRY_AUTH_FILE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.errors import UsageError

# distribution/reference grammar, simplified: lowercase path components.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Destination:
    registry: str
    repository: str  # path under the registry, without the image name

    def image(self, name: str) -> str:
        return (
            f"{self.registry}/{self.repository}/{name}"
            if self.repository
            else (f"{self.registry}/{name}")
        )


def parse_destination(text: str) -> Destination:
    """``REGISTRY/REPO``: a registry host (with a dot or port, or ``localhost``) and a path."""
    text = text.strip().removeprefix("docker://").rstrip("/")
    host, _, path = text.partition("/")
    if "@" in path or ":" in path:
        raise UsageError(
            f"destination '{text}' has a tag or digest",
            hint="give REGISTRY/REPO only; tags come from --tag, digests from the push",
        )
    if not path or not _HOST.match(host) or not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(
            f"destination '{text}' does not start with a registry host",
            hint="write REGISTRY/REPO, e.g. ghcr.io/acme/codebase-mcp or 127.0.0.1:5000/test",
        )
    for part in path.split("/"):
        if not _COMPONENT.match(part):
            raise UsageError(
                f"destination '{text}': repository component '{part}' is not valid",
                hint="use lowercase letters, digits and single '.', '_' or '-' separators",
            )
    return Destination(registry=host, repository=path)


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not _TAG.match(tag):
            raise UsageError(
                f"tag '{tag}' is not valid",
                hint="tags: up to 128 letters, digits, '_', '.' or '-', not starting with . or -",
            )
    return list(dict.fromkeys(tags))


@dataclass(frozen=True)
class PushPlan:
    name: str
    source: str  # local ref
    target: str  # REGISTRY/REPO/NAME
    hash_tag: str
    tags: tuple[str, ...]

    def push_argv(self, digestfile: Path, *, tls_verify: bool, sign_by: str | None) -> list[str]:
        argv = ["podman", "push", "--quiet", "--format", "oci", "--digestfile", str(digestfile)]
        argv.append(f"--tls-verify={'true' if tls_verify else 'false'}")
        if sign_by:
            argv += ["--sign-by", sign_by]
        return [*argv, self.source, f"docker://{self.target}:{self.hash_tag}"]

    def tag_argvs(self, digest: str, *, tls_verify: bool, sign_by: str | None) -> list[list[str]]:
        verify = "true" if tls_verify else "false"
        argvs = []
        for tag in self.tags:
            argv = [
                "skopeo",
                "copy",
                "--quiet",
                "--preserve-digests",
                f"--src-tls-verify={verify}",
                f"--dest-tls-verify={verify}",
            ]
            if sign_by:
                argv += ["--sign-by", sign_by]
            argvs.append(
                [*argv, f"docker://{self.target}@{digest}", f"docker://{self.target}:{tag}"]
            )
        return argvs

    def pinned(self, digest: str) -> str:
        return f"{self.target}@{digest}"


def plan_push(
    destination: Destination, images: list[tuple[str, str, str]], tags: list[str]
) -> list[PushPlan]:
    """One plan per (name, local ref, input hash)."""
    clean = check_tags(tags)
    plans = []
    for name, ref, input_hash in images:
        hash_tag = input_hash[:32] if input_hash else ref.rsplit(":", 1)[-1]
        plans.append(
            PushPlan(
                name=name,
                source=ref,
                target=destination.image(name),
                hash_tag=hash_tag,
                tags=tuple(t for t in clean if t != hash_tag),
            )
        )
    return plans


def digest_lines(pinned: list[str]) -> str:
    return "".join(f"{line}\n" for line in pinned)
