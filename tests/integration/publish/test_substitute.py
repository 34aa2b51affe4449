"""Substitution for real: publish from this storage to a local registry, then build into
an empty storage with --substitute: the same image, pulled by its pinned digest, and no
layer made (no buildah, no mmdebstrap, no sandbox)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.builder.substitute import Substituter, load_records
from codebase_mcp.errors import SubstituteMismatch
from codebase_mcp.proc import Runner
from tests.integration.publish.cli import REPO, cli
from tests.integration.publish.registry import Registry, drop_storage, start_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def empty_storage(tmp_path: Path) -> Iterator[tuple[str, ...]]:
    runroot = Path(f"/tmp/cms-{secrets.token_hex(4)}")  # podman wants it short
    args = ("--root", str(tmp_path / "storage"), "--runroot", str(runroot))
    yield args
    drop_storage(tmp_path / "storage", runroot)


def published(registry: Registry, records: Path) -> dict[str, object]:
    result = cli(
        "image", "publish", f"{registry.host}/subs", "server", "--no-tls-verify", "--json",
        "--records", str(records),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (image,) = json.loads(result.stdout)["images"]
    return dict(image)


def builder(storage: tuple[str, ...], substituter: Substituter | None) -> Builder:
    return Builder(
        root=REPO, store=Store(default_store()), runner=Runner(), storage_args=storage,
        substituter=substituter,
    )  # fmt: skip


def test_substitute_into_an_empty_storage_gives_the_same_image_without_building(
    registry: Registry, tmp_path: Path, empty_storage: tuple[str, ...]
) -> None:
    records = tmp_path / "substitutes.json"
    image = published(registry, records)
    local = Builder.create(REPO).build(["server"])[0]
    assert image["source"] == local.ref

    b = builder(empty_storage, Substituter(f"{registry.host}/subs", records, tls_verify=False))
    started = time.monotonic()
    (result,) = b.build(["server"])
    seconds = time.monotonic() - started
    assert result.substituted and not result.cached
    assert result.ref == local.ref
    assert result.image_id == local.image_id  # bit for bit the published build
    tools = {call[0] for call in b.runner.calls}
    assert tools <= {"git", "podman", "skopeo"}, tools  # nothing was built
    pulls = [c for c in b.runner.calls if c[0] == "skopeo"]
    assert len(pulls) == 1 and f"@{image['digest']}" in pulls[0][-2]
    print(f"substituted in {seconds:.1f}s")

    # Cached from now on, in that storage too.
    (again,) = builder(empty_storage, None).build(["server"])
    assert again.cached and again.image_id == local.image_id


def test_a_record_pinning_another_image_is_refused_and_nothing_kept(
    registry: Registry, tmp_path: Path, empty_storage: tuple[str, ...]
) -> None:
    records = tmp_path / "substitutes.json"
    published(registry, records)
    # The record is changed to pin another image ID for these inputs (a tampered record,
    # or a registry serving something else under the digest's name cannot pass either).
    data = json.loads(records.read_text())
    for pins in data["images"].values():
        for pin in pins.values():
            pin["image_id"] = "sha256:" + "0" * 64
    records.write_text(json.dumps(data))
    b = builder(empty_storage, Substituter(f"{registry.host}/subs", records, tls_verify=False))
    with pytest.raises(SubstituteMismatch, match="not used"):
        b.build(["server"])
    assert not b.image_exists(b.plan("server")[2].ref)


def test_no_record_or_no_registry_means_building_here(tmp_path: Path) -> None:
    records = tmp_path / "none.json"
    assert load_records(records) == {}
    b = builder((), Substituter("127.0.0.1:9/nothing", records, tls_verify=False))
    (result,) = b.build(["server"])  # built (or cached) here, as without --substitute
    assert not result.substituted
