"""image gc against real podman, in a throwaway image storage and store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.builder.api import repo_root
from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.layerstore import LayerStore
from codebase_mcp.builder.lockfile import load_lock
from codebase_mcp.proc import Runner
from codebase_mcp.publish import gc
from tests.integration.publish.registry import drop_storage

pytestmark = pytest.mark.integration
REPO = repo_root(Path(__file__).resolve().parent)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[tuple[str, ...]]:
    runroot = Path(f"/tmp/cmr-{secrets.token_hex(4)}")
    args = ("--root", str(tmp_path / "storage"), "--runroot", str(runroot))
    yield args
    drop_storage(tmp_path / "storage", runroot)


def tiny_image(storage: tuple[str, ...], tmp_path: Path, *refs: str) -> None:
    """A one-file image imported into the throwaway storage under each ref."""
    tar_path = tmp_path / f"{secrets.token_hex(4)}.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = secrets.token_bytes(64)
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(["podman", *storage, "import", "-q", str(tar_path), refs[0]], check=True,
                   capture_output=True)  # fmt: skip
    for ref in refs[1:]:
        subprocess.run(["podman", *storage, "tag", refs[0], ref], check=True)


def names(storage: tuple[str, ...]) -> set[str]:
    out = subprocess.run(
        ["podman", *storage, "images", "--format", "json"], check=True, capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    return {n for image in json.loads(out) for n in image.get("Names") or []}


def test_removes_only_what_the_lock_does_not_reference(
    storage: tuple[str, ...], tmp_path: Path
) -> None:
    plan = Builder.create(REPO).plan("postgres")[2]
    current = plan.ref
    old = "localhost/codebase-mcp-postgres:" + "0" * 32
    foreign = "localhost/codebase-mcp-postgres:dev"
    tiny_image(storage, tmp_path, current)
    tiny_image(storage, tmp_path, old, foreign)

    lock = load_lock(REPO)
    store = tmp_path / "store"
    locked_sha = lock.images["postgres"].debian.packages[0].sha256
    key = plan.layers[0].key  # the root filesystem layer: current
    for rel in (f"sha256/{locked_sha}", f"sha256/{'e' * 64}", f"rootfs/{'f' * 64}.tar"):
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(b"x" * 1000)
    layers = LayerStore(store)
    current_blob = layers.put(key, "rootfs", lambda out: out.write(b"layer")).path
    layers.put("0" * 64, "rootfs", lambda out: out.write(b"old layer"))  # no image has it
    old_blob = layers.blob_path(hashlib.sha256(b"old layer").hexdigest())

    runner = Runner()
    planned = gc.gc(REPO, store, runner=runner, storage_args=storage)
    targets = {r.target for r in planned}
    assert targets == {
        old,
        str(store / "sha256" / ("e" * 64)),
        str(store / f"rootfs/{'f' * 64}.tar"),
        str(layers.record_path("0" * 64)),
        str(old_blob),
    }
    assert names(storage) == {current, old, foreign}  # a plan removes nothing

    assert gc.apply(planned, runner, storage) == []
    assert names(storage) == {current, foreign}
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) == sorted(
        [f"sha256/{locked_sha}", f"layers/{key}.json", str(current_blob.relative_to(store))]
    )
    assert gc.gc(REPO, store, runner=runner, storage_args=storage) == []


def test_cli_dry_run_lists_and_keeps(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    (store / "sha256" / ("e" * 64)).write_bytes(b"x")
    argv = [sys.executable, "-c", "from codebase_mcp.cli import main; main()", "image", "gc",
            "--json", "--store", str(store)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO,
                            env={**os.environ, "CODEBASE_MCP_ROOT": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["applied"] is False
    assert str(store / "sha256" / ("e" * 64)) in {r["target"] for r in report["removals"]}
    assert (store / "sha256" / ("e" * 64)).exists()
