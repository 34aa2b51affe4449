"""Plan an index artifact (pure): an OCI 1.1 artifact manifest around one opaque file.

The shareable index file (``index export``) is one blob. It travels as an OCI
image manifest with ``artifactType`` set and the OCI 1.1 *empty* config, one
layer = the file. No timestamp is written (``org.opencontainers.image.created``
is omitted), annotations are sorted and the JSON is canonical, so the same
file and metadata always give the same manifest digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.errors import ArtifactDigestMismatch, NotAnIndexArtifact, UsageError
from codebase_mcp.publish.plan import DIGEST, parse_destination

ARTIFACT_TYPE = "application/vnd.codebase-mcp.index.v1"
LAYER_MEDIA_TYPE = "application/vnd.codebase-mcp.index.v1+gzip"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
LAYOUT_TAG = "index"
ANNOTATION_PREFIX = "dev.codebase-mcp.index."

_REF = re.compile(
    r"^(?P<repo>[^@]+?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Reference:
    repository: str  # REGISTRY/REPO
    tag: str | None
    digest: str | None

    def docker(self) -> str:
        if self.digest:
            return f"docker://{self.repository}@{self.digest}"
        return f"docker://{self.repository}:{self.tag}"


def parse_reference(text: str, *, push: bool) -> Reference:
    """``REGISTRY/REPO:TAG`` (push, pull) or ``REGISTRY/REPO@sha256:…`` (pull)."""
    text = text.strip().removeprefix("docker://")
    host, _, rest = text.partition("/")
    match = _REF.match(rest) if rest else None
    if match is None:
        raise UsageError(
            f"reference '{text}' is not REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:…",
            hint="e.g. 127.0.0.1:5000/acme/index:main",
        )
    dest = parse_destination(f"{host}/{match['repo']}")
    tag, digest = match["tag"], match["digest"]
    if push and (digest or not tag):
        raise UsageError(
            f"push reference '{text}' needs a tag and no digest",
            hint="the digest comes from the push; write REGISTRY/REPO:TAG",
        )
    if not push and not (tag or digest):
        tag = "latest"
    return Reference(f"{dest.registry}/{dest.repository}", tag, digest)


@dataclass(frozen=True)
class ArtifactPlan:
    manifest: bytes
    digest: str  # of the manifest
    blobs: dict[str, bytes]  # digest -> bytes (config, layer, manifest)
    layer_digest: str
    size: int

    def index_json(self) -> bytes:
        desc = {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": self.digest,
            "size": len(self.manifest),
            "annotations": {"org.opencontainers.image.ref.name": LAYOUT_TAG},
        }
        return canonical({"schemaVersion": 2, "manifests": [desc]})

    def layout_files(self) -> dict[str, bytes]:
        """Relative path -> bytes of an OCI image layout directory holding the artifact."""
        files = {f"blobs/sha256/{d.removeprefix('sha256:')}": b for d, b in self.blobs.items()}
        files["oci-layout"] = canonical({"imageLayoutVersion": "1.0.0"})
        files["index.json"] = self.index_json()
        return files


def plan_artifact(data: bytes, *, title: str, annotations: dict[str, str]) -> ArtifactPlan:
    """The artifact for ``data``; ``annotations`` (project id, model identity, …) are optional."""
    layer_digest = sha256(data)
    notes = {f"{ANNOTATION_PREFIX}{k}": str(v) for k, v in annotations.items() if v}
    manifest_obj = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": sha256(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
            "data": "e30=",
        },
        "layers": [
            {
                "mediaType": LAYER_MEDIA_TYPE,
                "digest": layer_digest,
                "size": len(data),
                "annotations": {"org.opencontainers.image.title": title},
            }
        ],
        "annotations": dict(sorted(notes.items())),
    }
    if not notes:
        del manifest_obj["annotations"]
    manifest = canonical(manifest_obj)
    digest = sha256(manifest)
    blobs = {sha256(EMPTY_CONFIG): EMPTY_CONFIG, layer_digest: data, digest: manifest}
    return ArtifactPlan(manifest, digest, blobs, layer_digest, len(data))


def push_argv(
    layout: Path, ref: Reference, *, tls_verify: bool, authfile: Path | None
) -> list[str]:
    argv = ["skopeo", "copy", "--quiet", "--preserve-digests"]
    argv.append(f"--dest-tls-verify={'true' if tls_verify else 'false'}")
    if authfile:
        argv += ["--dest-authfile", str(authfile)]
    return [*argv, f"oci:{layout}:{LAYOUT_TAG}", ref.docker()]


def inspect_argv(ref: Reference, *, tls_verify: bool, authfile: Path | None) -> list[str]:
    argv = ["skopeo", "inspect", "--raw", f"--tls-verify={'true' if tls_verify else 'false'}"]
    if authfile:
        argv += ["--authfile", str(authfile)]
    return [*argv, ref.docker()]


def pull_argv(
    ref: Reference, layout: Path, *, tls_verify: bool, authfile: Path | None
) -> list[str]:
    argv = ["skopeo", "copy", "--quiet", "--preserve-digests"]
    argv.append(f"--src-tls-verify={'true' if tls_verify else 'false'}")
    if authfile:
        argv += ["--src-authfile", str(authfile)]
    return [*argv, ref.docker(), f"oci:{layout}:{LAYOUT_TAG}"]


def check_manifest(raw: bytes, ref: Reference) -> dict[str, object]:
    """The layer descriptor of an index artifact manifest; refuses anything else."""
    if ref.digest and sha256(raw) != ref.digest:
        raise ArtifactDigestMismatch(
            f"the registry's manifest for {ref.repository} hashes to {sha256(raw)}, "
            f"not {ref.digest}",
            hint="the registry or a proxy altered it; do not use this artifact",
        )
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise NotAnIndexArtifact(f"{ref.docker()} has no JSON manifest: {exc}") from exc
    kind = manifest.get("artifactType") if isinstance(manifest, dict) else None
    if kind is None and isinstance(manifest, dict):
        kind = (manifest.get("config") or {}).get("mediaType")
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if (
        kind != ARTIFACT_TYPE
        or not isinstance(layers, list)
        or len(layers) != 1
        or layers[0].get("mediaType") != LAYER_MEDIA_TYPE
        or not DIGEST.match(str(layers[0].get("digest", "")))
    ):
        raise NotAnIndexArtifact(
            f"{ref.docker().removeprefix('docker://')} is not a codebase-mcp index artifact "
            f"(artifact type {kind!r}, {len(layers) if isinstance(layers, list) else 0} layers)",
            hint=f"an index artifact has artifactType {ARTIFACT_TYPE} and one "
            f"{LAYER_MEDIA_TYPE} layer; push one with `codebase-mcp index push`",
        )
    layer: dict[str, object] = layers[0]
    return layer


def check_blob(data: bytes, layer: dict[str, object]) -> None:
    if sha256(data) != layer["digest"] or len(data) != layer.get("size"):
        raise ArtifactDigestMismatch(
            f"the pulled index file hashes to {sha256(data)} ({len(data)} bytes), "
            f"but the manifest says {layer['digest']} ({layer.get('size')} bytes)",
            hint="the blob was corrupted in the registry or on the way; nothing was written",
        )
