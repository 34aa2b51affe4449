"""Git sources against real git servers on 127.0.0.1.

``git daemon`` (git://) and ``git http-backend`` behind a stdlib HTTP server that
requires a token (smart HTTP): resolve and fetch a branch, a tag, a commit;
fetch again after a new commit (only the delta travels, old/new commit and
changed paths reported); a pinned commit after its branch moved; every bad
input refused with a clear error and the cache unchanged; two processes
fetching one URL at once; the token never in logs, echoes or errors.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codebase_mcp.errors import (
    GitAuthFailed,
    GitHostNotAllowed,
    GitRefNotFound,
    GitUnreachable,
    InvalidGitSource,
)
from codebase_mcp.proc import Runner
from codebase_mcp.server.gitsource import Change, GitConfig, GitSources, HostRule, plan
from tests.support.gitserver import (
    HttpGitServer,
    commit,
    free_port,
    git,
    git_daemon,
    git_http,
    make_repo,
    publish,
)
from tests.support.processes import stop

pytestmark = pytest.mark.integration

TOKEN = "glpat-Z9x8c7v6b5n4m3-secret"
WRONG = "wrong-token-0000-1111"
REPO_ROOT = Path(__file__).resolve().parents[3]


def _noise(seed: int, size: int = 4000) -> str:
    """Text that does not compress: a fetch of it is measurably bigger than of a small edit."""
    return base64.b64encode(os.urandom(size)).decode() + f"\n# {seed}\n"


FILES: dict[str, str] = {
    "README.md": "# sample\n",
    "src/app.py": "def main():\n    return 'hello'\n",
    "src/util/strings.py": "def snake(s):\n    return s.lower()\n",
    "docs/guide.txt": "a guide\n",
    **{f"data/blob{i}.txt": _noise(i) for i in range(8)},
}


@dataclass
class Upstream:
    work: Path
    base: Path
    first: str  # main's first commit (also tag v1, annotated, and "light")
    feature: str  # branch feature, one commit ahead of first

    def push(self) -> None:
        publish(self.work, self.base / "repo.git")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    work = make_repo(tmp_path / "work", FILES)
    (work / "run.sh").write_text("#!/bin/sh\necho run\n")
    (work / "run.sh").chmod(0o755)
    (work / "link").symlink_to("README.md")
    git("add", "run.sh", "link", cwd=work)
    git("commit", "-q", "-m", "script and link", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    git("tag", "-a", "v1", "-m", "release 1", cwd=work)
    git("tag", "light", cwd=work)
    git("checkout", "-q", "-b", "feature", cwd=work)
    feature = commit(work, {"feature.txt": "only on feature\n"}, "feature")
    git("checkout", "-q", "main", cwd=work)
    base = tmp_path / "served"
    base.mkdir()
    up = Upstream(work, base, first, feature)
    up.push()
    return up


@pytest.fixture
def daemon(upstream: Upstream) -> Iterator[str]:
    with git_daemon(upstream.base) as url:
        yield url


@pytest.fixture
def http(upstream: Upstream) -> Iterator[HttpGitServer]:
    with git_http(upstream.base, TOKEN) as server:
        yield server


def make_sources(
    cache: Path,
    *,
    protocols: tuple[str, ...] = ("git", "http"),
    token_file: Path | None = None,
    scheme: str = "basic",
    echo: bool = False,
) -> GitSources:
    config = GitConfig(
        cache_dir=cache,
        hosts=(HostRule("127.0.0.1"),),
        protocols=protocols,
        timeout=30.0,
        token_file=token_file,
        token_scheme=scheme,  # type: ignore[arg-type]
    )
    return GitSources(config, Runner(echo=echo))


def tree_of(path: Path) -> dict[str, tuple[str, bytes]]:
    """Every file under ``path``: (kind, bytes or link target)."""
    out: dict[str, tuple[str, bytes]] = {}
    for item in sorted(path.rglob("*")):
        rel = item.relative_to(path).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            continue
        if item.is_symlink():
            out[rel] = ("link", os.readlink(item).encode())
        elif item.is_file():
            kind = "exec" if item.stat().st_mode & stat.S_IXUSR else "file"
            out[rel] = (kind, item.read_bytes())
    return out


def snapshot(cache: Path) -> dict[str, tuple[int, int]]:
    """What the cache holds: path -> (size, mtime); lock files and the (empty) tmp/ aside."""
    if not cache.exists():
        return {}
    if (cache / "tmp").exists():
        assert list((cache / "tmp").iterdir()) == [], "work in progress left behind"
    return {
        rel: (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in cache.rglob("*")
        if not (rel := p.relative_to(cache).as_posix()).startswith(("locks", "tmp"))
    }


def test_branch_tag_and_commit_over_git_daemon(
    upstream: Upstream, daemon: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    sources = make_sources(cache)
    url = f"{daemon}/repo.git"

    resolved = sources.resolve(url, "main")
    assert (resolved.ref_name, resolved.commit) == ("refs/heads/main", upstream.first)
    main = sources.fetch(url, "main")
    assert (main.commit, main.ref_name, main.fetched) == (upstream.first, "refs/heads/main", True)
    assert main.path == cache / "checkouts" / upstream.first
    # The exact bytes of the commit: contents, executable bit, symlink.
    assert tree_of(main.path) == tree_of(upstream.work)
    assert tree_of(main.path)["run.sh"][0] == "exec"
    assert tree_of(main.path)["link"] == ("link", b"README.md")

    tag = sources.fetch(url, "v1")  # annotated: peeled to its commit
    assert (tag.commit, tag.ref_name, tag.fetched) == (upstream.first, "refs/tags/v1", False)
    assert tag.path == main.path  # one checkout per commit
    assert sources.fetch(url, "refs/tags/light").commit == upstream.first

    by_sha = sources.fetch(url, upstream.feature)
    assert (by_sha.commit, by_sha.ref_name, by_sha.fetched) == (upstream.feature, None, True)
    assert (by_sha.path / "feature.txt").read_text() == "only on feature\n"

    short = sources.fetch(url, upstream.feature[:10])
    assert short.commit == upstream.feature and short.path == by_sha.path

    default = sources.fetch(url)  # HEAD: the default branch
    assert (default.ref, default.ref_name, default.commit) == (
        "HEAD",
        "refs/heads/main",
        main.commit,
    )

    assert [p.name for p in (cache / "mirrors").iterdir()] == [f"{main_key(sources, url)}.git"]
    assert list((cache / "tmp").iterdir()) == []
    assert (cache / "mirrors" / f"{main_key(sources, url)}.git" / "description").read_text() == (
        url + "\n"
    )


def main_key(sources: GitSources, url: str) -> str:
    return sources.check(url)[0].key


def test_a_new_commit_fetches_only_the_delta_and_lists_what_changed(
    upstream: Upstream, http: HttpGitServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    sources = make_sources(tmp_path / "cache", token_file=token_file)
    url = f"{http.url}/repo.git"

    first = sources.fetch(url, "main")
    # ls-remote, then the fetch (which lists the ref again, then fetches)
    assert http.commands == ["ls-refs", "ls-refs", "fetch"]
    first_bytes = sum(http.upload_pack_bytes)
    before = tree_of(first.path)

    new = commit(
        upstream.work,
        {
            "src/app.py": "def main():\n    return 'bye'\n",
            "new.txt": "new\n",
            "docs/guide.txt": None,
        },
        "second",
    )
    upstream.push()
    http.reset()
    second = sources.fetch(url, "main")
    assert http.commands == ["ls-refs", "ls-refs", "fetch"]
    delta_bytes = sum(http.upload_pack_bytes)
    assert (second.previous, second.commit, second.fetched) == (first.commit, new, True)
    assert set(second.changes or ()) == {
        Change("M", "src/app.py"),
        Change("A", "new.txt"),
        Change("D", "docs/guide.txt"),
    }
    # The first fetch carried ~40 KB of incompressible files; the second only the edit.
    assert delta_bytes * 5 < first_bytes, (delta_bytes, first_bytes)
    assert tree_of(first.path) == before  # the old checkout is untouched
    assert (second.path / "src/app.py").read_text() == "def main():\n    return 'bye'\n"
    assert not (second.path / "docs/guide.txt").exists()
    assert sources.changed_paths(url, first.commit, new) == list(second.changes or ())

    http.reset()
    again = sources.fetch(url, "main")  # nothing moved: only the ref is asked for
    assert http.commands == ["ls-refs"]
    assert (again.fetched, again.previous, again.changes) == (False, new, ())

    # The indexer passes the commit it indexed last: changes since then.
    since = sources.fetch(url, "main", since=first.commit)
    assert since.previous == first.commit and len(since.changes or ()) == 3


def test_a_pinned_commit_is_fetched_after_its_branch_moved(
    upstream: Upstream, daemon: str, tmp_path: Path
) -> None:
    url = f"{daemon}/repo.git"
    resolved = make_sources(tmp_path / "a").resolve(url, "main")  # when the job is queued
    moved = commit(upstream.work, {"src/app.py": "moved\n"}, "moved on")
    upstream.push()
    # A replica with an empty cache fetches the commit the job pinned, not the new tip.
    checkout = make_sources(tmp_path / "b").fetch(url, resolved.ref_name, commit=resolved.commit)
    assert checkout.commit == upstream.first != moved
    assert (checkout.path / "src/app.py").read_text() == FILES["src/app.py"]


def test_the_token_file_authenticates_and_never_shows(
    upstream: Upstream,
    http: HttpGitServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{http.url}/repo.git"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    messages: list[str] = []

    basic = make_sources(tmp_path / "basic", token_file=token_file, echo=True)
    assert basic.fetch(url, "v1").commit == upstream.first
    bearer = make_sources(tmp_path / "bearer", token_file=token_file, scheme="bearer", echo=True)
    assert bearer.fetch(url, upstream.feature).commit == upstream.feature
    assert any(a.startswith("Basic ") for a in http.authorizations)
    assert f"Bearer {TOKEN}" in http.authorizations

    wrong_file = tmp_path / "wrong"
    wrong_file.write_text(WRONG)
    for cache, token in ((tmp_path / "wrong-cache", wrong_file), (tmp_path / "none", None)):
        with pytest.raises(GitAuthFailed) as info:
            make_sources(cache, token_file=token, echo=True).fetch(url, "main")
        messages.append(info.value.message + " " + (info.value.hint or ""))
        assert snapshot(cache).keys() <= {"mirrors", "tmp"}  # nothing half-made was kept
        assert not any((cache / "mirrors").iterdir()) if (cache / "mirrors").exists() else True
    assert "refused the credentials" in messages[0] and str(wrong_file) in messages[0]
    assert "CODEBASE_MCP_GIT_TOKEN_FILE" in messages[1]

    out, err = capfd.readouterr()
    shown = out + err + caplog.text + " ".join(messages)
    assert "+ git ls-remote" in err  # the echo ran
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    for secret in (TOKEN, WRONG, encoded):
        assert secret not in shown


def test_bad_sources_are_refused_and_leave_the_cache_unchanged(
    upstream: Upstream, daemon: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    sources = make_sources(cache)
    url = f"{daemon}/repo.git"
    sources.fetch(url, "main")
    before = snapshot(cache)
    port = daemon.rsplit(":", 1)[1]
    publish(upstream.work, upstream.base / "other.git")

    cases: list[tuple[str, str | None, type[Exception], str]] = [
        (url, "no-such-branch", GitRefNotFound, "no branch or tag 'no-such-branch'"),
        (url, "f" * 40, GitRefNotFound, "has no commit"),
        (url, "abcdef1234", GitRefNotFound, "no branch, tag or commit"),
        (f"{daemon}/other.git", "e" * 40, GitRefNotFound, "has no commit"),
        (f"git://127.0.0.1:{free_port()}/repo.git", "main", GitUnreachable, "cannot be reached"),
        (f"{daemon}/no-such-repo.git", "main", GitUnreachable, "no such repository"),
        (f"git://localhost:{port}/repo.git", "main", GitHostNotAllowed, "localhost"),
        (f"https://127.0.0.1:{port}/repo.git", "main", GitHostNotAllowed, "https://"),
        (f"http://me:hunter2@127.0.0.1:{port}/repo.git", "main", InvalidGitSource, "credentials"),
        (f"file://{upstream.base}/repo.git", "main", InvalidGitSource, "file://"),
        (str(upstream.base / "repo.git"), "main", InvalidGitSource, "local path"),
        ("ext::sh -c touch% /tmp/gitsource-pwned", "main", InvalidGitSource, "spaces"),
        ("ext::git-upload-pack", "main", InvalidGitSource, "transport helper"),
        (url, "--upload-pack=touch /tmp/gitsource-pwned", InvalidGitSource, "starts with '-'"),
    ]
    for source, ref, error, text in cases:
        with pytest.raises(error) as info:
            sources.fetch(source, ref)
        assert text in info.value.message, (source, ref, info.value.message)
        assert "hunter2" not in info.value.message
        assert snapshot(cache) == before, (source, ref)
    assert not Path("/tmp/gitsource-pwned").exists()
    assert [p.name for p in (cache / "mirrors").iterdir()] == [f"{main_key(sources, url)}.git"]


def test_git_itself_refuses_protocols_not_allowed(upstream: Upstream, tmp_path: Path) -> None:
    """Below the validation: the environment alone makes git refuse file:// and ext::."""
    config = GitConfig(cache_dir=tmp_path, protocols=("https", "ssh"), timeout=30.0)
    env = plan.environment(config, os.environ)
    runner = Runner()
    for url in (f"file://{upstream.base}/repo.git", "ext::sh -c true", str(upstream.base)):
        result = runner.run(
            ["git", "ls-remote", "--", url], env=env, inherit_env=False, check=False, timeout=30
        )
        assert result.returncode != 0
        assert "not allowed" in result.stderr, result.stderr


