from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder.definitions import load_definitions
from codebase_mcp.builder.lockfile import Lock, UpstreamLock, first_difference, load_lock
from codebase_mcp.builder.locking import lock_upstream, resolve_upstream, select
from codebase_mcp.errors import LockError, UnknownImage
from codebase_mcp.proc import Result, Runner


def test_first_difference_names_the_path() -> None:
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 1}}, "x") is None
    assert (
        first_difference({"a": {"b": 1}}, {"a": {"b": 2}}, "x")
        == "x.a.b is 1 in the lock but 2 in the definition"
    )
    assert "x.c is new" in str(first_difference({}, {"c": 1}, "x"))


def test_select_by_name_and_by_updated_package(project: Path) -> None:
    definitions = load_definitions(project)
    lock = load_lock(project)
    assert [d.name for d in select(definitions, ["demo"], None, lock)] == ["demo"]
    assert [d.name for d in select(definitions, None, ["libc6"], lock)] == ["demo"]
    assert [d.name for d in select(definitions, None, ["Click"], lock)] == ["demo"]
    with pytest.raises(LockError, match="no locked image contains"):
        select(definitions, None, ["not-there"], lock)
    with pytest.raises(UnknownImage):
        select(definitions, ["nope"], None, lock)


class FailingSkopeo(Runner):
    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
        self.calls.append(tuple(argv))
        return Result(tuple(argv), 1, "", "pinging container registry: no such host")


def test_unreachable_registry_keeps_the_previous_pin(project: Path) -> None:
    (project / "images" / "upstream.toml").write_text(
        '[ollama]\nreference = "docker.io/ollama/ollama:latest"\n'
    )
    previous = load_lock(project).model_copy(
        update={
            "upstream": {
                "ollama": UpstreamLock(
                    reference="docker.io/ollama/ollama:latest", digest="sha256:" + "a" * 64
                )
            }
        }
    )
    runner = FailingSkopeo()
    kept = resolve_upstream(project, previous, runner)
    assert kept["ollama"].pinned == "docker.io/ollama/ollama@sha256:" + "a" * 64
    assert runner.calls[0][:2] == ("skopeo", "inspect")
    fresh = resolve_upstream(project, Lock(source_date_epoch=0, images={}), runner)
    assert fresh["ollama"].digest is None and fresh["ollama"].pinned is None


@pytest.mark.parametrize(
    ("reference", "pinned"),
    [
        ("docker.io/ollama/ollama:latest", "docker.io/ollama/ollama"),
        ("docker.io/ollama/ollama", "docker.io/ollama/ollama"),
        ("registry.local:5000/team/ollama", "registry.local:5000/team/ollama"),
        ("registry.local:5000/team/ollama:0.12", "registry.local:5000/team/ollama"),
        ("ollama/ollama@sha256:" + "b" * 64, "ollama/ollama"),
    ],
)
def test_pinned_reference_drops_the_tag_but_keeps_a_registry_port(
    reference: str, pinned: str
) -> None:
    digest = "sha256:" + "c" * 64
    assert UpstreamLock(reference=reference, digest=digest).pinned == f"{pinned}@{digest}"


class UnreachableMirror(Runner):
    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
        self.calls.append(tuple(argv))
        from codebase_mcp.errors import CommandFailed

        raise CommandFailed(
            "`mmdebstrap …` failed with exit code 25:\nE: Failed to fetch", returncode=25
        )


def test_unreachable_mirror_leaves_the_lock_untouched(project: Path) -> None:
    from codebase_mcp.builder.locking import lock_images

    path = project / "build" / "lock.json"
    before = path.read_bytes()
    with pytest.raises(LockError) as info:
        lock_images(project, ["demo"], runner=UnreachableMirror())
    assert "resolving Debian packages for 'demo' failed" in info.value.message
    assert info.value.hint is not None and "was not changed" in info.value.hint
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))


class Skopeo(Runner):
    """Answers `skopeo inspect` with a fixed digest."""

    digest = "sha256:" + "d" * 64

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def,override]
        self.calls.append(tuple(argv))
        return Result(tuple(argv), 0, self.digest + "\n", "")


def test_lock_upstream_pins_and_leaves_the_images_alone(project: Path) -> None:
    (project / "images" / "upstream.toml").write_text(
        '[ollama]\nreference = "docker.io/ollama/ollama:latest"\n'
    )
    before = load_lock(project)
    runner = Skopeo()
    _, pins = lock_upstream(project, runner=runner)
    after = load_lock(project)
    assert pins["ollama"].pinned == "docker.io/ollama/ollama@" + Skopeo.digest
    assert after.upstream == pins
    assert after.images == before.images
    assert after.source_date_epoch == before.source_date_epoch
    assert [c[:2] for c in runner.calls] == [("skopeo", "inspect")]


def test_lock_upstream_needs_a_lock(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no build/lock.json"):
        lock_upstream(tmp_path, runner=Skopeo())


def test_cli_lock_upstream_fails_when_nothing_could_be_pinned(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codebase_mcp.builder import locking
    from codebase_mcp.cli import main

    (project / "images" / "upstream.toml").write_text(
        '[ollama]\nreference = "docker.io/ollama/ollama:latest"\n'
    )
    before = (project / "build" / "lock.json").read_text()
    monkeypatch.setattr(locking, "Runner", FailingSkopeo)
    with pytest.raises(SystemExit) as exited:
        main(["image", "lock", "--upstream", "--root", str(project)])
    err = capsys.readouterr().err
    assert exited.value.code == 14, err
    assert "could not pin ollama" in err and "registry must be reachable" in err
    # The images' entries are untouched; the unpinned entry is recorded as such.
    after = load_lock(project)
    assert after.images == Lock.model_validate_json(before).images
    assert after.upstream["ollama"].digest is None


def test_cli_lock_upstream_refuses_other_options(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codebase_mcp.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["image", "lock", "--upstream", "--check", "--root", str(project)])
    assert exited.value.code == 2
    assert "--upstream takes no image names" in capsys.readouterr().err
