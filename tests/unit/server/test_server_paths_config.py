"""Host/container path mapping and the server settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codebase_mcp.errors import ConfigError, PathNotAllowed
from codebase_mcp.server.config import RootMapping, ServerSettings, parse_roots
from codebase_mcp.server.paths import PathMapper


def test_parse_roots() -> None:
    assert parse_roots(" /home/me/src=/repos/src , /srv/x/=/repos/x ") == [
        RootMapping(host="/home/me/src", container="/repos/src"),
        RootMapping(host="/srv/x", container="/repos/x"),
    ]
    assert parse_roots("") == []
    with pytest.raises(ConfigError, match="not HOST=CONTAINER"):
        parse_roots("/only/host")
    with pytest.raises(ConfigError, match="absolute"):
        parse_roots("rel=/x")


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBASE_MCP_PORT", "9123")
    monkeypatch.setenv("CODEBASE_MCP_HOST", "127.0.0.1")
    monkeypatch.setenv("CODEBASE_MCP_ROOTS", "/a=/b")
    settings = ServerSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 9123)
    assert settings.root_mappings() == [RootMapping(host="/a", container="/b")]
    monkeypatch.setenv("CODEBASE_MCP_ROOTS", "broken")
    with pytest.raises(ConfigError):
        ServerSettings()


def test_mapping_both_ways_longest_prefix_wins() -> None:
    mapper = PathMapper(parse_roots("/home/me=/repos/0,/home/me/work=/repos/1"))
    assert mapper.to_container("/home/me/work/app") == "/repos/1/app"
    assert mapper.to_container("/home/me/other") == "/repos/0/other"
    assert mapper.to_container("/home/me") == "/repos/0"
    assert mapper.to_host("/repos/1/app/x.py") == "/home/me/work/app/x.py"
    assert mapper.to_host("/repos/0") == "/home/me"


@pytest.mark.parametrize(
    "path", ["/etc", "/home/meother", "/home/me/../../etc", "/home/me/work/../../../etc"]
)
def test_outside_or_escaping_paths_are_refused(path: str) -> None:
    mapper = PathMapper(parse_roots("/home/me=/repos/0"))
    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        mapper.to_container(path)


def test_resolve_repo_checks_existence_directory_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "repo").mkdir(parents=True)
    (root / "file.txt").write_text("x")
    os.symlink("/etc", root / "escape")
    os.symlink(root / "repo", root / "inside_link")
    mapper = PathMapper([RootMapping(host="/h", container=str(root))])
    resolved = mapper.resolve_repo("/h/repo")
    assert resolved.host_path == "/h/repo"
    assert resolved.container_path == str((root / "repo").resolve())
    assert mapper.resolve_repo("/h/inside_link").container_path == str((root / "repo").resolve())
    with pytest.raises(PathNotAllowed, match="does not exist"):
        mapper.resolve_repo("/h/missing")
    with pytest.raises(PathNotAllowed, match="not a directory"):
        mapper.resolve_repo("/h/file.txt")
    with pytest.raises(PathNotAllowed, match="through a symlink"):
        mapper.resolve_repo("/h/escape")


def test_without_roots_paths_map_to_themselves(tmp_path: Path) -> None:
    mapper = PathMapper([])
    assert mapper.resolve_repo(str(tmp_path)).container_path == str(tmp_path.resolve())
    assert mapper.to_host("/x/y") == "/x/y"
    with pytest.raises(PathNotAllowed, match="not absolute"):
        mapper.to_container("relative")
