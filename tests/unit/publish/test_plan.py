from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.errors import UsageError
from codebase_mcp.publish.plan import Destination, digest_lines, parse_destination, plan_push

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository"),
    [
        ("ghcr.io/acme/codebase-mcp", "ghcr.io", "acme/codebase-mcp"),
        ("127.0.0.1:5000/test", "127.0.0.1:5000", "test"),
        ("localhost/x", "localhost", "x"),
        ("docker://registry.example.org:443/a/b/", "registry.example.org:443", "a/b"),
    ],
)
def test_destinations(text: str, registry: str, repository: str) -> None:
    assert parse_destination(text) == Destination(registry, repository)


@pytest.mark.parametrize(
    "text",
    [
        "acme/codebase-mcp",
        "ghcr.io",
        "ghcr.io/Acme/x",
        "ghcr.io/acme/x:latest",
        "ghcr.io/a@sha256:1",
    ],
)
def test_bad_destinations_say_what_to_write(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_destination(text)
    assert err.value.hint


def test_push_by_digest_then_tags_from_that_digest(tmp_path: Path) -> None:
    (p,) = plan_push(
        parse_destination("127.0.0.1:5000/test"),
        [("server", "localhost/codebase-mcp-server:" + "1" * 32, "1" * 64)],
        ["v1", "latest", "v1"],
    )
    push = p.push_argv(tmp_path / "d", tls_verify=False, sign_by=None)
    assert push[:2] == ["podman", "push"]
    assert ["--digestfile", str(tmp_path / "d")] == push[push.index("--digestfile") :][:2]
    assert "--tls-verify=false" in push
    assert push[-1] == "docker://127.0.0.1:5000/test/server:" + "1" * 32
    tags = p.tag_argvs(DIGEST, tls_verify=True, sign_by="ops@example.org")
    assert [a[-1] for a in tags] == [
        "docker://127.0.0.1:5000/test/server:v1",
        "docker://127.0.0.1:5000/test/server:latest",
    ]
    for argv in tags:
        assert argv[-2] == f"docker://127.0.0.1:5000/test/server@{DIGEST}"
        assert "--preserve-digests" in argv
        assert "--dest-tls-verify=true" in argv
        assert argv[argv.index("--sign-by") + 1] == "ops@example.org"
    assert p.pinned(DIGEST) == f"127.0.0.1:5000/test/server@{DIGEST}"


def test_no_credentials_or_tls_override_unless_asked(tmp_path: Path) -> None:
    (p,) = plan_push(parse_destination("ghcr.io/acme"), [("postgres", "r:t", "2" * 64)], [])
    argv = p.push_argv(tmp_path / "d", tls_verify=True, sign_by=None)
    assert "--tls-verify=true" in argv
    assert not any(a.startswith(("--creds", "--password", "--username")) for a in argv)
    assert "--sign-by" not in argv
    assert p.tag_argvs(DIGEST, tls_verify=True, sign_by=None) == []


def test_bad_tag() -> None:
    with pytest.raises(UsageError, match="tag '-x'"):
        plan_push(parse_destination("ghcr.io/acme"), [], ["-x"])


def test_digest_lines() -> None:
    assert digest_lines(["a@sha256:1", "b@sha256:2"]) == "a@sha256:1\nb@sha256:2\n"