SCRIPT = """
import json, sys, time
from pathlib import Path
from codebase_mcp.proc import Runner
from codebase_mcp.server.gitsource import GitConfig, GitSources, HostRule

cache, url, ref, go = sys.argv[1:5]
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.01)
config = GitConfig(cache_dir=Path(cache), hosts=(HostRule("127.0.0.1"),), protocols=("git",))
checkout = GitSources(config, Runner()).fetch(url, ref)
print(json.dumps({"commit": checkout.commit, "path": str(checkout.path)}), flush=True)
"""


def test_two_processes_fetch_one_url_at_once(
    upstream: Upstream, daemon: str, tmp_path: Path
) -> None:
    cache, go = tmp_path / "cache", tmp_path / "go"
    url = f"{daemon}/repo.git"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(cache), url, ref, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for ref in ("main", "v1", upstream.feature)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        answers = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop(proc)
    assert [a["commit"] for a in answers] == [upstream.first, upstream.first, upstream.feature]
    assert answers[0]["path"] == answers[1]["path"]
    assert len(list((cache / "mirrors").iterdir())) == 1
    assert sorted(p.name for p in (cache / "checkouts").iterdir()) == sorted(
        {upstream.first, upstream.feature}
    )
    assert list((cache / "tmp").iterdir()) == []
    assert tree_of(Path(answers[0]["path"])) == tree_of(upstream.work)


