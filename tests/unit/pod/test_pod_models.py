from __future__ import annotations

import pytest
from pydantic import ValidationError

from codebase_mcp.errors import UsageError
from codebase_mcp.pod.models import RenderInputs, names_for, repo_mounts, retarget


def test_names_derive_from_the_pod_name() -> None:
    names = names_for("cm-test-ab12")
    assert names.secret == "cm-test-ab12-db"
    assert names.data_volumes() == [
        "cm-test-ab12-pgdata",
        "cm-test-ab12-models",
        "cm-test-ab12-ollama",
    ]
    assert names.scratch_volumes() == [
        "cm-test-ab12-embedder-tmp",
        "cm-test-ab12-postgres-tmp",
        "cm-test-ab12-server-tmp",
    ]
    assert names.container("server") == "cm-test-ab12-server"


def test_repo_mounts_are_sorted_and_deduplicated() -> None:
    mounts = repo_mounts(["/srv/b", "/srv/a", "/srv/b"])
    assert [(m.host_path, m.container_path) for m in mounts] == [
        ("/srv/a", "/repos/0"),
        ("/srv/b", "/repos/1"),
    ]


@pytest.mark.parametrize("path", ["relative/dir", "/srv/a,b", "/srv/a=b"])
def test_repo_mounts_reject_paths_the_roots_variable_cannot_carry(path: str) -> None:
    with pytest.raises(UsageError):
        repo_mounts([path])


def test_roots_env_pairs_host_and_container_paths(images: dict[str, str]) -> None:
    inputs = RenderInputs(images=images, repos=repo_mounts(["/home/u/b", "/home/u/a"]))
    assert inputs.roots_env == "/home/u/a=/repos/0,/home/u/b=/repos/1"


@pytest.mark.parametrize("name", ["Codebase", "-x", "x-", "a_b", "x" * 41, ""])
def test_invalid_pod_names_are_refused(images: dict[str, str], name: str) -> None:
    with pytest.raises(ValidationError, match="pod name"):
        RenderInputs(name=name, images=images)


def test_every_image_ref_is_required(images: dict[str, str]) -> None:
    del images["embedder"]
    with pytest.raises(ValidationError, match="embedder"):
        RenderInputs(images=images)


def test_dev_profile_needs_the_checkout(images: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="dev_source"):
        RenderInputs(images=images, profile="dev")


def test_kubernetes_target_needs_a_password(images: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="db_password"):
        RenderInputs(images=images, target="kubernetes")


def test_retarget_moves_local_refs_to_a_registry(images: dict[str, str]) -> None:
    moved = retarget(images, "ghcr.io/acme/")
    assert moved["server"] == "ghcr.io/acme/codebase-mcp-server:3333333333333333"
    assert retarget(moved, "registry.local:5000")["server"] == (
        "registry.local:5000/codebase-mcp-server:3333333333333333"
    )
