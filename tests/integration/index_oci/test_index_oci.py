"""index push/pull against a real local registry (docker-registry on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.publish import artifact
from tests.integration.publish.cli import cli
from tests.integration.publish.registry import Registry, start_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Path]]:
    work = tmp_path_factory.mktemp(f"index-registry-{os.getpid()}")
    with start_registry(work) as reg:
        yield reg, work / "data"


def test_push_then_pull_by_tag_and_digest(registry: tuple[Registry, Path], tmp_path: Path) -> None:
    reg, _ = registry
    src = tmp_path / "a.idx"
    src.write_bytes(os.urandom(70_000))
    ref = f"{reg.host}/acme/index:main"
    first = cli("index", "push", str(src), ref, "--tls-verify=false", "--json",
                "--annotation", "project=p1")  # fmt: skip
    assert first.returncode == 0, first.stderr
    pushed = json.loads(first.stdout)
    again = cli("index", "push", str(src), ref, "--no-tls-verify", "--annotation", "project=p1")
    assert again.stdout.strip() == pushed["reference"]  # same file, same digest
    for i, pull_ref in enumerate([ref, pushed["reference"]]):
        out = tmp_path / f"out{i}.idx"
        got = cli("index", "pull", pull_ref, "-o", str(out), "--no-tls-verify")
        assert got.returncode == 0, got.stderr
        assert got.stdout.strip() == pushed["reference"]
        assert out.read_bytes() == src.read_bytes()


def _push_layout(plan: artifact.ArtifactPlan, layout: Path, ref: str) -> None:
    for rel, data in plan.layout_files().items():
        (layout / rel).parent.mkdir(parents=True, exist_ok=True)
        (layout / rel).write_bytes(data)
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:index",
         f"docker://{ref}"],
        check=True, capture_output=True,
    )  # fmt: skip


def test_wrong_type_refused(registry: tuple[Registry, Path], tmp_path: Path) -> None:
    reg, _ = registry
    plan = artifact.plan_artifact(b"not an index", title="x", annotations={})
    manifest = json.loads(plan.manifest)
    manifest["artifactType"] = "application/vnd.example.other.v1"
    raw = artifact.canonical(manifest)
    blobs = {**plan.blobs, artifact.sha256(raw): raw}
    del blobs[plan.digest]
    other = artifact.ArtifactPlan(raw, artifact.sha256(raw), blobs, plan.layer_digest, plan.size)
    _push_layout(other, tmp_path / "layout", f"{reg.host}/acme/other:v1")
    out = tmp_path / "o" / "x.idx"
    got = cli("index", "pull", f"{reg.host}/acme/other:v1", "-o", str(out), "--no-tls-verify")
    assert got.returncode == 42, got.stderr
    assert "is not a codebase-mcp index artifact" in got.stderr
    assert not out.parent.exists()


def test_corrupted_blob_refused(registry: tuple[Registry, Path], tmp_path: Path) -> None:
    reg, data = registry
    payload = os.urandom(5000)
    plan = artifact.plan_artifact(payload, title="c.idx", annotations={})
    _push_layout(plan, tmp_path / "layout", f"{reg.host}/acme/corrupt:v1")
    hexd = plan.layer_digest.removeprefix("sha256:")
    blob = data / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    blob.write_bytes(b"X" + payload[1:])  # same size, wrong bytes, in the registry's store
    out = tmp_path / "o" / "c.idx"
    got = cli("index", "pull", f"{reg.host}/acme/corrupt:v1", "-o", str(out), "--no-tls-verify")
    assert got.returncode == 43, got.stderr
    assert "digest" in got.stderr
    assert not out.parent.exists()


def test_unreachable_and_missing_auth_file(tmp_path: Path) -> None:
    out = tmp_path / "x.idx"
    got = cli("index", "pull", "127.0.0.1:1/acme/index:v1", "-o", str(out), "--no-tls-verify")
    assert got.returncode == 40, got.stderr
    assert "cannot connect to registry '127.0.0.1:1'" in got.stderr
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "missing.json")}
    got = cli("index", "pull", "127.0.0.1:1/acme/index:v1", "-o", str(out), env=env)
    assert got.returncode == 44, got.stderr
    assert "missing.json, which does not exist" in got.stderr
    assert list(tmp_path.iterdir()) == []
