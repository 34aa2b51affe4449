"""Git sources: URL and ref validation, normalisation, the allow-list, redaction (pure)."""

from __future__ import annotations

import pytest

from codebase_mcp.errors import ConfigError, GitHostNotAllowed, InvalidGitSource
from codebase_mcp.server.gitsource.urls import (
    HostRule,
    Remote,
    check_allowed,
    parse_host_rules,
    parse_protocols,
    parse_ref,
    parse_remote,
    redact,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("https://GitHub.com/Owner/Repo.git", "https://github.com/Owner/Repo.git"),
        (" https://github.com:443/owner/repo/ ", "https://github.com/owner/repo"),
        ("https://github.com.//owner//repo", "https://github.com/owner/repo"),
        ("http://127.0.0.1:8080/repo.git", "http://127.0.0.1:8080/repo.git"),
        ("http://127.0.0.1:80/repo.git", "http://127.0.0.1/repo.git"),
        ("git://127.0.0.1:9418/repo.git", "git://127.0.0.1/repo.git"),
        ("git://localhost:19418/a/b.git", "git://localhost:19418/a/b.git"),
        ("ssh://git@github.com:22/owner/repo.git", "ssh://git@github.com/owner/repo.git"),
        ("ssh://host.example:2222/srv/repo", "ssh://host.example:2222/srv/repo"),
        ("git@github.com:owner/repo.git", "ssh://git@github.com/owner/repo.git"),
        ("git.example.com:/srv/repo.git", "ssh://git.example.com/srv/repo.git"),
        ("https://[::1]:8443/repo.git", "https://[::1]:8443/repo.git"),
    ],
)
def test_urls_are_normalised(raw: str, canonical: str) -> None:
    assert parse_remote(raw).url == canonical


def test_the_key_is_a_hash_of_the_canonical_url() -> None:
    a = parse_remote("https://GitHub.com:443/owner/repo/")
    b = parse_remote("https://github.com/owner/repo")
    assert a.key == b.key and len(a.key) == 32
    assert a.key != parse_remote("https://github.com/owner/repo.git").key
    assert a.origin == "https://github.com/"
    assert parse_remote("http://127.0.0.1:8080/x").origin == "http://127.0.0.1:8080/"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-u", "starts with '-'"),
        ("--upload-pack=touch /tmp/pwned", "starts with '-'"),
        ("ext::sh -c touch% /tmp/pwned", "spaces"),
        ("ext::sh", "transport helper"),
        ("fd::17", "transport helper"),
        ("file:///etc/passwd", "file://"),
        ("FILE:///srv/repo", "file://"),
        ("/srv/repo.git", "local path"),
        ("./repo", "local path"),
        ("../repo", "local path"),
        ("~/repo", "local path"),
        ("repo", "local path"),
        ("ftp://host/x", "scheme"),
        ("git+ssh://host/x", "scheme"),
        ("https://host", "no repository"),
        ("https://host/", "no repository"),
        ("https:///x", "no host"),
        ("https://-oProxyCommand=x/y", "'-'"),
        ("ssh://-oProxyCommand=evil/x", "'-'"),
        ("-oProxyCommand=evil:x", "'-'"),
        ("https://host/-upload-pack/x", "'-'"),
        ("https://host/a/../b", "'..'"),
        ("https://host/x?y=1", "query"),
        ("https://host/x#frag", "query"),
        ("https://host:99999/x", "port"),
        ("https://host:abc/x", "port"),
        ("https://ho st/x", "spaces"),
        ("https://host/x\n", "repository"),  # stripped, then fine? no: see below
        ("https://host/x\r\ny", "control"),
        ("https://host\\x/y", "control"),
        ("https://exa_mple.com/x", "host name"),
        ("https://bücher.example/x", "host name"),
        ("ssh://bad user@host/x", "spaces"),
    ],
)
def test_bad_urls_are_refused_before_anything_runs(raw: str, why: str) -> None:
    if raw == "https://host/x\n":
        # Surrounding whitespace is trimmed (pasted URLs); inner newlines are refused.
        assert parse_remote(raw).url == "https://host/x"
        return
    with pytest.raises(InvalidGitSource) as info:
        parse_remote(raw)
    text = info.value.message + " " + (info.value.hint or "")
    assert why.lower() in text.lower()


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("https://user:hunter2@github.com/owner/repo.git", "hunter2"),
        ("https://ghp_abcdefSECRET@github.com/owner/repo.git", "ghp_abcdefSECRET"),
        ("http://x-access-token:tok3n@127.0.0.1:8080/repo.git", "tok3n"),
        ("ssh://git:pa55word@host/repo.git", "pa55word"),
        ("https://:onlypassword@host/repo.git", "onlypassword"),
        ("git://someone@host/repo.git", "someone"),
    ],
)
def test_credentials_in_the_url_are_refused_without_echoing_them(raw: str, secret: str) -> None:
    with pytest.raises(InvalidGitSource) as info:
        parse_remote(raw)
    assert "credentials" in info.value.message
    assert secret not in info.value.message and secret not in (info.value.hint or "")
    assert "CODEBASE_MCP_GIT_TOKEN_FILE" in (info.value.hint or "")


def test_an_ssh_login_name_is_not_a_credential() -> None:
    remote = parse_remote("ssh://git@github.com/owner/repo.git")
    assert remote.user == "git" and remote.scheme == "ssh"


HOSTS = parse_host_rules("github.com, 127.0.0.1:8080 ,[::1]")


