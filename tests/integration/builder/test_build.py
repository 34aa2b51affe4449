"""The builder against real buildah, podman and mmdebstrap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, BuildResult
from codebase_mcp.builder.layerstore import LayerStore
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.builder.verify import verify_images
from codebase_mcp.errors import HashMismatch
from codebase_mcp.proc import Runner
from tests.support.checkout import copy_checkout

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # cold builds, shared host
REPO = Path(__file__).resolve().parents[3]


def layers(ref: str) -> list[str]:
    out = subprocess.run(
        ["podman", "image", "inspect", ref], check=True, capture_output=True, text=True
    ).stdout
    return list(json.loads(out)[0]["RootFS"]["Layers"])


def forget_layer(store: LayerStore, key: str) -> None:
    made = store.get(key, check=False)
    store.discard(key, made.path if made is not None else None)


def exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref]).returncode == 0


@pytest.fixture(scope="module")
def built() -> dict[str, BuildResult]:
    results = Builder.create(REPO).build(["postgres", "server"])
    return {r.name: r for r in results}


@pytest.fixture
def removable_refs() -> Iterator[list[str]]:
    refs: list[str] = []
    yield refs
    for ref in refs:
        subprocess.run(["podman", "rmi", "-f", ref], capture_output=True)


def test_both_images_build_with_content_addressed_tags(built: dict[str, BuildResult]) -> None:
    for name, result in built.items():
        assert result.ref == f"localhost/codebase-mcp-{name}:{result.input_hash[:32]}"
        assert exists(result.ref)
        assert result.image_id.startswith("sha256:") and result.size_bytes > 10_000_000
    # Layers: OS + entrypoint for postgres; OS / common wheels / server wheels / app.
    assert len(layers(built["server"].ref)) == 4
    assert len(layers(built["postgres"].ref)) == 2


def test_second_build_is_cached_and_runs_nothing_but_podman_and_git(
    built: dict[str, BuildResult],
) -> None:
    runner = Runner()
    again = Builder.create(REPO, runner=runner).build(["postgres", "server"])
    assert all(r.cached for r in again)
    assert [r.image_id for r in again] == [built["postgres"].image_id, built["server"].image_id]
    assert {c[0] for c in runner.calls} <= {"podman", "git"}


def test_image_labels_carry_input_hash_and_epoch(built: dict[str, BuildResult]) -> None:
    out = subprocess.run(
        ["podman", "image", "inspect", built["server"].ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    labels = json.loads(out)[0]["Labels"]
    assert labels["io.codebase-mcp.input-hash"] == built["server"].input_hash
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert "io.buildah.version" not in labels  # --identity-label=false


def test_server_image_runs_the_project_as_non_root(built: dict[str, BuildResult]) -> None:
    out = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            built["server"].ref,
            "-c",
            "id -u; codebase-mcp --version",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0] == "10001"
    assert out[-1] == "0.1.0"


def test_server_image_has_what_its_compiled_wheels_need(built: dict[str, BuildResult]) -> None:
    modules = "asyncpg, pgvector.asyncpg, tree_sitter_python, fastmcp, alembic, greenlet"
    result = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "--entrypoint",
            "/opt/venv/bin/python",
            built["server"].ref,
            "-c",
            f"import {modules}; print('ok')",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_source_change_rebuilds_only_the_app_layer(
    built: dict[str, BuildResult], tmp_path: Path, removable_refs: list[str]
) -> None:
    root = copy_checkout(tmp_path)
    init = root / "src" / "codebase_mcp" / "__init__.py"
    init.write_text(init.read_text() + "\n# a source-only change\n")
    runner = Runner()
    builder = Builder.create(root, runner=runner)
    app = builder.plan("server")[2].layer("app")
    assert app is not None
    # The layer store is the host's: a run of this test at the same commit left this exact
    # layer behind, and the build below must make it, not find it.
    forget_layer(builder.layers, app.key)
    try:
        _rebuild_app_layer_twice(builder, root, runner, built, removable_refs, app.key)
    finally:
        forget_layer(builder.layers, app.key)  # this edit's layer is of no use to anyone


def _rebuild_app_layer_twice(
    builder: Builder,
    root: Path,
    runner: Runner,
    built: dict[str, BuildResult],
    removable_refs: list[str],
    app_key: str,
) -> None:
    (changed,) = builder.build(["server"])
    removable_refs.append(changed.ref)
    assert changed.ref != built["server"].ref and not changed.cached
    before, after = layers(built["server"].ref), layers(changed.ref)
    assert before[:3] == after[:3]
    assert before[3] != after[3]
    # Only the project's own wheel was installed: one sandbox run, no buildah, no mmdebstrap.
    tools = [c[0] for c in runner.calls]
    assert "buildah" not in tools and "mmdebstrap" not in tools
    (pip,) = [c for c in runner.calls if c[0] == "unshare"]
    assert "/mnt/app/" in pip[-2] and "requirements.txt" not in pip[-2]

    # The same edit built again, its app layer made anew: the same image, bit for bit.
    subprocess.run(["podman", "rmi", "-f", changed.ref], capture_output=True)
    builder.layers.discard(app_key)
    (again,) = Builder.create(root).build(["server"])
    assert not again.cached
    assert (again.image_id, again.digest) == (changed.image_id, changed.digest)


def test_tampered_store_entry_fails_and_tags_nothing(tmp_path: Path) -> None:
    root = copy_checkout(tmp_path / "repo")
    entry = root / "images" / "postgres" / "entrypoint.sh"
    entry.write_text(entry.read_text() + "\n# changed so that the tag is new\n")
    lock = json.loads((root / "build" / "lock.json").read_text())
    packages = lock["images"]["postgres"]["debian"]["packages"]
    store = Store(tmp_path / "store")
    (store.root / "sha256").mkdir(parents=True)
    for package in packages:  # real copies: tampering must not reach the shared store
        shutil.copyfile(
            default_store() / "sha256" / package["sha256"], store.path(package["sha256"])
        )
    victim = next(p for p in packages if p["name"] == "postgresql-17-pgvector")
    with store.path(victim["sha256"]).open("ab") as fh:
        fh.write(b"tampered")
    builder = Builder(root=root, store=store, runner=Runner())
    ref = builder.plan("postgres")[2].ref
    with pytest.raises(HashMismatch) as info:
        builder.build(["postgres"])
    assert "postgresql-17-pgvector" in info.value.message and victim["sha256"] in info.value.message
    assert not exists(ref)


def test_a_tampered_cached_layer_is_made_again_and_never_used(
    built: dict[str, BuildResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The entrypoint layer's blob is corrupted in a store of its own: the build notices
    (sha256), makes the layer again, and the image is the untampered one."""
    main = Builder.create(REPO)
    plan = main.plan("postgres")[2]
    rootfs, files = plan.layers
    store = Store(tmp_path / "store")
    own = LayerStore(store.root)
    for layer, copy in ((rootfs, False), (files, True)):
        record = main.layers.record_path(layer.key)
        made = main.layers.require(layer.key)
        (store.root / "layers").mkdir(parents=True, exist_ok=True)
        (store.root / "sha256").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record, own.record_path(layer.key))
        target = own.blob_path(made.digest)
        if copy:  # a real copy, to tamper with
            shutil.copyfile(made.path, target)
            with target.open("r+b") as fh:
                fh.seek(600)
                fh.write(b"tampered")
        else:
            os.link(made.path, target)
    runroot = Path(f"/tmp/cbt-{os.getpid()}")
    storage = ("--root", str(tmp_path / "storage"), "--runroot", str(runroot))
    try:
        builder = Builder(root=REPO, store=store, runner=Runner(), storage_args=storage)
        (result,) = builder.build(["postgres"])
        assert "corrupt" in capsys.readouterr().err
        assert result.image_id == built["postgres"].image_id
        assert own.require(files.key).digest == main.layers.require(files.key).digest
    finally:
        subprocess.run(["podman", *storage, "rmi", "-a", "-f"], capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp_path / "storage"), str(runroot)], check=False)


@pytest.mark.slow
def test_rebuild_from_empty_storage_is_bit_for_bit_identical(
    built: dict[str, BuildResult], tmp_path: Path
) -> None:
    # A store of its own (the fetched inputs linked in), so that what the rebuild
    # leaves behind is its own, not another build's sharing the default store.
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    for entry in (default_store() / "sha256").iterdir():
        if not entry.name.startswith("."):
            os.link(entry, store / "sha256" / entry.name)
    reports = verify_images(REPO, ["postgres", "server"], store)
    assert [r["image_id"] for r in reports] == [
        built["postgres"].image_id,
        built["server"].image_id,
    ]
    assert all(r["identical"] for r in reports)
    # The rebuild's storage and layer store (its own root filesystems) are gone.
    assert not list(store.glob("verify-*"))
