"""Push and pull an index file as an OCI artifact (the thin layer around artifact.py).

skopeo moves the bytes (``oci:`` layout ↔ ``docker://``), so credentials come
from exactly where ``image publish`` takes them: the engine's auth file
(``podman login``) or ``REGISTRY_AUTH_FILE`` (or ``--authfile``); never argv.
A pull checks the manifest type before fetching the blob, then the blob's
digest, and only then renames the file into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from codebase_mcp.errors import ArtifactDigestMismatch, AuthFileMissing, CommandFailed
from codebase_mcp.proc import Runner
from codebase_mcp.publish import artifact
from codebase_mcp.publish.run import explain, write_atomic


@dataclass(frozen=True)
class IndexArtifact:
    reference: str  # REGISTRY/REPO@sha256:…
    digest: str
    layer_digest: str
    size: int
    file: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def auth_file(given: Path | None) -> Path | None:
    """``--authfile`` or ``REGISTRY_AUTH_FILE``; a named file that is missing is an error."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    path = given or (Path(env) if env else None)
    if path is not None and not path.is_file():
        source = "--authfile" if given else "REGISTRY_AUTH_FILE"
        raise AuthFileMissing(
            f"{source} names {path}, which does not exist",
            hint="create it with `podman login --authfile FILE REGISTRY`, or unset it to use "
            "the engine's default auth file",
        )
    return path


def _registry(argv: list[str], target: str, runner: Runner, action: str) -> bytes:
    try:
        return runner.run(argv).stdout.encode("utf-8", "surrogateescape")  # the exact bytes
    except CommandFailed as exc:
        lowered = exc.stderr.lower()
        if "digest" in lowered and ("mismatch" in lowered or "did not match" in lowered):
            raise ArtifactDigestMismatch(
                f"skopeo refused a blob of {target}: its digest does not match",
                hint="the blob was corrupted in the registry or on the way; nothing was written",
            ) from exc
        raise explain(exc.stderr, target, action) from exc


def push(
    file: Path,
    ref_text: str,
    *,
    annotations: dict[str, str],
    tls_verify: bool = True,
    authfile: Path | None = None,
    runner: Runner | None = None,
) -> IndexArtifact:
    runner = runner or Runner()
    ref = artifact.parse_reference(ref_text, push=True)
    auth = auth_file(authfile)
    plan = artifact.plan_artifact(file.read_bytes(), title=file.name, annotations=annotations)
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-index-push-") as tmp:
        layout = Path(tmp) / "layout"
        for rel, data in plan.layout_files().items():
            (layout / rel).parent.mkdir(parents=True, exist_ok=True)
            (layout / rel).write_bytes(data)
        argv = artifact.push_argv(layout, ref, tls_verify=tls_verify, authfile=auth)
        _registry(argv, ref.repository, runner, "pushing to")
    return IndexArtifact(
        f"{ref.repository}@{plan.digest}", plan.digest, plan.layer_digest, plan.size, str(file)
    )


def pull(
    ref_text: str,
    output: Path,
    *,
    tls_verify: bool = True,
    authfile: Path | None = None,
    runner: Runner | None = None,
) -> IndexArtifact:
    runner = runner or Runner()
    ref = artifact.parse_reference(ref_text, push=False)
    auth = auth_file(authfile)
    raw = _registry(
        artifact.inspect_argv(ref, tls_verify=tls_verify, authfile=auth),
        ref.repository,
        runner,
        "pulling from",
    )
    layer = artifact.check_manifest(raw, ref)  # refuses other things before any download
    digest = artifact.sha256(raw)
    pinned = artifact.Reference(ref.repository, None, digest)  # the manifest just checked
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-index-pull-") as tmp:
        layout = Path(tmp) / "layout"
        argv = artifact.pull_argv(pinned, layout, tls_verify=tls_verify, authfile=auth)
        _registry(argv, ref.repository, runner, "pulling from")
        index = json.loads((layout / "index.json").read_text())
        got = index["manifests"][0]["digest"]
        if got != digest:
            raise ArtifactDigestMismatch(f"skopeo copied manifest {got}, not {digest}")
        blob = layout / "blobs" / "sha256" / str(layer["digest"]).removeprefix("sha256:")
        data = blob.read_bytes() if blob.is_file() else b""
        artifact.check_blob(data, layer)
        write_atomic(output, data)
    return IndexArtifact(
        f"{ref.repository}@{digest}", digest, str(layer["digest"]), len(data), str(output)
    )
