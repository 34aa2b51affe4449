"""Git commands as data: the environment, the argv lists, and reading their answers.

Pure functions (the token file is read by the caller). Every git call gets:

- a hermetic configuration: no system or global config, no credential helpers,
  no hooks, no templates; only the allowed protocols (``protocol.allow=never``
  plus ``protocol.<p>.allow=always``, and ``GIT_ALLOW_PROTOCOL``, which git
  itself enforces, also on redirects and submodules);
- no prompts: ``GIT_TERMINAL_PROMPT=0``, no askpass, ssh in ``BatchMode``;
- credentials only from mounted files: ``GIT_SSH_COMMAND`` with ``-i KEY -o
  IdentitiesOnly=yes`` and a known-hosts file, or a token sent as an
  ``http.<origin>.extraHeader`` passed in the child's environment
  (``GIT_CONFIG_COUNT``), never on the argv and never in a URL.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codebase_mcp.errors import GitAuthFailed, GitRefNotFound, GitSourceError, GitUnreachable
from codebase_mcp.server.gitsource.urls import HostRule, RefSpec, Remote, redact

# Under the mirror's refs/: where fetched refs and pinned commits live.
NAMESPACE = "refs/codebase-mcp"


@dataclass(frozen=True)
class GitConfig:
    """Everything the git-source layer needs, as plain data (built from ServerSettings)."""

    cache_dir: Path
    hosts: tuple[HostRule, ...] = ()
    protocols: tuple[str, ...] = ("https", "ssh")
    timeout: float = 300.0
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token_file: Path | None = None
    token_scheme: Literal["basic", "bearer"] = "basic"  # noqa: S105 - not a secret
    token_user: str = "x-access-token"  # noqa: S105 - a user name
    low_speed_time: int = 60  # abort an http transfer slower than 1 KB/s for this long


def auth_header(token: str, config: GitConfig) -> str:
    if config.token_scheme == "bearer":  # noqa: S105 - a scheme name
        return f"Authorization: Bearer {token}"
    pair = f"{config.token_user}:{token}".encode()
    return f"Authorization: Basic {base64.b64encode(pair).decode()}"


def secrets_of(token: str | None, config: GitConfig) -> tuple[str, ...]:
    """The strings to scrub from everything shown: the token and its header forms."""
    if not token:
        return ()
    pair = f"{config.token_user}:{token}".encode()
    return (token, base64.b64encode(pair).decode())


def ssh_command(config: GitConfig) -> str:
    """``GIT_SSH_COMMAND``: no user config, no prompts, strict host keys, the mounted key."""
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    argv += ["-o", "ConnectTimeout=20"]
    if config.known_hosts_file is not None:
        argv += ["-o", f"UserKnownHostsFile={config.known_hosts_file}"]
    if config.ssh_key_file is not None:
        argv += ["-i", str(config.ssh_key_file), "-o", "IdentitiesOnly=yes"]
    return shlex.join(argv)


# The hermetic configuration every call gets (as command-scope config in the
# environment, GIT_CONFIG_COUNT, so the echoed argv stays the command itself).
HERMETIC_CONFIG: tuple[tuple[str, str], ...] = (
    ("protocol.allow", "never"),
    ("credential.helper", ""),
    ("core.askPass", ""),
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("init.templateDir", ""),
    ("http.followRedirects", "initial"),
    ("gc.autoDetach", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("submodule.recurse", "false"),
)


def config_pairs(
    config: GitConfig,
    *,
    git_dir: Path | None = None,
    remote: Remote | None = None,
    token: str | None = None,
) -> list[tuple[str, str]]:
    """The ``-c`` settings of one call: hermetic, allowed protocols, safe.directory, token."""
    pairs = list(HERMETIC_CONFIG)
    pairs += [(f"protocol.{p}.allow", "always") for p in config.protocols]
    if git_dir is not None:
        # The cache may belong to another uid (a volume): trust exactly this repository.
        pairs.append(("safe.directory", str(git_dir)))
    if remote is not None and token and remote.scheme in ("https", "http"):
        # Scoped to the remote's origin: never sent to another host.
        pairs.append((f"http.{remote.origin}.extraHeader", auth_header(token, config)))
    return pairs


def environment(
    config: GitConfig,
    environ: Mapping[str, str],
    *,
    git_dir: Path | None = None,
    remote: Remote | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """The child's whole environment (``inherit_env=False``): nothing else leaks in.

    It may hold the token header: the runner never shows the environment.
    """
    env = {
        "PATH": environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": environ.get("HOME", str(config.cache_dir)),
        "LC_ALL": "C",
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": ":".join(config.protocols),
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_SSH_COMMAND": ssh_command(config),
        "GIT_SSH_VARIANT": "ssh",
        "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
        "GIT_HTTP_LOW_SPEED_TIME": str(config.low_speed_time),
    }
    if "TMPDIR" in environ:
        env["TMPDIR"] = environ["TMPDIR"]
    pairs = config_pairs(config, git_dir=git_dir, remote=remote, token=token)
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def git_argv(git_dir: Path | None = None) -> list[str]:
    return ["git"] if git_dir is None else ["git", "--git-dir", str(git_dir)]


# --- remote calls ---------------------------------------------------------------
def ls_remote(config: GitConfig, remote: Remote, ref: RefSpec) -> list[str]:
    argv = [*git_argv(), "ls-remote"]
    if ref.kind == "head":
        argv.append("--symref")
    return [*argv, "--", remote.url, *ref.patterns]


def fetch_ref(config: GitConfig, mirror: Path, remote: Remote, ref_name: str) -> list[str]:
    """Fetch one ref's tip (depth 1: the tree is what we index) into our namespace."""
    return [*_fetch(config, mirror), "--", remote.url, f"+{ref_name}:{tracking_ref(ref_name)}"]


