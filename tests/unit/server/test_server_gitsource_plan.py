"""Git sources: the planned argv and environment, reading git's answers, errors, settings,
and the cache's calls against a fake runner (nothing runs git here)."""

from __future__ import annotations

import base64
import fcntl
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codebase_mcp.errors import (
    CommandFailed,
    ConfigError,
    GitAuthFailed,
    GitHostNotAllowed,
    GitRefNotFound,
    GitSourceError,
    GitUnreachable,
    InvalidGitSource,
)
from codebase_mcp.proc import Result, Runner
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.gitsource import plan
from codebase_mcp.server.gitsource.cache import GitSources
from codebase_mcp.server.gitsource.plan import Change, GitConfig
from codebase_mcp.server.gitsource.urls import HostRule, parse_ref, parse_remote

TOKEN = "tok-1234567890-SECRET"
SHA_A = "a" * 40
SHA_B = "b" * 40
REMOTE = parse_remote("https://git.example.com/team/repo.git")


def config(tmp_path: Path, **kw: object) -> GitConfig:
    base: dict[str, object] = {
        "cache_dir": tmp_path / "cache",
        "hosts": (HostRule("git.example.com"),),
        "protocols": ("https", "ssh"),
        "timeout": 30.0,
    }
    base.update(kw)
    return GitConfig(**base)  # type: ignore[arg-type]


def config_items(env: Mapping[str, str]) -> dict[str, str]:
    count = int(env["GIT_CONFIG_COUNT"])
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(count)}


# --- environment and argv --------------------------------------------------------
def test_environment_is_hermetic_and_never_prompts(tmp_path: Path) -> None:
    environ = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/srv",
        "GIT_TRACE_CURL": "1",
        "GIT_ASKPASS": "/usr/bin/ssh-askpass",
        "SSH_ASKPASS": "/usr/bin/ssh-askpass",
        "SSH_AUTH_SOCK": "/run/agent",
        "GIT_DIR": "/elsewhere",
        "GIT_CONFIG_PARAMETERS": "'core.sshCommand'='evil'",
        "DATABASE_PASSWORD": "pg-secret",
    }
    env = plan.environment(config(tmp_path), environ)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ALLOW_PROTOCOL"] == "https:ssh"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    for leaked in ("GIT_TRACE_CURL", "GIT_ASKPASS", "SSH_ASKPASS", "SSH_AUTH_SOCK", "GIT_DIR"):
        assert leaked not in env
    assert "GIT_CONFIG_PARAMETERS" not in env and "pg-secret" not in str(env)
    items = config_items(env)
    assert items["protocol.allow"] == "never"
    assert items["protocol.https.allow"] == items["protocol.ssh.allow"] == "always"
    assert "protocol.file.allow" not in items and "protocol.git.allow" not in items
    assert items["credential.helper"] == "" and items["core.hooksPath"] == "/dev/null"
    assert not any("extraheader" in k.lower() for k in items)


def test_the_token_goes_to_the_environment_scoped_to_the_origin(tmp_path: Path) -> None:
    env = plan.environment(config(tmp_path), {}, remote=REMOTE, token=TOKEN)
    items = config_items(env)
    header = items["http.https://git.example.com/.extraHeader"]
    expected = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert header == f"Authorization: Basic {expected}"
    bearer = config_items(
        plan.environment(config(tmp_path, token_scheme="bearer"), {}, remote=REMOTE, token=TOKEN)
    )
    assert bearer["http.https://git.example.com/.extraHeader"] == f"Authorization: Bearer {TOKEN}"
    ssh = parse_remote("ssh://git@git.example.com/team/repo.git")
    assert TOKEN not in str(plan.environment(config(tmp_path), {}, remote=ssh, token=TOKEN))
    assert plan.secrets_of(TOKEN, config(tmp_path)) == (TOKEN, expected)


