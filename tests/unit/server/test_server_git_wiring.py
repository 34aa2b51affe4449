"""Git sources in the tools (no server, no database, no git): which arguments are
accepted, the project id a URL gets, what the answers show, and that a refused
source is refused before the database is touched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from codebase_mcp.errors import GitHostNotAllowed, InvalidGitSource, InvalidToolInput
from codebase_mcp.server import db, service
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.gitsource import GitConfig, GitSources, HostRule
from codebase_mcp.server.paths import PathMapper
from tests.unit.server.test_server_service import job_row

SHA = "a" * 40


@pytest.mark.parametrize(
    ("repo_path", "repo_url", "ref", "watch", "message"),
    [
        ("/src/r", "https://h/r.git", None, None, "not both"),
        (None, None, None, None, "no repository given"),
        ("  ", "", None, None, "no repository given"),
        ("/src/r", None, "main", None, "ref is only for repo_url"),
        (None, "https://h/r.git", "main", True, "watch=true needs a repo_path"),
    ],
)
def test_check_source_refuses(
    repo_path: str | None, repo_url: str | None, ref: str | None, watch: bool | None, message: str
) -> None:
    with pytest.raises(InvalidToolInput, match=message) as caught:
        service.check_source(repo_path, repo_url, ref, watch)
    assert caught.value.hint


@pytest.mark.parametrize(
    ("repo_path", "repo_url", "ref", "watch"),
    [
        ("/src/r", None, None, True),
        ("/src/r", None, None, False),
        (None, "https://h/r.git", None, None),
        (None, "https://h/r.git", "v1.2", False),  # watch=false on a git source: harmless
    ],
)
def test_check_source_accepts(
    repo_path: str | None, repo_url: str | None, ref: str | None, watch: bool | None
) -> None:
    service.check_source(repo_path, repo_url, ref, watch)


@pytest.mark.parametrize(
    ("url", "project_id"),
    [
        ("https://github.com/pallets/flask.git", "github.com:pallets:flask"),
        ("https://github.com/pallets/flask", "github.com:pallets:flask"),
        ("ssh://git@github.com/pallets/flask.git", "github.com:pallets:flask"),
        ("git@github.com:pallets/flask.git", "github.com:pallets:flask"),
        ("https://git.example.com:8443/a/b/c.git", "git.example.com:a:b:c"),
        ("https://h.example/team/my%20repo.git", "h.example:team:my-20repo"),
    ],
)
def test_git_project_id_is_a_stable_slug(url: str, project_id: str) -> None:
    assert service.git_project_id(url) == project_id
    assert service.check_project_id(service.git_project_id(url))


def test_git_project_id_of_a_long_url_fits_and_stays_distinct() -> None:
    a = service.git_project_id("https://h.example/" + "x" * 200 + "/a.git")
    b = service.git_project_id("https://h.example/" + "x" * 200 + "/b.git")
    assert a != b
    assert len(a) <= 128 and service.check_project_id(a)


def test_job_source_and_status_of_a_git_job() -> None:
    url = "https://h.example/org/r.git"
    row = job_row(
        repo_path=url, root_path=url, source_url=url, source_ref="refs/heads/main",
        source_commit=SHA, errors=[{"path": "bin/x", "error": "binary (NUL bytes)"}],
    )  # fmt: skip
    assert db.job_source(row) == db.GitSource(url, "refs/heads/main", SHA)
    dumped = service.job_status(row, PathMapper([])).model_dump(mode="json")
    assert (dumped["source_url"], dumped["source_ref"], dumped["source_commit"]) == (
        url,
        "refs/heads/main",
        SHA,
    )
    assert dumped["errors"] == [{"path": f"{url}/bin/x", "error": "binary (NUL bytes)"}]


def test_a_path_job_has_no_source_keys() -> None:
    row = job_row()
    assert db.job_source(row) is None
    dumped = service.job_status(row, PathMapper([])).model_dump(mode="json")
    assert not {"source_url", "source_ref", "source_commit"} & set(dumped)


def test_project_info_shows_the_last_indexed_commit() -> None:
    url = "https://h.example/org/r.git"
    when = datetime(2026, 12, 3, tzinfo=UTC)
    row: dict[str, Any] = {
        "id": "h.example:org:r", "embedding_model": "m", "embedding_dim": 3, "files": 2,
        "chunks": 4, "roots": [url], "created_at": when, "updated_at": when,
        "source_url": url, "source_ref": "refs/tags/v1", "source_commit": SHA,
        "source_indexed_at": when,
    }  # fmt: skip
    info = service.project_info(row, PathMapper([])).model_dump(mode="json")
    assert info["repositories"] == [url]
    assert (info["source_url"], info["source_commit"]) == (url, SHA)
    assert info["source_indexed_at"] == when.isoformat()


class _NoDatabase:
    async def pool(self) -> Any:
        raise AssertionError("the database was touched")


def _state(tmp_path: Path, hosts: tuple[HostRule, ...]) -> Any:
    state = SimpleNamespace(
        git=GitSources(GitConfig(cache_dir=tmp_path / "cache", hosts=hosts)),
        pool=_NoDatabase().pool,
        embedder=SimpleNamespace(model="m"),
        notify_workers=lambda: None,
    )
    return state


@pytest.mark.parametrize(
    ("url", "ref", "error"),
    [
        ("https://evil.example/org/r.git", None, GitHostNotAllowed),
        ("https://git.example/org/r.git", "bad..ref", InvalidGitSource),
        ("file:///etc", None, InvalidGitSource),
        ("https://u:pw@git.example/org/r.git", None, InvalidGitSource),
    ],
)
def test_refused_before_any_io(tmp_path: Path, url: str, ref: str | None, error: type) -> None:
    state = _state(tmp_path, (HostRule("git.example"),))
    with pytest.raises(error):
        asyncio.run(service.start_indexing(state, None, None, False, repo_url=url, ref=ref))
    assert not (tmp_path / "cache").exists()


def test_a_given_project_id_is_checked_before_resolving(tmp_path: Path) -> None:
    state = _state(tmp_path, (HostRule("git.example"),))
    with pytest.raises(InvalidToolInput, match="project_id"):
        asyncio.run(
            service.start_indexing(
                state, None, "bad/id", False, repo_url="https://git.example/o/r.git"
            )
        )
    assert not (tmp_path / "cache").exists()


def test_git_disabled_by_default() -> None:
    settings = ServerSettings()
    with pytest.raises(GitHostNotAllowed, match="disabled") as caught:
        GitSources(settings.git_config()).check("https://github.com/o/r.git")
    assert "CODEBASE_MCP_GIT_HOSTS" in (caught.value.hint or "")