def test_host_rules_parse() -> None:
    assert (HostRule("github.com"), HostRule("127.0.0.1", 8080), HostRule("[::1]")) == HOSTS
    assert parse_host_rules("") == ()
    assert parse_host_rules(" , ") == ()
    for bad in ("git hub.com", "host:0", "host:x", "https://github.com", "a_b.com", "[::1]x"):
        with pytest.raises(ConfigError, match="CODEBASE_MCP_GIT_HOSTS"):
            parse_host_rules(bad)


def test_protocols_parse() -> None:
    assert parse_protocols("https, SSH,https") == ("https", "ssh")
    assert parse_protocols("") == ()
    for bad in ("file", "https,ext", "fd"):
        with pytest.raises(ConfigError, match="unknown protocol"):
            parse_protocols(bad)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/o/r",
        "https://GITHUB.com:443/o/r",
        "ssh://git@github.com/o/r",
        "http://127.0.0.1:8080/r",
        "https://[::1]/r",
    ],
)
def test_allowed_hosts_pass(url: str) -> None:
    check_allowed(parse_remote(url), HOSTS, ("https", "ssh", "http"))


@pytest.mark.parametrize(
    ("url", "protocols", "why"),
    [
        ("https://gitlab.com/o/r", ("https",), "gitlab.com is not allowed"),
        ("https://github.com.evil.example/o/r", ("https",), "not allowed"),
        ("https://evil.example/github.com/o/r", ("https",), "not allowed"),
        ("http://127.0.0.1:8081/r", ("http",), "127.0.0.1:8081 is not allowed"),
        ("http://127.0.0.1/r", ("http",), "127.0.0.1 is not allowed"),
        ("git://github.com/o/r", ("https", "ssh"), "git://, which this server does not allow"),
        ("http://github.com/o/r", ("https",), "does not allow"),
    ],
)
def test_other_hosts_and_protocols_are_refused(
    url: str, protocols: tuple[str, ...], why: str
) -> None:
    with pytest.raises(GitHostNotAllowed, match=why):
        check_allowed(parse_remote(url), HOSTS, protocols)


def test_no_hosts_means_git_sources_are_disabled() -> None:
    with pytest.raises(GitHostNotAllowed, match="disabled") as info:
        check_allowed(parse_remote("https://github.com/o/r"), (), ("https",))
    assert "CODEBASE_MCP_GIT_HOSTS" in (info.value.hint or "")


def test_redact_hides_userinfo_headers_and_secrets() -> None:
    text = (
        "fatal: unable to access 'https://user:hunter2@host/x': "
        "Authorization: Basic eC1hY2Nlc3M6dG9rZW4= and Authorization: Bearer abc123xyz; "
        "token ghp_supersecret; ssh://git@host/x; ssh://git:pw@host/y"
    )
    out = redact(text, ["ghp_supersecret", "ab"])
    for secret in (
        "hunter2",
        "user:",
        "eC1hY2Nlc3M6dG9rZW4=",
        "abc123xyz",
        "ghp_supersecret",
        ":pw@",
    ):
        assert secret not in out
    assert "https://***@host/x" in out and "Authorization: Basic ***" in out
    assert "ssh://git@host/x" in out  # a login name alone is kept
    assert "ab" in out  # secrets shorter than 4 characters are not scrubbed (noise)


@pytest.mark.parametrize(
    ("raw", "text", "kind"),
    [
        (None, "HEAD", "head"),
        ("", "HEAD", "head"),
        (" HEAD ", "HEAD", "head"),
        ("main", "main", "name"),
        ("feature/x-1", "feature/x-1", "name"),
        ("v1.2.0", "v1.2.0", "name"),
        ("refs/tags/v1", "refs/tags/v1", "name"),
        ("deadbeef", "deadbeef", "name-or-short-sha"),
        ("A" * 40, "a" * 40, "sha"),
        (
            "0123456789abcdef0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef01234567",
            "sha",
        ),
        ("f" * 64, "f" * 64, "sha"),
        ("abc", "abc", "name"),  # too short to be taken for a commit
    ],
)
def test_refs_are_classified(raw: str | None, text: str, kind: str) -> None:
    spec = parse_ref(raw)
    assert (spec.text, spec.kind) == (text, kind)


@pytest.mark.parametrize(
    "raw",
    [
        "-b",
        "--upload-pack=x",
        "a..b",
        "a b",
        "x.lock",
        "refs/heads/",
        "main@{1}",
        "@",
        "HEAD~1",
        "main^",
        ":x",
        "a:b",
        "*",
        "[x]",
        "/main",
        "a//b",
        ".hidden",
        "dir/.hidden",
        "ends.",
        "tab\there",
        "x" * 300,
    ],
)
def test_bad_refs_are_refused(raw: str) -> None:
    with pytest.raises(InvalidGitSource, match="git ref"):
        parse_ref(raw)


def test_ls_remote_patterns_name_the_ref_exactly() -> None:
    assert parse_ref(None).patterns == ("HEAD",)
    assert parse_ref("v1").patterns == ("refs/heads/v1", "refs/tags/v1", "refs/tags/v1^{}")
    assert parse_ref("refs/heads/main").patterns == ("refs/heads/main", "refs/heads/main^{}")
    assert parse_ref("a" * 40).patterns == ()


def test_remote_str_is_the_canonical_url() -> None:
    remote = Remote(scheme="https", host="h", path="/x", port=8443)
    assert str(remote) == "https://h:8443/x"
