"""Git credential files for the podman pod: the checks, the private copy, the commands."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from codebase_mcp.errors import CredentialFileError
from codebase_mcp.pod import gitcreds
from codebase_mcp.proc import Result

# Made-up material: shaped like the real thing, worthless.
KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nbm90LWEta2V5\n-----END OPENSSH PRIVATE KEY-----\n"
KNOWN_HOSTS = b"git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINotARealKeyAtAll\n"
TOKEN = b"not-a-real-token-0123456789\n"


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_good_files_are_read(tmp_path: Path) -> None:
    files = {
        "ssh-key": str(write(tmp_path / "id", KEY)),
        "token": str(write(tmp_path / "tok", TOKEN, 0o400)),
        # known_hosts is public: any mode
        "known-hosts": str(write(tmp_path / "kh", KNOWN_HOSTS, 0o644)),
    }
    assert gitcreds.read_all(files) == {"known-hosts": KNOWN_HOSTS, "ssh-key": KEY, "token": TOKEN}


@pytest.mark.parametrize(("kind", "data", "mode", "message"), [
    ("ssh-key", KEY, 0o644, r"--git-ssh-key .*readable by group or others \(mode 0644\)"),
    ("token", TOKEN, 0o640, r"--git-token-file .*mode 0640"),
    ("ssh-key", b"", 0o600, "is empty"),
    ("ssh-key", b"ssh-ed25519 AAAA... user@host\n", 0o600, "not a PEM/OpenSSH private key"),
    ("token", b"one\ntwo\n", 0o600, "on one line"),
    ("token", b"Bearer abc\n", 0o600, "whitespace inside"),
    ("known-hosts", b"x" * (gitcreds.MAX_BYTES + 1), 0o644, "bytes, more than"),
])  # fmt: skip
def test_bad_files_are_refused_naming_the_option_and_the_fix(
    tmp_path: Path, kind: str, data: bytes, mode: int, message: str
) -> None:
    path = write(tmp_path / "f", data, mode)
    with pytest.raises(CredentialFileError, match=message) as caught:
        gitcreds.read_all({kind: str(path)})
    assert caught.value.exit_code == 32
    # never the content, whatever the failure
    text = caught.value.message + (caught.value.hint or "")
    assert "bm90LWEta2V5" not in text and "not-a-real-token" not in text
    if "readable by group" in caught.value.message:
        assert caught.value.hint == f"make it private first: chmod 600 {path}"


def test_missing_and_non_regular_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match=r"--git-known-hosts .*/nope: no such file"):
        gitcreds.read_all({"known-hosts": str(tmp_path / "nope")})
    with pytest.raises(CredentialFileError, match="not a regular file"):
        gitcreds.read_all({"token": str(tmp_path)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "tok", TOKEN, 0o000)
    with pytest.raises(CredentialFileError, match="cannot be read by uid"):
        gitcreds.read_all({"token": str(path)})


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(CredentialFileError, match="unknown git credential kind"):
        gitcreds.read_all({"password": "/x"})


def test_commands_for_root_and_rootless(tmp_path: Path) -> None:
    path = tmp_path / "git"
    assert gitcreds.chown_argv(path, rootless=False) == [
        "chown", "-R", "10001:10001", "--", str(path)
    ]  # fmt: skip
    assert gitcreds.chown_argv(path, rootless=True)[:3] == ["podman", "unshare", "chown"]
    assert gitcreds.remove_argv(path, rootless=True) == [
        "podman", "unshare", "rm", "-rf", "--", str(path)
    ]  # fmt: skip


def real_rm(argv: tuple[str, ...], _stdin: str | None) -> Result:
    """What `rm -rf` does (the 0500 directory made writable first, as root would not need)."""
    target = Path(argv[-1])
    target.chmod(0o700)
    shutil.rmtree(target)
    return Result(argv, 0)


@pytest.mark.parametrize("rootless", [False, True])
def test_stage_writes_a_private_copy_and_replaces_the_last_one(
    fake_runner, tmp_path: Path, rootless: bool
) -> None:  # type: ignore[no-untyped-def]
    prefix = ("podman", "unshare") if rootless else ()
    fake_runner.on([*prefix, "rm", "-rf", "--"], real_rm)
    target = tmp_path / "pod" / "git"
    gitcreds.stage(fake_runner, target, {"ssh-key": KEY, "token": TOKEN}, rootless=rootless)
    assert stat.S_IMODE(target.stat().st_mode) == 0o500
    for name, data in (("ssh-key", KEY), ("token", TOKEN)):
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o400
        assert (target / name).read_bytes() == data
    assert fake_runner.calls[-1] == (*prefix, "chown", "-R", "10001:10001", "--", str(target))
    # nothing secret went through a command line or stdin
    assert all(i is None for i in fake_runner.inputs)
    assert not any(b"bm90LWEta2V5".decode() in " ".join(c) for c in fake_runner.calls)
    # the next up: a rotated key replaces the old one, a dropped token is gone
    rotated = KEY.replace(b"bm90LWEta2V5", b"cm90YXRlZA==")
    gitcreds.stage(fake_runner, target, {"ssh-key": rotated}, rootless=rootless)
    assert sorted(p.name for p in target.iterdir()) == ["ssh-key"]
    assert (target / "ssh-key").read_bytes() == rotated
    assert fake_runner.called(*prefix, "rm", "-rf", "--") == [
        (*prefix, "rm", "-rf", "--", str(target))
    ]
    assert gitcreds.remove(fake_runner, target, rootless=rootless) is True
    assert not target.exists()
    assert gitcreds.remove(fake_runner, target, rootless=rootless) is False
