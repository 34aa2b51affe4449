"""`codebase-mcp repo list | add | remove`: the repositories a pod remembers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from codebase_mcp.cli import cli
from codebase_mcp.pod.models import repo_container_path
from codebase_mcp.pod.repos import present_mounts
from codebase_mcp.pod.state import PodState, load_state, pod_dir, save_state


@pytest.fixture
def remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Pod `cm` as `up --repo A` left it; A still exists, gone/ does not."""
    monkeypatch.setenv("CODEBASE_MCP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CODEBASE_MCP_POD", "cm")
    a = tmp_path / "a"
    a.mkdir()
    gone = tmp_path / "gone"
    state = PodState(name="cm", profile="prod", port=8000, host_ip="127.0.0.1", images={},
                     repos=[str(a), str(gone)], podman_version="4.3.1")  # fmt: skip
    save_state(pod_dir("cm"), state)
    return a, gone


def repo(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["repo", *args])
    return result.exit_code, result.output


def test_list_says_which_are_missing(remembered: tuple[Path, Path]) -> None:
    a, gone = remembered
    code, out = repo("list")
    assert code == 0
    assert out.splitlines() == [f"ok       {a}", f"missing  {gone}"]
    code, out = repo("list", "--json")
    assert json.loads(out) == {"repos": [{"path": str(a), "exists": True},
                                         {"path": str(gone), "exists": False}]}  # fmt: skip


def test_add_remembers_an_existing_directory_once(
    remembered: tuple[Path, Path], tmp_path: Path
) -> None:
    new = tmp_path / "new"
    new.mkdir()
    code, out = repo("add", str(new))
    assert code == 0 and "`codebase-mcp up` mounts it" in out
    assert str(new) in load_state(pod_dir("cm")).repos  # type: ignore[union-attr]
    assert "already remembered" in repo("add", str(new))[1]
    code, out = repo("add", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in out


def test_remove_forgets_a_missing_repository(remembered: tuple[Path, Path]) -> None:
    a, gone = remembered
    code, out = repo("remove", str(gone))
    assert code == 0 and f"forgot {gone}" in out and "delete_project" in out
    assert load_state(pod_dir("cm")).repos == [str(a)]  # type: ignore[union-attr]


def test_remove_of_something_not_remembered_is_a_usage_error(
    remembered: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from codebase_mcp.cli import main

    with pytest.raises(SystemExit) as info:
        main(["repo", "remove", "/not/there"])
    assert info.value.code == 2
    assert "does not remember /not/there" in capsys.readouterr().err


def test_repo_commands_before_any_up_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codebase_mcp.cli import main

    monkeypatch.setenv("CODEBASE_MCP_DATA_DIR", str(tmp_path / "data"))
    assert "no repositories remembered" in repo("list")[1]
    with pytest.raises(SystemExit) as info:
        main(["repo", "add", str(tmp_path)])
    assert info.value.code == 30
    assert "codebase-mcp up --repo" in capsys.readouterr().err


def test_present_mounts_keep_each_repositorys_container_path() -> None:
    mounts, missing = present_mounts(["/a", "/b", "/c"], exists=lambda p: p != "/b")
    assert missing == ["/b"]
    assert [(m.host_path, m.container_path) for m in mounts] == [
        ("/a", repo_container_path("/a")),
        ("/c", repo_container_path("/c")),
    ]