def test_threads_of_one_process_share_the_cache(
    upstream: Upstream, daemon: str, tmp_path: Path
) -> None:
    """flock is per open file: two workers of one server exclude each other too."""
    sources = make_sources(tmp_path / "cache")
    url = f"{daemon}/repo.git"
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(ref: str) -> None:
        try:
            results[ref] = sources.fetch(url, ref).commit
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("main", "feature", "light")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not errors, errors
    assert results == {"main": upstream.first, "feature": upstream.feature, "light": upstream.first}


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_a_server_that_never_answers_times_out(scheme: str, tmp_path: Path) -> None:
    """A port that accepts connections and then says nothing: the timeout ends the call."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = GitConfig(
            cache_dir=tmp_path / "cache",
            hosts=(HostRule("127.0.0.1"),),
            protocols=(scheme,),
            timeout=1.0,
        )
        with pytest.raises(GitUnreachable, match="did not finish within 1s") as info:
            GitSources(config).fetch(f"{scheme}://127.0.0.1:{port}/repo.git", "main")
        assert "CODEBASE_MCP_GIT_TIMEOUT" in (info.value.hint or "")
    assert snapshot(tmp_path / "cache") == {}


FAKE_SSH = """#!/bin/sh
# Stands in for ssh (no sshd here): records its argv, runs the remote command locally.
for arg in "$@"; do printf '%s\\n' "$arg"; done > "LOG"
for last in "$@"; do :; done
exec sh -c "$last"
"""


def test_ssh_urls_use_the_mounted_key_and_known_hosts(upstream: Upstream, tmp_path: Path) -> None:
    """git's real ssh transport, with a stand-in ssh that runs git-upload-pack locally."""
    key, known, log = tmp_path / "id_ed25519", tmp_path / "known_hosts", tmp_path / "ssh.log"
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "ssh").write_text(FAKE_SSH.replace('"LOG"', f'"{log}"'))
    (fakebin / "ssh").chmod(0o755)
    key.write_text("not a real key\n")
    known.write_text("127.0.0.1 ssh-ed25519 AAAA\n")
    config = GitConfig(
        cache_dir=tmp_path / "cache",
        hosts=(HostRule("127.0.0.1"),),
        protocols=("ssh",),
        timeout=30.0,
        ssh_key_file=key,
        known_hosts_file=known,
    )
    # git runs "ssh ..." from GIT_SSH_COMMAND through PATH: the stand-in comes first.
    environ = {"PATH": f"{fakebin}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    sources = GitSources(config, Runner(), environ=environ)

    scp_like = f"git@127.0.0.1:{upstream.base}/repo.git"
    checkout = sources.fetch(scp_like, "v1")
    assert checkout.commit == upstream.first
    assert checkout.url == f"ssh://git@127.0.0.1{upstream.base}/repo.git"
    argv = log.read_text().splitlines()
    for option in (
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "IdentitiesOnly=yes",
        f"UserKnownHostsFile={known}",
    ):
        assert option in argv, argv
    assert argv[argv.index("-i") + 1] == str(key) and argv[:2] == ["-F", "/dev/null"]
    assert "git@127.0.0.1" in argv and "git-upload-pack" in argv[-1]
