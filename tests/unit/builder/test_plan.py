from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, git_argv, normal_mode, rootfs_key
from codebase_mcp.builder.lockfile import load_lock, write_lock
from codebase_mcp.builder.plan import ImagePlan, requirements_text
from codebase_mcp.builder.project import files_digest
from codebase_mcp.errors import DefinitionError, LockOutOfDate, UnknownImage
from codebase_mcp.proc import Runner

from .conftest import wheel


def planned(project: Path) -> ImagePlan:
    return Builder.create(project, store=project / "store", runner=Runner()).plan("demo")[2]


def keys(plan: ImagePlan) -> dict[str, str]:
    return {layer.name: layer.key for layer in plan.layers}


def test_layers_follow_the_definition(project: Path) -> None:
    plan = planned(project)
    assert [layer.name for layer in plan.layers] == ["rootfs", "python-common", "app", "files"]
    assert len(set(keys(plan).values())) == 4
    common = plan.layers[1]
    assert common.skeleton and common.venv == "/opt/venv"
    assert [w.name for w in common.wheels] == ["asyncpg", "click"]
    assert common.pip is not None and common.pip.filename == "pip-26.0-py3-none-any.whl"
    assert common.rootfs == plan.layers[0].key == plan.layers[2].rootfs
    (files,) = [layer for layer in plan.layers if layer.kind == "files"]
    assert [(dest, mode) for dest, _src, mode in files.files] == [("/usr/local/bin/entry", 0o644)]


def test_a_source_edit_changes_the_app_layer_only(project: Path) -> None:
    before = keys(planned(project))
    (project / "src" / "demo" / "__init__.py").write_text("VALUE = 2\n")
    after = keys(planned(project))
    assert [name for name in before if before[name] != after[name]] == ["app"]


def test_an_image_file_edit_changes_the_files_layer_only(project: Path) -> None:
    before = keys(planned(project))
    (project / "images" / "demo" / "entry.sh").write_text("#!/bin/sh\nexit 0\n")
    after = keys(planned(project))
    assert [name for name in before if before[name] != after[name]] == ["files"]


def test_sibling_images_share_the_common_wheels_and_the_app(project: Path) -> None:
    """A second image on the same root filesystem: the wheels both have are one layer."""
    other = project / "images" / "other"
    other.mkdir()
    text = (project / "images" / "demo" / "image.toml").read_text()
    (other / "image.toml").write_text(
        text.replace('description = "demo image"', 'description = "b"')
    )
    (other / "entry.sh").write_text("#!/bin/sh\n")
    lock = load_lock(project)
    demo = lock.images["demo"]
    assert demo.python is not None
    extra = wheel("numpy", "2.0").model_copy(update={"sha256": "cd" * 32})
    python = demo.python.model_copy(update={"wheels": [*demo.python.wheels[:1], extra]})
    write_lock(
        project,
        lock.model_copy(
            update={"images": {**lock.images, "other": demo.model_copy(update={"python": python})}}
        ),
    )
    builder = Builder.create(project, store=project / "store", runner=Runner())
    a, b = builder.plan("demo")[2], builder.plan("other")[2]
    assert [layer.name for layer in a.layers] == [
        "rootfs",
        "python-common",
        "python-deps",
        "app",
        "files",
    ]
    assert [layer.name for layer in b.layers] == [layer.name for layer in a.layers]
    for shared in ("rootfs", "python-common", "app"):
        assert keys(a)[shared] == keys(b)[shared], shared
    assert [w.name for w in a.layers[1].wheels] == ["asyncpg"]
    assert [w.name for w in a.layers[2].wheels] == ["click"]
    assert [w.name for w in b.layers[2].wheels] == ["numpy"]
    assert keys(a)["python-deps"] != keys(b)["python-deps"]


@pytest.mark.parametrize("dest", ["usr/bin/x", "/usr/../etc/x", "/", "/usr/bin/x/"])
def test_a_files_path_must_be_absolute_and_normalised(project: Path, dest: str) -> None:
    toml = project / "images" / "demo" / "image.toml"
    toml.write_text(toml.read_text().replace('"/usr/local/bin/entry"', f'"{dest}"'))
    with pytest.raises(DefinitionError, match="files key"):
        planned(project)


def test_a_files_source_outside_the_image_folder_is_refused(project: Path) -> None:
    toml = project / "images" / "demo" / "image.toml"
    toml.write_text(toml.read_text().replace('= "entry.sh"', '= "../../pyproject.toml"'))
    with pytest.raises(DefinitionError, match="not a file in"):
        planned(project)


