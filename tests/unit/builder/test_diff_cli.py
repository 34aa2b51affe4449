from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from codebase_mcp.builder.diff import compare
from codebase_mcp.builder.store import Store, writable_dir
from codebase_mcp.cli import cli, main
from codebase_mcp.errors import ConfigError


def lock_with(version: str, wheel_version: str) -> dict[str, object]:
    return {
        "source_date_epoch": 1,
        "images": {
            "server": {
                "debian": {"packages": [{"name": "libc6", "version": version, "sha256": "c" * 64}]},
                "python": {
                    "wheels": [{"name": "click", "version": wheel_version, "sha256": "d" * 64}],
                    "no_deps": [],
                    "tools": [],
                },
            }
        },
    }


def test_diff_names_changed_packages() -> None:
    changes = compare(lock_with("2.41-1", "8.1"), lock_with("2.41-2", "8.1"))
    assert [(c["image"], c["kind"], c["name"]) for c in changes] == [("server", "deb", "libc6")]
    assert changes[0]["a"].startswith("2.41-1") and changes[0]["b"].startswith("2.41-2")
    assert compare(lock_with("1", "1"), lock_with("1", "1")) == []


def test_cli_unknown_image_exits_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[3]
    monkeypatch.setenv("CODEBASE_MCP_ROOT", str(repo))
    with pytest.raises(SystemExit) as info:
        main(["image", "build", "no-such-image"])
    assert info.value.code == 11
    err = capsys.readouterr().err
    assert "error: no image named 'no-such-image'" in err and "postgres" in err


def test_cli_missing_lock_says_how_to_make_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "build" / "lock.json").unlink()
    with pytest.raises(SystemExit) as info:
        main(["image", "build", "--root", str(project), "demo"])
    assert info.value.code == 12
    assert "codebase-mcp image lock" in capsys.readouterr().err


def test_help_lists_every_image_command() -> None:
    out = CliRunner().invoke(cli, ["image", "--help"]).output
    for command in ("lock", "fetch", "build", "verify", "diff", "list"):
        assert command in out


def test_lock_check_passes_then_names_the_stale_entry(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "lock", "--check", "--root", str(project)]) is None
    toml = project / "images" / "demo" / "image.toml"
    toml.write_text(toml.read_text().replace('"python3"', '"python3", "git"'))
    with pytest.raises(SystemExit) as info:
        main(["image", "lock", "--check", "--root", str(project)])
    assert info.value.code == 13
    assert "images.demo.debian.packages" in capsys.readouterr().err


def test_store_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert writable_dir(tmp_path / "new" / "store")
    with pytest.raises(ConfigError, match="not writable") as info:
        Store(blocker / "store").ensure_writable()
    assert info.value.hint and "CODEBASE_MCP_STORE" in info.value.hint
