"""Provenance labels come from committed inputs, never from the clone's configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, source_url

REPO = Path(__file__).resolve().parents[3]


def test_source_url_is_the_declared_one() -> None:
    urls = {"Homepage": "https://h", "Repository": "https://r", "Source": "https://s"}
    assert source_url({"project": {"urls": urls}}) == "https://s"
    assert source_url({"project": {"urls": {"Repository": "https://r"}}}) == "https://r"
    assert source_url({"project": {}}) == ""


def clone(tmp_path: Path, name: str, origin: str, *extra: str) -> Path:
    target = tmp_path / name
    subprocess.run(["git", "clone", "--quiet", *extra, f"file://{REPO}", str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "remote", "set-url", "origin", origin], check=True)
    return target


def test_two_clones_with_different_remotes_plan_the_same_images(tmp_path: Path) -> None:
    https = clone(tmp_path, "https", "https://example.org/acme/codebase-mcp.git")
    ssh = clone(tmp_path, "ssh", "git@example.org:fork/codebase-mcp.git")
    for name in ("postgres", "server"):
        assert Builder.create(https).plan(name)[2].ref == Builder.create(ssh).plan(name)[2].ref


def test_a_shallow_clone_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shallow = clone(tmp_path, "shallow", "https://example.org/x.git", "--depth", "1")
    Builder.create(shallow).plan("postgres")
    assert "shallow clone" in capsys.readouterr().err
