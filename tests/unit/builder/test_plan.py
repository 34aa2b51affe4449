from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, git_argv, normal_mode, rootfs_key
from codebase_mcp.builder.plan import (
    ImagePlan,
    buildah_argv,
    check_layers_driver_independent,
    image_stages,
    instructions,
    requirements_text,
)
from codebase_mcp.builder.project import files_digest
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


STAGED = """FROM scratch AS os
ADD rootfs.tar /
FROM os AS build
RUN --mount=type=bind,source=.,target=/mnt \\
    make install
FROM os AS with-tools
COPY --from=build /usr/local /usr/local
FROM with-tools
COPY files/entry.sh /entry.sh
ENV A="1" \\
    B="2"
"""


def test_instructions_join_continuations_and_drop_comments() -> None:
    steps = instructions("# c\nFROM x AS y\nRUN a \\\n  # inner\n  && b\n\nENV A=1\n")
    assert steps == [("FROM", "x AS y"), ("RUN", "a  && b"), ("ENV", "A=1")]


def test_image_stages_follow_the_from_chain_and_skip_build_stages() -> None:
    chain = image_stages(instructions(STAGED))
    assert [[kw for kw, _ in stage] for stage in chain] == [["COPY", "ENV"], ["COPY"], ["ADD"]]
    check_layers_driver_independent("demo", STAGED)  # RUN only in a build stage: fine


@pytest.mark.parametrize(
    "containerfile",
    [
        STAGED + "RUN chmod +x /entry.sh\n",  # in the image's own stage
        STAGED.replace("FROM os AS with-tools\n", "FROM os AS with-tools\nRUN true\n"),
        "FROM scratch\nADD rootfs.tar /\nRUN true\n",
    ],
)
def test_run_in_a_stage_the_image_is_made_of_is_refused(containerfile: str) -> None:
    with pytest.raises(TemplateError, match="storage driver") as info:
        check_layers_driver_independent("demo", containerfile)
    assert info.value.hint and "COPY --from" in info.value.hint


def test_every_real_image_is_made_of_add_and_copy_layers_only() -> None:
    repo = Path(__file__).resolve().parents[3]
    builder = Builder.create(repo, store=repo / ".no-store")
    for name in ("postgres", "server", "embedder"):
        containerfile = builder.plan(name)[2].containerfile  # runs the check itself
        layer_steps = [
            kw
            for stage in image_stages(instructions(containerfile))
            for kw, _ in stage
            if kw in {"ADD", "COPY", "RUN"}
        ]
        assert layer_steps and set(layer_steps) <= {"ADD", "COPY"}, name
    chain = image_stages(instructions(builder.plan("server")[2].containerfile))
    assert len(chain) == 3  # OS / dependencies / project: one stage per layer


def test_buildah_commits_once_per_stage(project: Path) -> None:
    argv = buildah_argv(planned(project), Path("/ctx"), 1)
    assert "--layers" not in argv  # one commit per instruction: a full copy each with vfs
    assert "--omit-history" in argv


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
def test_context_file_modes_keep_only_the_executable_bit(
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
