"""The endpoint's defences as pure functions: Host/Origin parsing and matching, the
exposure rule, token files, the argument guard, pseudo-filesystem paths.

The same behaviour over real HTTP: tests/integration/server/test_server_security_http.py.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from codebase_mcp.errors import ConfigError, PathNotAllowed
from codebase_mcp.server.config import RootMapping
from codebase_mcp.server.hostguard import (
    ANY_PORT,
    HostOriginPolicy,
    HostPattern,
    parse_host_pattern,
    parse_origin,
    parse_origin_pattern,
    split_host_port,
)
from codebase_mcp.server.paths import PathMapper
from codebase_mcp.server.security import (
    SecuritySettings,
    check_exposure,
    http_security,
    is_local,
    load_token,
)
from codebase_mcp.server.tokenauth import BearerTokenVerifier, read_token_file
from codebase_mcp.server.toolguard import MAX_DEPTH, MAX_STRING_CHARS, problem

TOKEN = "k8TqW3vYp0Zr5nLx2CjH9sDf"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("localhost:8000", ("localhost", 8000)),
        ("LOCALHOST:8000", ("localhost", 8000)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("[::1]:8000", ("::1", 8000)),
        ("[::1]", ("::1", None)),
        ("::1:8000", None),  # IPv6 without brackets
        ("localhost:0", None),
        ("localhost:65536", None),
        ("localhost:80a", None),
        ("evil.example@localhost:8000", None),
        ("local host:8000", None),
        ("[::1", None),
        ("[::1]x", None),
        ("", None),
        ("localhost\x00:8000", None),
    ],
)
def test_host_headers_are_parsed_strictly(
    header: str, expected: tuple[str, int | None] | None
) -> None:
    assert split_host_port(header) == expected


def policy(**kwargs: object) -> HostOriginPolicy:
    options: dict[str, object] = {"bind_host": "127.0.0.1", "port": 8000}
    options.update(kwargs)
    return HostOriginPolicy.build(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("LocalHost:8000", True),
        ("localhost:8001", False),  # another port: another server
        ("localhost", False),  # no port: port 80
        ("evil.example:8000", False),  # DNS rebinding keeps the page's name
        ("127.0.0.2:8000", False),
        ("localhost.:8000", False),
        ("", False),
        (None, False),
    ],
)
def test_default_hosts_are_loopback_names_on_the_port(host: str | None, allowed: bool) -> None:
    assert policy().host_allowed(host, "http") is allowed


def test_the_bind_address_and_published_addresses_are_allowed_too() -> None:
    p = policy(bind_host="192.168.1.20", published=[("127.0.0.1", 41234)])
    assert p.host_allowed("192.168.1.20:8000", "http")
    assert p.host_allowed("localhost:41234", "http")
    assert p.host_allowed("192.168.1.20:41234", "http")
    assert not p.host_allowed("192.168.1.21:8000", "http")
    # 0.0.0.0 is not a name anyone should send
    assert not policy(bind_host="0.0.0.0").host_allowed("0.0.0.0:8000", "http")


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        ("mcp.example.com", HostPattern("mcp.example.com", ANY_PORT)),
        ("mcp.example.com:*", HostPattern("mcp.example.com", ANY_PORT)),
        ("MCP.example.com:8443", HostPattern("mcp.example.com", 8443)),
        ("[::1]:9000", HostPattern("::1", 9000)),
        ("*.svc.cluster.local", HostPattern("*.svc.cluster.local", ANY_PORT)),
        ("*", HostPattern("*", ANY_PORT)),
    ],
)
def test_allowed_host_entries(entry: str, pattern: HostPattern) -> None:
    assert parse_host_pattern(entry) == pattern


@pytest.mark.parametrize("entry", ["http://mcp.example.com", "mcp.example.com/mcp", "a:b:c", ""])
def test_an_allowed_host_entry_that_is_not_a_host_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="CODEBASE_MCP_ALLOWED_HOSTS"):
        parse_host_pattern(entry)


def test_extra_hosts_with_globs() -> None:
    p = policy(extra_hosts=["codebase-mcp-server", "codebase-mcp-server.*", "mcp.example.com:443"])
    assert p.host_allowed("codebase-mcp-server:8000", "http")
    assert p.host_allowed("codebase-mcp-server.team.svc.cluster.local:8000", "http")
    assert p.host_allowed("mcp.example.com", "https")  # 443 by scheme
    assert not p.host_allowed("mcp.example.com", "http")
    assert not p.host_allowed("codebase-mcp-server-evil.example:8000", "http")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # CLI and desktop clients send none
        ("http://localhost:8000", True),
        ("http://127.0.0.1:8000", True),
        ("http://[::1]:8000", True),
        ("http://localhost:8000/", True),
        ("http://localhost:3000", False),  # another local web app
        ("https://localhost:8000", False),
        ("http://evil.example", False),
        ("http://evil.example:8000", False),
        ("null", False),  # sandboxed frames, file:// pages
        ("", False),
        ("http://localhost:8000/path", False),
        ("chrome-extension://abcdef", False),
    ],
)
def test_origins(origin: str | None, allowed: bool) -> None:
    assert policy().origin_allowed(origin) is allowed


def test_extra_origins() -> None:
    p = policy(extra_origins=["https://app.example.com", "http://localhost:*"])
    assert p.origin_allowed("https://app.example.com")
    assert p.origin_allowed("https://app.example.com:443")
    assert not p.origin_allowed("https://app.example.com:8443")
    assert p.origin_allowed("http://localhost:6274")
    assert policy(extra_origins=["*"]).origin_allowed("http://anything.example")
    assert parse_origin("HTTP://LOCALHOST") == ("http", "localhost", 80)
    with pytest.raises(ConfigError, match="CODEBASE_MCP_ALLOWED_ORIGINS"):
        parse_origin_pattern("app.example.com")


def scope(path: str = "/mcp", **headers: str) -> dict[str, object]:
    return {
        "type": "http",
        "method": "POST" if path == "/mcp" else "GET",
        "path": path,
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_refusals_say_what_is_wrong() -> None:
    p = policy()
    assert p.refusal(scope(host="localhost:8000")) is None
    status, body = p.refusal(scope(host="evil.example:8000")) or (0, {})
    assert status == 421
    assert body["error"] == "misdirected_request"
    assert "CODEBASE_MCP_ALLOWED_HOSTS" in body["hint"]
    status, body = p.refusal(scope(host="localhost:8000", origin="http://evil.example")) or (0, {})
    assert status == 403
    assert body["error"] == "forbidden_origin"


def test_health_skips_only_the_host_check() -> None:
    p = policy()
    assert p.refusal(scope("/health", host="10.88.0.7:8000")) is None  # the kubelet's probe
    refused = p.refusal(scope("/health", host="10.88.0.7:8000", origin="http://evil.example"))
    assert refused is not None and refused[0] == 403


# --- exposure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "published", "local"),
    [
        ("127.0.0.1", [], True),
        ("localhost", [], True),
        ("::1", [], True),
        ("0.0.0.0", [], False),
        ("0.0.0.0", [("127.0.0.1", 8000)], True),  # the pod: published on loopback only
        ("::", [("127.0.0.1", 8000), ("::1", 8000)], True),
        ("0.0.0.0", [("127.0.0.1", 8000), ("0.0.0.0", 8001)], False),
        ("0.0.0.0", [("192.168.1.20", 8000)], False),
        ("192.168.1.20", [("127.0.0.1", 8000)], False),  # a real interface is reachable
    ],
)
def test_what_counts_as_local(bind: str, published: list[tuple[str, int]], local: bool) -> None:
    assert is_local(bind, published) is local


def test_a_reachable_address_needs_a_token_or_insecure() -> None:
    with pytest.raises(ConfigError, match="without an auth token") as err:
        check_exposure("0.0.0.0", 8000, [], token=False, insecure=False)
    assert err.value.hint and "--insecure-no-auth" in err.value.hint
    check_exposure("0.0.0.0", 8000, [], token=True, insecure=False)
    check_exposure("0.0.0.0", 8000, [], token=False, insecure=True)
    check_exposure("127.0.0.1", 8000, [], token=False, insecure=False)


def test_published_on_must_name_address_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBASE_MCP_PUBLISHED_ON", "127.0.0.1")
    with pytest.raises(ConfigError, match="CODEBASE_MCP_PUBLISHED_ON"):
        http_security(SecuritySettings(), bind_host="0.0.0.0", port=8000)


# --- tokens -----------------------------------------------------------------------


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_token_file(path).get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("short", "characters long"),
        ("", "characters long"),
        ("x" * 2000, "characters long"),
        ("has spaces inside the token!", "cannot carry"),
        ("naïve-token-with-unicode-chars", "cannot carry"),
    ],
)
def test_bad_token_files_are_config_errors_that_never_quote_the_token(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        read_token_file(path)
    if content:
        assert content not in err.value.message
        assert content not in (err.value.hint or "")


def test_a_missing_token_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the auth token file"):
        read_token_file(tmp_path / "nope")


def test_token_from_file_or_env_but_not_both(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    from_file = load_token(SecuritySettings(auth_token_file=path))
    assert from_file is not None and from_file.get_secret_value() == TOKEN
    from_env = load_token(SecuritySettings(auth_token=SecretStr(TOKEN)))
    assert from_env is not None and from_env.get_secret_value() == TOKEN
    assert load_token(SecuritySettings()) is None
    with pytest.raises(ConfigError, match="both"):
        load_token(SecuritySettings(auth_token_file=path, auth_token=SecretStr(TOKEN)))


def test_the_verifier_accepts_the_token_only_and_keeps_no_copy_in_the_request() -> None:
    verifier = BearerTokenVerifier(SecretStr(TOKEN))

    async def check() -> None:
        accepted = await verifier.verify_token(TOKEN)
        assert accepted is not None
        assert TOKEN not in accepted.model_dump_json()
        for wrong in ["", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" * 24, TOKEN + "\x00"]:
            assert await verifier.verify_token(wrong) is None

    asyncio.run(check())


# --- tool arguments ---------------------------------------------------------------


def test_argument_guard_finds_nul_surrogates_and_depth() -> None:
    assert problem("plain text, ünïcödé, 🙂, \u202e, tab\tnew\nline\r", "q") is None
    assert problem("red \x1b[31m", "q") == "q contains the control character U+001B"
    assert problem("\x85", "q") == "q contains the control character U+0085"
    assert problem("x" * (MAX_STRING_CHARS + 1), "q") is not None
    assert problem("x" * MAX_STRING_CHARS, "q") is None
    assert problem("a\x00b", "q") == "q contains a NUL character"
    assert problem("\ud800", "q") == "q contains an unpaired UTF-16 surrogate"
    assert problem({"k\x00": 1}, "q") == "a key in q contains a NUL character"
    assert problem(["ok", ["a\x00"]], "q") == "q[1][0] contains a NUL character"
    deep: object = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    assert problem(deep, "q") is not None and "nested" in (problem(deep, "q") or "")
    assert problem(10**40, "q") is None  # numbers are the tools' business


# --- paths ------------------------------------------------------------------------


def test_pseudo_filesystems_are_never_a_repository(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/proc/self")
    mapper = PathMapper([])  # no roots: the server on the host
    for path in ["/proc", "/proc/self/cwd/..", "/sys/kernel", "/dev", str(link)]:
        if not os.path.lexists(path):
            continue
        with pytest.raises(PathNotAllowed):
            mapper.resolve_repo(path)
    assert mapper.resolve_repo(str(tmp_path)).container_path == str(tmp_path.resolve())


def test_huge_or_nul_paths_are_refused_before_the_filesystem(tmp_path: Path) -> None:
    mapper = PathMapper([RootMapping(host="/home/me", container=str(tmp_path))])
    for path in ["/home/me/" + "a" * 5000, "/home/me/a\x00b"]:
        with pytest.raises(PathNotAllowed, match="not a usable path"):
            mapper.resolve_repo(path)