def test_ssh_command_uses_the_mounted_key_and_known_hosts(tmp_path: Path) -> None:
    key = tmp_path / "my keys" / "id_ed25519"
    known = tmp_path / "known_hosts"
    command = plan.ssh_command(config(tmp_path, ssh_key_file=key, known_hosts_file=known))
    argv = shlex.split(command)
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    assert ["-i", str(key)] == argv[argv.index("-i") : argv.index("-i") + 2]
    for option in (
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        f"UserKnownHostsFile={known}",
    ):
        assert option in argv
    assert "-i" not in shlex.split(plan.ssh_command(config(tmp_path)))


def test_remote_argv_ends_options_before_the_url(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    mirror = tmp_path / "m.git"
    argvs = [
        plan.ls_remote(cfg, REMOTE, parse_ref("main")),
        plan.ls_remote(cfg, REMOTE, parse_ref(None)),
        plan.fetch_ref(cfg, mirror, REMOTE, "refs/heads/main"),
        plan.fetch_commit(cfg, mirror, REMOTE, SHA_A),
        plan.fetch_all(cfg, mirror, REMOTE),
    ]
    for argv in argvs:
        assert argv[0] == "git"
        cut = argv.index("--")
        assert argv[cut + 1] == REMOTE.url
        sub = 3 if argv[1] == "--git-dir" else 1
        assert all(a.startswith("-") for a in argv[sub + 1 : cut])  # options only, then --
    assert plan.ls_remote(cfg, REMOTE, parse_ref(None))[1:] == [
        "ls-remote",
        "--symref",
        "--",
        REMOTE.url,
        "HEAD",
    ]
    assert plan.fetch_ref(cfg, mirror, REMOTE, "refs/tags/v1") == [
        "git",
        "--git-dir",
        str(mirror),
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        "--depth=1",
        "--",
        REMOTE.url,
        "+refs/tags/v1:refs/codebase-mcp/remote/tags/v1",
    ]
    assert "--depth=1" not in plan.fetch_all(cfg, mirror, REMOTE)  # history: short shas


# --- reading answers --------------------------------------------------------------
LS_REMOTE = (
    f"ref: refs/heads/main\tHEAD\n{SHA_A}\tHEAD\n{SHA_A}\trefs/heads/main\n"
    f"{'c' * 40}\trefs/tags/v1\n{SHA_B}\trefs/tags/v1^{{}}\n{SHA_B}\trefs/heads/both\n"
    f"{SHA_A}\trefs/tags/both\n"
)


def test_pick_ref() -> None:
    answer = plan.parse_ls_remote(LS_REMOTE)
    assert answer.head_target == "refs/heads/main"
    assert plan.pick_ref(REMOTE, parse_ref(None), answer) == plan.Pick("refs/heads/main", SHA_A)
    assert plan.pick_ref(REMOTE, parse_ref("main"), answer) == plan.Pick("refs/heads/main", SHA_A)
    # an annotated tag is peeled to its commit
    assert plan.pick_ref(REMOTE, parse_ref("v1"), answer) == plan.Pick("refs/tags/v1", SHA_B)
    assert plan.pick_ref(REMOTE, parse_ref("nope"), answer) is None
    with pytest.raises(GitRefNotFound, match="both a branch and a tag") as info:
        plan.pick_ref(REMOTE, parse_ref("both"), answer)
    assert "refs/heads/both" in (info.value.hint or "")
    assert plan.pick_ref(REMOTE, parse_ref("refs/tags/both"), answer) == plan.Pick(
        "refs/tags/both", SHA_A
    )
    with pytest.raises(GitRefNotFound, match="no default branch"):
        plan.pick_ref(REMOTE, parse_ref(None), plan.parse_ls_remote(""))


def test_parse_diff() -> None:
    out = "M\0src/a.py\0A\0new file.txt\0D\0gone\0T\0link\0"
    assert plan.parse_diff(out) == [
        Change("M", "src/a.py"),
        Change("A", "new file.txt"),
        Change("D", "gone"),
        Change("T", "link"),
    ]
    assert plan.parse_diff("") == []


AUTH, UNREACHABLE, NO_REF = GitAuthFailed, GitUnreachable, GitRefNotFound


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("fatal: could not read Username for 'https://h': terminal prompts disabled", AUTH),
        ("fatal: Authentication failed for 'https://h/team/repo.git/'", AUTH),
        ("fatal: unable to access '...': The requested URL returned error: 403", AUTH),
        ("git@host: Permission denied (publickey).\nfatal: Could not read from remote", AUTH),
        ("Host key verification failed.\nfatal: Could not read from remote repository.", AUTH),
        ("fatal: unable to access '...': Could not resolve host: h", UNREACHABLE),
        ("fatal: unable to connect to 127.0.0.1:\nerrno=Connection refused", UNREACHABLE),
        ("fatal: unable to access '...': Failed to connect to h port 1", UNREACHABLE),
        ("remote: Repository not found.\nfatal: repository '...' not found", UNREACHABLE),
        ("fatal: remote error: access denied or repository not exported: /x.git", UNREACHABLE),
        ("fatal: remote error: upload-pack: not our ref " + SHA_A, NO_REF),
        ("fatal: couldn't find remote ref refs/heads/gone", NO_REF),
        ("fatal: something nobody expected", GitSourceError),
    ],
)
def test_failures_become_domain_errors(stderr: str, kind: type[GitSourceError]) -> None:
    error = plan.classify(REMOTE, stderr, "fetch", config(Path("/tmp")))
    assert type(error) is kind
    assert error.hint and REMOTE.url in error.message


