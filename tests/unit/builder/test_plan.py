from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, rootfs_key
from codebase_mcp.builder.plan import ImagePlan, buildah_argv, requirements_text
from codebase_mcp.errors import DefinitionError, LockOutOfDate, TemplateError, UnknownImage
from codebase_mcp.proc import Runner

from .conftest import wheel


def planned(project: Path) -> ImagePlan:
    return Builder.create(project, store=project / "store", runner=Runner()).plan("demo")[2]


def test_rendered_containerfile_uses_definition_and_lock(project: Path) -> None:
    plan = planned(project)
    assert plan.containerfile.startswith("FROM scratch\nADD rootfs.tar /\n")
    assert 'ENV LANG="C.UTF-8"' in plan.containerfile
    assert "USER 10001:10001" in plan.containerfile
    assert 'ENTRYPOINT ["/opt/venv/bin/demo"]' in plan.containerfile
    assert "# pip: python/tools/pip-26.0-py3-none-any.whl" in plan.containerfile


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


def test_template_and_context_file_changes_change_the_hash(project: Path) -> None:
    before = planned(project).input_hash
    (project / "images" / "demo" / "entry.sh").write_text("#!/bin/sh\nexit 0\n")
    after_context = planned(project).input_hash
    assert after_context != before
    template = project / "images" / "demo" / "Containerfile.j2"
    template.write_text(template.read_text() + "LABEL x=y\n")
    assert planned(project).input_hash != after_context


def test_unknown_template_variable_names_template_and_line(project: Path) -> None:
    template = project / "images" / "demo" / "Containerfile.j2"
    template.write_text("FROM scratch\nADD rootfs.tar /\nUSER {{ config.no_such_field }}\n")
    with pytest.raises(TemplateError) as info:
        planned(project)
    assert "Containerfile.j2:3" in info.value.message
    assert "no_such_field" in info.value.message


def test_template_syntax_error_names_line(project: Path) -> None:
    (project / "images" / "demo" / "Containerfile.j2").write_text("FROM scratch\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"Containerfile.j2:2"):
        planned(project)


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


def test_buildah_argv_is_hermetic_and_reproducible(project: Path) -> None:
    plan = planned(project)
    argv = buildah_argv(plan, Path("/ctx"), 1767225600)
    assert argv[:2] == ["buildah", "bud"]
    for flag in (["--network", "none"], ["--format", "oci"], ["--timestamp", "1767225600"]):
        i = argv.index(flag[0])
        assert argv[i : i + 2] == flag
    assert "--pull-never" in argv and "--identity-label=false" in argv
    assert argv[argv.index("--tag") + 1] == plan.ref
    assert argv[-1] == "/ctx"
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert labels == sorted(labels)


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