def test_plan_is_deterministic_and_tagged_by_input_hash(project: Path) -> None:
    first, second = planned(project), planned(project)
    assert first == second
    assert first.ref == f"localhost/codebase-mcp-demo:{first.input_hash[:32]}"
    assert first.labels["io.codebase-mcp.input-hash"] == first.input_hash
    assert first.labels["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"


def test_project_file_change_changes_the_hash(project: Path) -> None:
    before = planned(project).input_hash
    (project / "src" / "demo" / "__init__.py").write_text("VALUE = 2\n")
    assert planned(project).input_hash != before


def test_ignored_caches_do_not_change_the_hash(project: Path) -> None:
    before = planned(project).input_hash
    cache = project / "src" / "demo" / "__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    assert planned(project).input_hash == before


def test_runtime_config_changes_the_hash_not_the_layers(project: Path) -> None:
    before = planned(project)
    toml = project / "images" / "demo" / "image.toml"
    toml.write_text(toml.read_text().replace('user = "10001:10001"', 'user = "10002:10002"'))
    after = planned(project)
    assert after.input_hash != before.input_hash
    assert keys(after) == keys(before)


def test_stale_lock_names_the_entry(project: Path) -> None:
    toml = project / "images" / "demo" / "image.toml"
    toml.write_text(
        toml.read_text().replace('packages = ["python3"]', 'packages = ["python3", "curl"]')
    )
    with pytest.raises(LockOutOfDate) as info:
        planned(project)
    assert "images.demo.debian.packages" in info.value.message
    assert "curl" in info.value.message


def test_dependency_change_in_pyproject_makes_lock_stale(project: Path) -> None:
    py = project / "pyproject.toml"
    py.write_text(py.read_text().replace('"asyncpg>=0.29"', '"asyncpg>=0.30"'))
    with pytest.raises(LockOutOfDate, match="python.requirements"):
        planned(project)


def test_unknown_image_lists_known_ones(project: Path) -> None:
    with pytest.raises(UnknownImage) as info:
        Builder.create(project, store=project / "store").plan("nope")
    assert info.value.hint is not None and "demo" in info.value.hint


def test_missing_context_file_is_a_definition_error(project: Path) -> None:
    (project / "images" / "demo" / "entry.sh").unlink()
    with pytest.raises(DefinitionError, match="entry.sh"):
        planned(project)


def test_requirements_pin_versions_and_hashes() -> None:
    text = requirements_text([wheel("b", "2.0"), wheel("a")])
    assert text.splitlines() == [
        f"a==1.0 --hash=sha256:{'ab' * 32}",
        f"b==2.0 --hash=sha256:{'ab' * 32}",
    ]


def test_rootfs_key_ignores_mode_but_not_packages(project: Path) -> None:
    builder = Builder.create(project, store=project / "store")
    definition, entry, _ = builder.plan("demo")
    key = rootfs_key(definition, entry, 1)
    assert key == rootfs_key(definition, entry, 1)
    assert key != rootfs_key(definition, entry, 2)
    fewer = entry.model_copy(
        update={"debian": entry.debian.model_copy(update={"packages": entry.debian.packages[:1]})}
    )
    assert rootfs_key(definition, fewer, 1) != key


def test_every_real_image_plans_its_layers() -> None:
    repo = Path(__file__).resolve().parents[3]
    builder = Builder.create(repo, store=repo / ".no-store")
    plans = {name: builder.plan(name)[2] for name in ("postgres", "server", "embedder")}
    assert [layer.name for layer in plans["postgres"].layers] == ["rootfs", "files"]
    server, embedder = plans["server"], plans["embedder"]
    assert [layer.name for layer in server.layers] == [
        "rootfs",
        "python-common",
        "python-deps",
        "app",
    ]
    # Same root filesystem, the same common wheels and the same project: shared layers.
    for shared in ("rootfs", "python-common", "app"):
        assert keys(server)[shared] == keys(embedder)[shared], shared
    assert keys(server)["rootfs"] != keys(plans["postgres"])["rootfs"]


def test_layer_keys_change_with_the_layer_format(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = keys(planned(project))
    monkeypatch.setattr("codebase_mcp.builder.plan.LAYER_FORMAT", 99)
    after = keys(planned(project))
    assert all(before[name] != after[name] for name in before)


def test_rootfs_key_changes_with_the_tarball_format(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition, entry, _ = Builder.create(project, store=project / "store").plan("demo")
    key = rootfs_key(definition, entry, 1)
    monkeypatch.setattr("codebase_mcp.builder.build.ROOTFS_FORMAT", 99)
    assert rootfs_key(definition, entry, 1) != key


def test_git_reads_a_checkout_owned_by_someone_else(tmp_path: Path) -> None:
    argv = git_argv(tmp_path / "repo" / "..")
    assert argv[:3] == ["git", "-c", f"safe.directory={tmp_path}"]
    assert argv[3:] == ["-C", str(tmp_path / "repo" / "..")]


@pytest.mark.parametrize(("mode", "normal"), [(0o775, 0o755), (0o744, 0o755), (0o664, 0o644)])
def test_image_file_modes_keep_only_the_executable_bit(
    tmp_path: Path, mode: int, normal: int
) -> None:
    path = tmp_path / "entry.sh"
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    assert normal_mode(path) == normal


def test_project_digest_reads_the_executable_bit_from_the_mode(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("x")
    digests = {}
    for mode in (0o744, 0o755, 0o644):
        script.chmod(mode)
        digests[mode] = files_digest(tmp_path, [Path("run.sh")])
    assert digests[0o744] == digests[0o755] != digests[0o644]
