from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder.definitions import load_definitions
from codebase_mcp.builder.lockfile import Lock, UpstreamLock, first_difference, load_lock
from codebase_mcp.builder.locking import resolve_upstream, select
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
