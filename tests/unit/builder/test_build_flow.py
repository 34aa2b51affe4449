"""The build flow with the engines faked (fakes.EngineRunner): which layers are made
when, what runs for them, and what the store keeps. Layer tars, the store and
the OCI layout are the builder's own, for real."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, BuildResult
from codebase_mcp.builder.layerstore import LayerStore
from codebase_mcp.builder.store import Store
from codebase_mcp.errors import StoreFull

from .fakes import EngineRunner, real_inputs


@pytest.fixture
def runner(project: Path) -> EngineRunner:
    return real_inputs(project, project / "store")


def build(project: Path, runner: EngineRunner, **kwargs: object) -> BuildResult:
    runner.calls.clear()
    builder = Builder(root=project, store=Store(project / "store"), runner=runner)
    (result,) = builder.build(["demo"], **kwargs)  # type: ignore[arg-type]
    return result


def edit(project: Path, text: str) -> None:
    (project / "src" / "demo" / "__init__.py").write_text(text)


def tools(runner: EngineRunner) -> list[str]:
    return [Path(call[0]).name for call in runner.calls]


def test_cold_build_makes_every_layer_and_assembles_without_buildah(
    project: Path, runner: EngineRunner
) -> None:
    result = build(project, runner)
    assert not result.cached
    assert "buildah" not in tools(runner)
    assert tools(runner).count("mmdebstrap") == 1
    scripts = runner.pip_runs()
    assert len(scripts) == 2  # the wheels, the project
    assert "-r /mnt/requirements.txt" in scripts[0] and "/mnt/app/*.whl" in scripts[1]
    records = sorted((project / "store" / "layers").glob("*.json"))
    assert len(records) == 4  # rootfs, python-common, app, files
    (copy,) = [c for c in runner.calls if c[0] == "skopeo"]
    assert copy[-1] == f"containers-storage:{result.ref}"
    # The image ID is the sha256 of the config the builder wrote.
    assert result.image_id == f"sha256:{runner.images[result.ref]}"


def test_app_only_rebuild_runs_no_pip_for_the_dependencies(
    project: Path, runner: EngineRunner
) -> None:
    first = build(project, runner)
    edit(project, "VALUE = 2\n")
    second = build(project, runner)
    assert second.ref != first.ref and not second.cached
    (script,) = runner.pip_runs()  # one pip run: the project's own wheel
    assert "/mnt/app/*.whl" in script
    assert "requirements.txt" not in script and "--find-links" not in script
    assert "mmdebstrap" not in tools(runner)
    assert tools(runner).count("skopeo") == 1
    unpacks = [c for c in runner.calls if c[0] == "tar"]
    assert unpacks == []  # the unpacked root filesystem is reused


def test_the_cached_no_op_runs_nothing_but_podman_and_git(
    project: Path, runner: EngineRunner
) -> None:
    first = build(project, runner)
    again = build(project, runner)
    assert again.cached and again.image_id == first.image_id
    assert set(tools(runner)) <= {"podman", "git"}


def test_two_rebuilds_of_the_same_edit_give_the_same_image(
    project: Path, runner: EngineRunner
) -> None:
    build(project, runner)
    edit(project, "VALUE = 3\n")
    first = build(project, runner)
    LayerStore(project / "store").discard(app_key(project, runner))  # the app layer is made again
    runner.images.clear()
    second = build(project, runner)
    assert len(runner.pip_runs()) == 1
    assert second.image_id == first.image_id and second.ref == first.ref


def app_key(project: Path, runner: EngineRunner) -> str:
    builder = Builder(root=project, store=Store(project / "store"), runner=runner)
    app = builder.plan("demo")[2].layer("app")
    assert app is not None
    return app.key


def layer_keys(project: Path) -> list[str]:
    return [p.stem for p in (project / "store" / "layers").glob("*.json")]


def layer_name(project: Path, key: str) -> str:
    return str(json.loads((project / "store" / "layers" / f"{key}.json").read_text())["name"])


def test_a_tampered_layer_is_detected_and_made_again_never_used(
    project: Path, runner: EngineRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    first = build(project, runner)
    store = LayerStore(project / "store")
    key = app_key(project, runner)
    blob = store.get(key)
    assert blob is not None
    blob.path.chmod(0o644)
    blob.path.write_bytes(blob.path.read_bytes().replace(b"VALUE", b"EVIL!", 1) + b"x")
    runner.images.clear()
    second = build(project, runner)
    assert "corrupt" in capsys.readouterr().err
    assert len(runner.pip_runs()) == 1  # the app layer, made again
    assert second.image_id == first.image_id  # the image is the untampered one
    again = store.get(key)
    assert again is not None and again.digest == blob.digest


def test_disk_full_while_a_layer_is_written_leaves_no_store_entry(
    project: Path, runner: EngineRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import codebase_mcp.builder.tarball as tarball

    real = tarball.tree_tar

    def full(root: Path, out: object, epoch: int) -> None:
        real(root, out, epoch)  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarball, "tree_tar", full)
    with pytest.raises(StoreFull, match="nothing was stored"):
        build(project, runner)
    names = [layer_name(project, k) for k in layer_keys(project)]
    assert names == ["rootfs"]  # made before the disk filled; the venv layer was not kept
    blobs = project / "store" / "sha256"
    assert not list(blobs.glob(".partial*"))
    assert runner.images == {}  # no image was tagged
    monkeypatch.setattr(tarball, "tree_tar", real)
    result = build(project, runner)  # with room again, the build completes
    assert not result.cached
