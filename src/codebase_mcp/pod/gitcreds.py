"""Git credentials for the podman pod: checked on the host, copied privately, mounted as files.

``up --git-ssh-key FILE --git-token-file FILE --git-known-hosts FILE`` reads each
file once (checked: a regular, readable, non-empty file; the key and the token
readable by their owner only, like the password and token files beside them),
copies it to ``pods/<name>/git/<kind>`` (mode 0400, directory 0500, owned by the
server's uid 10001 inside the container) and the spec bind-mounts that directory
read-only at ``/run/secrets/git``. The server's settings name the files; their
content is never in the spec, in argv, in the environment or in a log line.

Why not a podman secret with a ``secret:`` volume: ``kube play`` 4.3 (Debian 12)
panics on any secret volume (a nil secrets manager in
``kube.VolumeFromSecret``, reproduced on this project's hosts), and later
releases write a secret volume's files into an ordinary named volume, owned by
root and mode 0644: readable by every process in the container, and only with
that mode readable by uid 10001 at all. The copy here is the same kind of file
podman would write, but one only the server's user can read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from codebase_mcp.errors import CredentialFileError
from codebase_mcp.pod.models import GIT_CREDENTIALS, SERVER_UID, GitCredential
from codebase_mcp.proc import Runner

MAX_BYTES = 64 * 1024  # an SSH key is ~0.4-3 KiB, known_hosts a few lines, a token < 1 KiB
# Files that give access: refused when group or others may read them on the host.
PRIVATE: frozenset[str] = frozenset({"ssh-key", "token"})
# The `up` option that takes each file (error messages name what the user typed).
OPTIONS: dict[str, str] = {
    "known-hosts": "--git-known-hosts",
    "ssh-key": "--git-ssh-key",
    "token": "--git-token-file",
}


def credentials_dir(pod_directory: Path) -> Path:
    return pod_directory / "git"


def _fail(kind: str, path: Path, what: str, hint: str) -> CredentialFileError:
    return CredentialFileError(f"{OPTIONS[kind]} {path}: {what}", hint=hint)


def read_credential(kind: GitCredential, path: Path) -> bytes:
    """The bytes of one credential file, or CredentialFileError saying what is wrong.

    Never echoes the content: messages name the file, its mode and its size only.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _fail(
            kind, path, "no such file", "check the path (it is read on this host)"
        ) from None
    except OSError as exc:
        raise _fail(kind, path, f"cannot be read ({exc.strerror})", "check the path") from None
    if not stat.S_ISREG(info.st_mode):
        raise _fail(kind, path, "is not a regular file", "pass the file itself")
    mode = stat.S_IMODE(info.st_mode)
    if kind in PRIVATE and mode & 0o077:
        raise _fail(
            kind,
            path,
            f"is readable by group or others (mode {mode:04o})",
            f"make it private first: chmod 600 {path}",
        )
    if info.st_size == 0:
        raise _fail(kind, path, "is empty", "pass the file that holds the credential")
    if info.st_size > MAX_BYTES:
        raise _fail(
            kind, path, f"is {info.st_size} bytes, more than a {kind} file can be", "check the path"
        )
    try:
        data = path.read_bytes()
    except PermissionError:
        raise _fail(
            kind,
            path,
            f"cannot be read by uid {os.geteuid()}",
            "run as its owner, or fix its owner",
        ) from None
    _check_content(kind, path, data)
    return data


def _check_content(kind: GitCredential, path: Path, data: bytes) -> None:
    """Catch a file passed to the wrong option (a public key as the key, a key as a token)."""
    text = data.decode("utf-8", errors="replace")
    if kind == "ssh-key" and not (
        text.lstrip().startswith("-----BEGIN ") and "PRIVATE KEY-----" in text
    ):
        raise _fail(
            kind,
            path,
            "is not a PEM/OpenSSH private key (no '-----BEGIN ... PRIVATE KEY-----')",
            "pass the private key (e.g. ~/.ssh/id_ed25519), not the .pub file",
        )
    if kind == "token" and len(text.strip().splitlines()) != 1:
        raise _fail(kind, path, "must hold the token on one line", "write only the token in it")
    if kind == "token" and any(c.isspace() for c in text.strip()):
        raise _fail(kind, path, "holds whitespace inside the token", "write only the token in it")


def read_all(files: dict[str, str]) -> dict[GitCredential, bytes]:
    """Every given credential, checked before anything changes (sorted by kind)."""
    unknown = sorted(set(files) - set(GIT_CREDENTIALS))
    if unknown:
        raise CredentialFileError(f"unknown git credential kind(s): {', '.join(unknown)}")
    return {
        kind: read_credential(kind, Path(files[kind])) for kind in GIT_CREDENTIALS if kind in files
    }


def chown_argv(path: Path, *, rootless: bool) -> list[str]:
    """Give the copy to the server's uid (rootless: inside podman's user namespace)."""
    argv = ["chown", "-R", f"{SERVER_UID}:{SERVER_UID}", "--", str(path)]
    return ["podman", "unshare", *argv] if rootless else argv


def remove_argv(path: Path, *, rootless: bool) -> list[str]:
    """Rootless, the copy belongs to a sub-uid: only podman's user namespace may delete it."""
    argv = ["rm", "-rf", "--", str(path)]
    return ["podman", "unshare", *argv] if rootless else argv


def remove(runner: Runner, path: Path, *, rootless: bool) -> bool:
    """Delete a previous copy; True if there was one."""
    if not path.exists():
        return False
    runner.run(remove_argv(path, rootless=rootless), hint=f"remove {path} by hand")
    return True


def stage(
    runner: Runner, target: Path, contents: dict[GitCredential, bytes], *, rootless: bool
) -> Path:
    """Replace ``target`` with a fresh private copy of ``contents``; returns ``target``.

    A fresh copy each ``up``: a rotated key is picked up, a credential no longer
    given is gone.
    """
    remove(runner, target, rootless=rootless)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.mkdir(mode=0o700)
    for kind, data in contents.items():
        fd = os.open(target / kind, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    target.chmod(0o500)
    runner.run(
        chown_argv(target, rootless=rootless),
        hint="rootless podman needs sub-uids (/etc/subuid) for `podman unshare`",
    )
    return target