def test_classify_redacts_the_token_and_says_what_to_configure(tmp_path: Path) -> None:
    header = f"Authorization: Bearer {TOKEN}"
    error = plan.classify(
        REMOTE,
        f"fatal: Authentication failed ({header}) {TOKEN}",
        "fetch",
        config(tmp_path, token_file=tmp_path / "token"),
        plan.secrets_of(TOKEN, config(tmp_path)),
    )
    assert TOKEN not in error.message and TOKEN not in (error.hint or "")
    assert "token" in (error.hint or "")
    no_token = plan.classify(REMOTE, "terminal prompts disabled", "fetch", config(tmp_path))
    assert "CODEBASE_MCP_GIT_TOKEN_FILE" in (no_token.hint or "")


# --- settings ----------------------------------------------------------------------
def test_git_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    monkeypatch.setenv("CODEBASE_MCP_GIT_HOSTS", "github.com,127.0.0.1:8080")
    monkeypatch.setenv("CODEBASE_MCP_GIT_PROTOCOLS", "https,http")
    monkeypatch.setenv("CODEBASE_MCP_GIT_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("CODEBASE_MCP_GIT_TOKEN_FILE", str(token))
    monkeypatch.setenv("CODEBASE_MCP_GIT_TOKEN_SCHEME", "bearer")
    monkeypatch.setenv("CODEBASE_MCP_GIT_TIMEOUT", "12")
    cfg = ServerSettings().git_config()
    assert cfg.hosts == (HostRule("github.com"), HostRule("127.0.0.1", 8080))
    assert cfg.protocols == ("https", "http")
    assert (cfg.cache_dir, cfg.token_file, cfg.token_scheme, cfg.timeout) == (
        tmp_path / "c",
        token,
        "bearer",
        12.0,
    )
    assert TOKEN not in repr(ServerSettings())  # the settings hold the path, not the token


def test_git_settings_defaults_and_refusals(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in list(os.environ):
        if var.startswith("CODEBASE_MCP_GIT"):
            monkeypatch.delenv(var)
    cfg = ServerSettings().git_config()
    assert cfg.hosts == () and cfg.protocols == ("https", "ssh")  # git sources off by default
    assert cfg.cache_dir.parts[-2:] == ("codebase-mcp", "git")
    monkeypatch.setenv("CODEBASE_MCP_GIT_HOSTS", "not a host")
    with pytest.raises(ConfigError, match="CODEBASE_MCP_GIT_HOSTS"):
        ServerSettings()
    monkeypatch.delenv("CODEBASE_MCP_GIT_HOSTS")
    monkeypatch.setenv("CODEBASE_MCP_GIT_PROTOCOLS", "https,file")
    with pytest.raises(ConfigError, match="unknown protocol"):
        ServerSettings()
    monkeypatch.delenv("CODEBASE_MCP_GIT_PROTOCOLS")
    monkeypatch.setenv("CODEBASE_MCP_GIT_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CODEBASE_MCP_GIT_TOKEN_FILE=.* does not exist"):
        ServerSettings()


# --- the cache's calls, against a fake runner --------------------------------------
@dataclass
class FakeGit(Runner):
    """Answers git calls by subcommand; records argv and env; runs nothing."""

    answers: dict[str, Callable[[tuple[str, ...]], Result]] = field(default_factory=dict)
    envs: list[Mapping[str, str]] = field(default_factory=list)

    def run(  # type: ignore[override]
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        redact: Callable[[str], str] | None = None,
        **_: object,
    ) -> Result:
        args = tuple(os.fspath(a) for a in argv)
        assert timeout is not None, "every git call has a timeout"
        assert redact is not None, "every git call is redacted"
        self.calls.append(args)
        self.envs.append(dict(env or {}))
        sub = args[3] if args[1:2] == ("--git-dir",) else args[1]
        answer = self.answers.get(sub)
        return answer(args) if answer else Result(args, 0, "", "")

    def subcommands(self) -> list[str]:
        return [c[3] if c[1:2] == ("--git-dir",) else c[1] for c in self.calls]


def ok(stdout: str = "") -> Callable[[tuple[str, ...]], Result]:
    return lambda argv: Result(argv, 0, stdout, "")


def fail(stderr: str, code: int = 128) -> Callable[[tuple[str, ...]], Result]:
    return lambda argv: Result(argv, code, "", stderr)


def test_refused_input_runs_nothing_and_writes_nothing(tmp_path: Path) -> None:
    fake = FakeGit()
    sources = GitSources(config(tmp_path), fake)
    for url, error in (
        ("https://u:p@git.example.com/x", InvalidGitSource),
        ("https://other.example.com/x", GitHostNotAllowed),
        ("ext::sh -c id", InvalidGitSource),
        ("git://git.example.com/x", GitHostNotAllowed),
    ):
        with pytest.raises(error):
            sources.fetch(url, "main")
        with pytest.raises(error):
            sources.resolve(url)
    with pytest.raises(InvalidGitSource):
        sources.fetch(REMOTE.url, "--upload-pack=evil")
    with pytest.raises(InvalidGitSource, match="full commit id"):
        sources.fetch(REMOTE.url, "main", commit="abc")
    assert fake.calls == []
    assert not (tmp_path / "cache").exists()


def test_a_ref_that_does_not_exist_writes_nothing(tmp_path: Path) -> None:
    fake = FakeGit(answers={"ls-remote": ok(f"{SHA_A}\trefs/heads/main\n")})
    sources = GitSources(config(tmp_path), fake)
    with pytest.raises(GitRefNotFound, match="no branch or tag 'nope'"):
        sources.fetch(REMOTE.url, "nope")
    assert fake.subcommands() == ["ls-remote"]
    assert not (tmp_path / "cache").exists()


def test_the_token_reaches_git_only_through_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    fake = FakeGit(
        answers={
            "ls-remote": ok(f"{SHA_A}\trefs/heads/main\n"),
            "cat-file": fail("", 1),
            "diff-tree": ok(""),
        }
    )
    sources = GitSources(config(tmp_path, token_file=token_file), fake)
    # cat-file always says "missing": the fetch "brings nothing", so it fails cleanly.
    with pytest.raises(GitRefNotFound, match=f"no commit {SHA_A}"):
        sources.fetch(REMOTE.url, "main")
    assert fake.subcommands()[:4] == ["ls-remote", "init", "cat-file", "fetch"]
    assert all(TOKEN not in " ".join(c) for c in fake.calls)
    remote_envs = [e for c, e in zip(fake.calls, fake.envs, strict=True) if REMOTE.url in c]
    header_key = "http.https://git.example.com/.extraHeader"
    assert remote_envs and all(header_key in e.values() for e in remote_envs)
    local_envs = [e for c, e in zip(fake.calls, fake.envs, strict=True) if REMOTE.url not in c]
    assert all("extraHeader" not in str(e) for e in local_envs)
    # the half-made first mirror is gone
    assert list((tmp_path / "cache" / "mirrors").iterdir()) == []
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_a_cached_commit_is_not_fetched_again(tmp_path: Path) -> None:
    fake = FakeGit(answers={"ls-remote": ok(f"{SHA_A}\trefs/heads/main\n")})
    sources = GitSources(config(tmp_path), fake)
    mirror = tmp_path / "cache" / "mirrors" / f"{REMOTE.key}.git"
    mirror.mkdir(parents=True)
    (tmp_path / "cache" / "checkouts" / SHA_A).mkdir(parents=True)
    checkout = sources.fetch(REMOTE.url, "main")
    assert "fetch" not in fake.subcommands() and "read-tree" not in fake.subcommands()
    assert (checkout.commit, checkout.fetched, checkout.ref_name) == (
        SHA_A,
        False,
        "refs/heads/main",
    )
    assert checkout.path == tmp_path / "cache" / "checkouts" / SHA_A


def test_a_pinned_commit_skips_ls_remote(tmp_path: Path) -> None:
    fake = FakeGit()
    sources = GitSources(config(tmp_path), fake)
    mirror = tmp_path / "cache" / "mirrors" / f"{REMOTE.key}.git"
    mirror.mkdir(parents=True)
    (tmp_path / "cache" / "checkouts" / SHA_B).mkdir(parents=True)
    checkout = sources.fetch(REMOTE.url, "refs/heads/main", commit=SHA_B, since=SHA_A)
    assert "ls-remote" not in fake.subcommands()
    assert checkout.previous == SHA_A and checkout.changes == ()  # fake diff: nothing changed


def test_a_timeout_is_an_unreachable_server(tmp_path: Path) -> None:
    class Slow(FakeGit):
        def run(self, argv: Sequence[str | os.PathLike[str]], **kw: object) -> Result:  # type: ignore[override]
            raise CommandFailed("`git ls-remote ...` did not finish within 30s", returncode=-1)

    with pytest.raises(GitUnreachable, match="did not finish within 30s"):
        GitSources(config(tmp_path), Slow()).resolve(REMOTE.url, "main")


def test_a_token_file_that_is_empty_is_a_config_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        GitSources(config(tmp_path, token_file=token_file), FakeGit()).resolve(REMOTE.url)


def test_a_fetch_waits_for_the_lock_then_gives_up_clearly(tmp_path: Path) -> None:
    sources = GitSources(config(tmp_path, timeout=0.05), FakeGit())
    locks = tmp_path / "cache" / "locks"
    locks.mkdir(parents=True)
    with open(locks / f"{REMOTE.key}.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(GitSourceError, match="held the cache lock for more than 0s"):
            sources.fetch(REMOTE.url, SHA_A)
    assert sources.runner.calls == []


def test_commit_arguments_are_full_ids_that_agree(tmp_path: Path) -> None:
    sources = GitSources(config(tmp_path), FakeGit())
    with pytest.raises(InvalidGitSource, match="disagree"):
        sources.fetch(REMOTE.url, SHA_A, commit=SHA_B)
    with pytest.raises(InvalidGitSource, match="full commit id"):
        sources.fetch(REMOTE.url, "main", since="-n")
    with pytest.raises(InvalidGitSource, match="full commit id"):
        sources.changed_paths(REMOTE.url, "--output=/etc/x", SHA_B)
    assert sources.runner.calls == []
