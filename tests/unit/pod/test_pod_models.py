from __future__ import annotations

import pytest
from pydantic import ValidationError

from codebase_mcp.errors import UsageError
from codebase_mcp.pod.models import (
    RenderInputs,
    names_for,
    repo_container_path,
    repo_mounts,
    retarget,
)


def test_names_derive_from_the_pod_name() -> None:
    names = names_for("cm-test-ab12")
    assert names.secret == "cm-test-ab12-db"
    assert names.data_volumes() == [
        "cm-test-ab12-pgdata",
        "cm-test-ab12-models",
        "cm-test-ab12-ollama",
        "cm-test-ab12-git",
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
        ("/srv/a", repo_container_path("/srv/a")),
        ("/srv/b", repo_container_path("/srv/b")),
    ]


def test_a_repositorys_container_path_depends_on_its_host_path_alone() -> None:
    # Adding or removing another repository must never move this one: the index
    # stores container paths.
    alone = repo_mounts(["/srv/b"])[0].container_path
    assert repo_mounts(["/srv/a", "/srv/b", "/srv/c"])[1].container_path == alone
    assert alone.startswith("/repos/b-") and len(alone) == len("/repos/b-") + 10
    assert repo_container_path("/x/b") != alone  # same name, other path
    assert repo_container_path("/home/u/it's a repo").startswith("/repos/it_s_a_repo-")
    assert repo_container_path("/").startswith("/repos/root-")


@pytest.mark.parametrize("path", ["relative/dir", "/srv/a,b", "/srv/a=b"])
def test_repo_mounts_reject_paths_the_roots_variable_cannot_carry(path: str) -> None:
    with pytest.raises(UsageError):
        repo_mounts([path])


def test_roots_env_pairs_host_and_container_paths(images: dict[str, str]) -> None:
    inputs = RenderInputs(images=images, repos=repo_mounts(["/home/u/b", "/home/u/a"]))
    a, b = repo_container_path("/home/u/a"), repo_container_path("/home/u/b")
    assert inputs.roots_env == f"/home/u/a={a},/home/u/b={b}"


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
