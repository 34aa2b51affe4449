"""The index artifact plan: deterministic digest, annotations, argv, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebase_mcp.errors import ArtifactDigestMismatch, NotAnIndexArtifact, UsageError
from codebase_mcp.publish import artifact


def test_same_file_same_digest() -> None:
    a = artifact.plan_artifact(b"data", title="x.idx", annotations={"project": "p"})
    b = artifact.plan_artifact(b"data", title="x.idx", annotations={"project": "p"})
    assert a.digest == b.digest and a.manifest == b.manifest
    assert a.digest == artifact.sha256(a.manifest)
    other = artifact.plan_artifact(b"datb", title="x.idx", annotations={"project": "p"})
    assert other.digest != a.digest


def test_manifest_is_an_oci_1_1_artifact() -> None:
    plan = artifact.plan_artifact(
        b"data", title="x.idx", annotations={"model": "m@sha256:1", "project": "p", "empty": ""}
    )
    m = json.loads(plan.manifest)
    assert m["artifactType"] == artifact.ARTIFACT_TYPE
    assert m["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert m["config"]["digest"] == artifact.sha256(b"{}")
    assert [layer["digest"] for layer in m["layers"]] == [artifact.sha256(b"data")]
    assert m["annotations"] == {
        "dev.codebase-mcp.index.model": "m@sha256:1",
        "dev.codebase-mcp.index.project": "p",
    }
    assert "org.opencontainers.image.created" not in plan.manifest.decode()
    files = plan.layout_files()
    assert set(files) >= {"oci-layout", "index.json"}
    assert files[f"blobs/sha256/{plan.digest[7:]}"] == plan.manifest


def test_argv_never_holds_credentials_and_pins_digest() -> None:
    ref = artifact.parse_reference("127.0.0.1:5000/acme/idx:v1", push=True)
    argv = artifact.push_argv(Path("/l"), ref, tls_verify=False, authfile=Path("/a.json"))
    assert argv[:4] == ["skopeo", "copy", "--quiet", "--preserve-digests"]
    assert "--dest-tls-verify=false" in argv and "--dest-authfile" in argv
    assert argv[-2:] == ["oci:/l:index", "docker://127.0.0.1:5000/acme/idx:v1"]
    pinned = artifact.parse_reference("127.0.0.1:5000/acme/idx@sha256:" + "a" * 64, push=False)
    assert artifact.inspect_argv(pinned, tls_verify=True, authfile=None) == [
        "skopeo", "inspect", "--raw", "--tls-verify=true",
        "docker://127.0.0.1:5000/acme/idx@sha256:" + "a" * 64,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "push"),
    [("127.0.0.1:5000/acme/idx", True), ("127.0.0.1:5000/acme/idx@sha256:" + "a" * 64, True),
     ("idx:v1", False), ("127.0.0.1:5000/Acme/idx:v1", False)],
)  # fmt: skip
def test_bad_references(text: str, push: bool) -> None:
    with pytest.raises(UsageError):
        artifact.parse_reference(text, push=push)


def test_check_manifest_refuses_other_types_and_lying_digests() -> None:
    plan = artifact.plan_artifact(b"data", title="x", annotations={})
    ref = artifact.parse_reference("h.io/a/b:t", push=False)
    layer = artifact.check_manifest(plan.manifest, ref)
    artifact.check_blob(b"data", layer)
    with pytest.raises(ArtifactDigestMismatch):
        artifact.check_blob(b"datX", layer)
    pinned = artifact.Reference("h.io/a/b", None, "sha256:" + "0" * 64)
    with pytest.raises(ArtifactDigestMismatch):
        artifact.check_manifest(plan.manifest, pinned)
    image = json.loads(plan.manifest)
    del image["artifactType"]
    image["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"
    with pytest.raises(NotAnIndexArtifact, match="not a codebase-mcp index artifact"):
        artifact.check_manifest(json.dumps(image).encode(), ref)