def fetch_commit(config: GitConfig, mirror: Path, remote: Remote, commit: str) -> list[str]:
    """Fetch a commit by id (protocol v2 servers allow it; older ones may refuse)."""
    return [*_fetch(config, mirror), "--", remote.url, commit]


def fetch_all(config: GitConfig, repo: Path, remote: Remote) -> list[str]:
    """Every branch and tag with history (into a scratch repository): finds an abbreviated sha."""
    return [
        *_fetch(config, repo, depth=None),
        "--",
        remote.url,
        f"+refs/heads/*:{NAMESPACE}/all/heads/*",
        f"+refs/tags/*:{NAMESPACE}/all/tags/*",
    ]


def _fetch(config: GitConfig, mirror: Path, depth: int | None = 1) -> list[str]:
    argv = [*git_argv(mirror), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
    argv += ["--no-recurse-submodules"]
    if depth is not None:
        argv.append(f"--depth={depth}")
    return argv


def tracking_ref(ref_name: str) -> str:
    """Where the mirror keeps the last tip fetched of a ref (refs/heads/main ->
    refs/codebase-mcp/remote/heads/main)."""
    return f"{NAMESPACE}/remote/{ref_name.removeprefix('refs/')}"


def pin_ref(commit: str) -> str:
    """One ref per fetched commit: keeps it (and its tree) alive and among the fetch's haves."""
    return f"{NAMESPACE}/commits/{commit}"


# --- local calls ----------------------------------------------------------------
def init_bare(config: GitConfig, path: Path) -> list[str]:
    return [*git_argv(), "init", "--quiet", "--bare", "--template=", str(path)]


def has_commit(config: GitConfig, mirror: Path, commit: str) -> list[str]:
    return [*git_argv(mirror), "cat-file", "-e", f"{commit}^{{commit}}"]


def peel(config: GitConfig, mirror: Path, name: str) -> list[str]:
    """The full commit id ``name`` (a ref or abbreviated sha) points to, or exit 1."""
    return [*git_argv(mirror), "rev-parse", "--verify", "--quiet", "--end-of-options",
            f"{name}^{{commit}}"]  # fmt: skip


def update_ref(config: GitConfig, mirror: Path, ref: str, commit: str) -> list[str]:
    return [*git_argv(mirror), "update-ref", ref, commit]


def checkout(config: GitConfig, mirror: Path, tree: Path, commit: str) -> list[str]:
    """Write ``commit``'s files into the empty directory ``tree`` (with GIT_INDEX_FILE set).

    ``read-tree -u`` applies the same rules as a checkout (executable bits,
    symlinks, ``.gitattributes`` eol conversion) under the hermetic config, so
    every replica gets the same bytes; the mirror's HEAD is untouched.
    """
    return [*git_argv(mirror), "--work-tree", str(tree), "read-tree", "--reset", "-u",
            commit]  # fmt: skip


def diff(config: GitConfig, mirror: Path, old: str, new: str) -> list[str]:
    return [*git_argv(mirror), "diff-tree", "-r", "-z", "--no-renames", "--name-status",
            old, new]  # fmt: skip


# --- reading answers ------------------------------------------------------------
@dataclass(frozen=True)
class RemoteRefs:
    """``git ls-remote`` output: ref name -> object id, peeled tags, HEAD's target."""

    refs: Mapping[str, str]
    head_target: str | None = None


def parse_ls_remote(stdout: str) -> RemoteRefs:
    refs: dict[str, str] = {}
    head: str | None = None
    for line in stdout.splitlines():
        left, sep, name = line.partition("\t")
        if not sep:
            continue
        if left.startswith("ref: "):
            if name == "HEAD":
                head = left.removeprefix("ref: ")
            continue
        refs[name] = left.strip()
    return RemoteRefs(refs, head)


@dataclass(frozen=True)
class Pick:
    """What a ref resolved to on the remote: the full ref name and its commit."""

    ref_name: str
    commit: str


def pick_ref(remote: Remote, ref: RefSpec, answer: RemoteRefs) -> Pick | None:
    """The one ref ``ref`` names, peeled to its commit; None: no such name on the remote."""
    refs = answer.refs
    if ref.kind == "head":
        if "HEAD" not in refs:
            raise GitRefNotFound(
                f"{remote} has no default branch (HEAD)", hint="pass ref= a branch, tag or commit"
            )
        name = answer.head_target or "HEAD"
        return Pick(name, refs["HEAD"])
    candidates = [p for p in ref.patterns if not p.endswith("^{}") and p in refs]
    if len(candidates) > 1:
        raise GitRefNotFound(
            f"ref {ref.text!r} of {remote} is both a branch and a tag",
            hint=f"write refs/heads/{ref.text} or refs/tags/{ref.text}",
        )
    if not candidates:
        return None
    name = candidates[0]
    return Pick(name, refs.get(name + "^{}", refs[name]))


@dataclass(frozen=True)
class Change:
    """One path that differs between two commits: A(dded), D(eleted), M(odified), T(ype)."""

    status: str
    path: str


def parse_diff(stdout: str) -> list[Change]:
    fields = stdout.split("\0")
    changes: list[Change] = []
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if status and path:
            changes.append(Change(status[0], path))
    return changes


# --- turning failures into domain errors ---------------------------------------
_AUTH = (
    "could not read username",
    "could not read password",
    "authentication failed",
    "terminal prompts disabled",
    "returned error: 401",
    "returned error: 403",
    "permission denied (publickey",
    "permission denied, please try again",
    "invalid username or password",
    "access denied",  # but not git daemon's "access denied or repository not exported"
)
_HOST_KEY = ("host key verification failed", "remote host identification has changed")
_NOT_FOUND_REPO = (
    "repository not found",
    "not found",
    "does not appear to be a git repository",
    "access denied or repository not exported",
    "no such repository",
    "returned error: 404",
)
_UNREACHABLE = (
    "could not resolve host",
    "unable to look up",
    "name or service not known",
    "temporary failure in name resolution",
    "connection refused",
    "unable to connect",
    "failed to connect",
    "connection timed out",
    "operation timed out",
    "timed out",
    "network is unreachable",
    "no route to host",
    "connection reset",
    "could not read from remote repository",
    "the remote end hung up",
    "ssl certificate problem",
    "empty reply from server",
    "operation too slow",
)
_UNKNOWN_OBJECT = ("not our ref", "couldn't find remote ref", "no such remote ref", "bad object")


def classify(
    remote: Remote, stderr: str, what: str, config: GitConfig, secrets: tuple[str, ...] = ()
) -> GitSourceError:
    """The domain error for a failed remote git call, with what to do."""
    text = redact(stderr, secrets).strip()
    low = text.lower()
    tail = "; ".join(line.strip() for line in text.splitlines()[-3:] if line.strip())
    detail = f": {tail}" if tail else ""
    if any(s in low for s in _HOST_KEY):
        return GitAuthFailed(
            f"{what} {remote}: the ssh host key is not known or has changed{detail}",
            hint="mount a known_hosts file with the server's key "
            "(CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE)",
        )
    if "access denied or repository not exported" not in low and any(s in low for s in _AUTH):
        return GitAuthFailed(
            f"{what} {remote}: the server refused the credentials{detail}",
            hint=_auth_hint(remote, config),
        )
    if any(s in low for s in _UNKNOWN_OBJECT):
        return GitRefNotFound(
            f"{what} {remote}: the server does not have it{detail}",
            hint="check the branch, tag or commit (`git ls-remote URL` lists them)",
        )
    if any(s in low for s in _NOT_FOUND_REPO):
        return GitUnreachable(
            f"{what} {remote}: no such repository{detail}",
            hint="check the URL; a private repository also answers 'not found' without "
            "credentials: " + _auth_hint(remote, config),
        )
    if any(s in low for s in _UNREACHABLE):
        return GitUnreachable(
            f"{what} {remote}: the server cannot be reached{detail}",
            hint="check the host name and port, and that this server's network reaches it",
        )
    return GitSourceError(
        f"{what} {remote} failed{detail}", hint="run the same git command by hand with -v to see it"
    )


def _auth_hint(remote: Remote, config: GitConfig) -> str:
    if remote.scheme == "ssh":
        if config.ssh_key_file is None:
            return "no SSH key is configured: mount one and set CODEBASE_MCP_GIT_SSH_KEY_FILE"
        return f"check that the key in {config.ssh_key_file} may read the repository"
    if remote.scheme in ("https", "http"):
        if config.token_file is None:
            return "no token is configured: mount one and set CODEBASE_MCP_GIT_TOKEN_FILE"
        return (
            f"check the token in {config.token_file} (read access to the repository) and "
            f"CODEBASE_MCP_GIT_TOKEN_SCHEME ({config.token_scheme})"
        )
    return "git:// has no authentication; use https:// or ssh:// for private repositories"
