"""Git URLs and refs as data: parse, normalise, check against the allow-list, redact.

Pure functions, no git, no network. Everything a tool argument can smuggle in
is refused here, before any process runs: local paths and ``file://``,
transport helpers (``ext::sh -c ...``, ``fd::``), option injection (a URL, host
or ref starting with ``-``), credentials in the URL, control characters, and
hosts or protocols the operator did not allow.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from codebase_mcp.errors import ConfigError, GitHostNotAllowed, InvalidGitSource

# The protocols git sources may use, with their default ports.
DEFAULT_PORTS: dict[str, int] = {"https": 443, "http": 80, "ssh": 22, "git": 9418}
PROTOCOLS: tuple[str, ...] = tuple(DEFAULT_PORTS)

CREDENTIALS_HINT = (
    "remove the user name and password from the URL; the server authenticates with a "
    "mounted secret: a token file (CODEBASE_MCP_GIT_TOKEN_FILE) for https, an SSH key "
    "(CODEBASE_MCP_GIT_SSH_KEY_FILE) for ssh"
)

_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]")
_SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_TRANSPORT_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# scp-like syntax: [user@]host:path, with no slash before the colon (as git decides).
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+|\[[0-9A-Fa-f:.]+\]):(?P<path>.+)$")
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")
# Anything URL-shaped with userinfo, for redaction of free text (logs, stderr).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^@/\s?#]*)@")
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*)(basic|bearer|token)?\s*[^\s'\"]+")


@dataclass(frozen=True)
class HostRule:
    """One CODEBASE_MCP_GIT_HOSTS entry: a host name (any port) or host:port."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int | None, scheme: str) -> bool:
        if host != self.host:
            return False
        return self.port is None or self.port == (port or DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Remote:
    """A validated git URL in canonical form (the form stored, logged and hashed)."""

    scheme: str
    host: str
    path: str
    port: int | None = None  # None: the scheme's default port
    user: str | None = None  # ssh login name only; never a password

    @property
    def url(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{user}{self.host}{port}{self.path}"

    @property
    def origin(self) -> str:
        """``scheme://host[:port]/``: the scope of the token header (``http.<url>.*``)."""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}/"

    @property
    def key(self) -> str:
        """The cache key: sha256 of the canonical URL, 32 hex digits."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:32]

    def __str__(self) -> str:
        return self.url


def parse_host_rules(value: str) -> tuple[HostRule, ...]:
    """Parse ``"github.com,git.example.com:8443"`` (empty: git sources disabled)."""
    rules: list[HostRule] = []
    for raw in value.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        host, port = item, None
        if item.startswith("["):
            end = item.find("]")
            host, rest = item[: end + 1], item[end + 1 :]
            if rest:
                port = _rule_port(item, rest)
        elif item.count(":") == 1:
            host, rest = item.split(":")
            port = _rule_port(item, ":" + rest)
        host = host.rstrip(".")
        if not (_HOSTNAME.fullmatch(host) or _IPV6.fullmatch(host)):
            raise ConfigError(
                f"CODEBASE_MCP_GIT_HOSTS entry {raw.strip()!r} is not a host name or host:port",
                hint='write host names, comma separated: "github.com,gitlab.example.com:8443"',
            )
        rules.append(HostRule(host, port))
    return tuple(rules)


def _rule_port(item: str, rest: str) -> int:
    if not (rest.startswith(":") and rest[1:].isdigit() and 0 < int(rest[1:]) < 65536):
        raise ConfigError(
            f"CODEBASE_MCP_GIT_HOSTS entry {item!r} has an invalid port",
            hint='write host or host:port, e.g. "git.example.com:8443"',
        )
    return int(rest[1:])


def parse_protocols(value: str) -> tuple[str, ...]:
    """Parse ``"https,ssh"``: the transports git may use (a subset of :data:`PROTOCOLS`)."""
    items = tuple(dict.fromkeys(p.strip().lower() for p in value.split(",") if p.strip()))
    unknown = [p for p in items if p not in DEFAULT_PORTS]
    if unknown:
        raise ConfigError(
            f"CODEBASE_MCP_GIT_PROTOCOLS: unknown protocol(s) {', '.join(unknown)}",
            hint=f"choose from {', '.join(PROTOCOLS)} (file, ext and other transports are "
            "never allowed)",
        )
    return items


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials, Authorization values and each of ``secrets`` hidden.

    An ssh login name without a password (``ssh://git@host``) is kept; any other
    userinfo becomes ``***`` (a token is often put in the user-name slot).
    """

    def userinfo(match: re.Match[str]) -> str:
        scheme, info = match["scheme"], match["info"]
        if scheme.lower().startswith("ssh") and ":" not in info:
            return match[0]
        return f"{scheme}***@"

    out = _USERINFO.sub(userinfo, text)
    out = _AUTH_HEADER.sub(lambda m: f"{m[1]}{(m[2] + ' ') if m[2] else ''}***", out)
    for secret in secrets:
        if len(secret) >= 4:
            out = out.replace(secret, "***")
    return out


def _refuse(url: str, what: str, hint: str) -> InvalidGitSource:
    shown = redact(url)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return InvalidGitSource(f"git URL {shown!r} {what}", hint=hint)


def parse_remote(raw: str) -> Remote:
    """Parse and normalise a git URL, refusing anything that is not a plain remote."""
    url = raw.strip()
    if not url:
        raise InvalidGitSource(
            "the git URL is empty", hint="pass repo_url like https://github.com/owner/repo.git"
        )
    if url.startswith("-"):
        raise _refuse(url, "starts with '-'", "a URL cannot start with '-' (it would be an option)")
    if _CONTROL.search(url):
        raise _refuse(url, "contains spaces, control characters or '\\'", "pass the URL alone")
    if _TRANSPORT_HELPER.match(url):
        raise _refuse(
            url,
            "uses a git transport helper (<transport>::<address>)",
            "only https://, ssh://, git:// and http:// URLs (as allowed) are accepted",
        )
    scheme_match = _SCHEME.match(url)
    if "://" in url and scheme_match:
        return _parse_url(url, scheme_match[1].lower())
    scp = _SCP.match(url)
    if scp and not url.startswith((".", "/", "~")):
        user, host, path = scp["user"], scp["host"], scp["path"]
        return _build(url, "ssh", user, None, host, None, "/" + path.lstrip("/"))
    raise _refuse(
        url,
        "is a local path, not a remote repository",
        "index a local directory with repo_path; repo_url takes https://, ssh:// or git:// URLs",
    )


def _parse_url(url: str, scheme: str) -> Remote:
    if scheme == "file":
        raise _refuse(
            url,
            "is a file:// URL",
            "index a local directory with repo_path; repo_url takes remote URLs only",
        )
    if scheme not in DEFAULT_PORTS:
        raise _refuse(url, f"uses the scheme {scheme!r}", f"use one of {', '.join(PROTOCOLS)}")
    parts = urlsplit(url)
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise _refuse(url, "has a query or fragment ('?', '#')", "pass the repository URL alone")
    netloc = parts.netloc
    info, at, hostport = netloc.rpartition("@")
    user: str | None = None
    password: str | None = None
    if at:
        user, colon, pw = info.partition(":")
        password = pw if colon else None
    try:
        port = parts.port
    except ValueError:
        raise _refuse(url, "has an invalid port", "write host:PORT with 1-65535") from None
    host = hostport.rsplit(":", 1)[0] if (port is not None or hostport.endswith(":")) else hostport
    if hostport.startswith("[") and "]" in hostport:
        host = hostport[: hostport.index("]") + 1]
    return _build(url, scheme, user, password, host, port, parts.path)


def _build(
    url: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    path: str,
) -> Remote:
    if password is not None or (user is not None and scheme != "ssh"):
        raise _refuse(url, "carries credentials", CREDENTIALS_HINT)
    if user is not None and not _SSH_USER.fullmatch(user):
        raise _refuse(url, "has an invalid ssh user name", "write ssh://git@host/owner/repo.git")
    host = host.lower().rstrip(".")
    if not host:
        raise _refuse(url, "names no host", "write scheme://host/owner/repo.git")
    if host.startswith("-"):
        raise _refuse(url, "has a host starting with '-'", "a host cannot start with '-'")
    if not (_HOSTNAME.fullmatch(host) or _IPV6.fullmatch(host)):
        raise _refuse(
            url,
            "has an invalid host name",
            "use an ASCII host name (punycode for international names) or an IP address",
        )
    if port is not None and not 0 < port < 65536:
        raise _refuse(url, "has an invalid port", "write host:PORT with 1-65535")
    if port == DEFAULT_PORTS[scheme]:
        port = None
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise _refuse(url, "names no repository", "write scheme://host/owner/repo.git")
    if any(s in (".", "..") for s in segments):
        raise _refuse(url, "has '.' or '..' in its path", "write the repository's own path")
    if segments[0].startswith("-"):
        raise _refuse(url, "has a path starting with '-'", "a path cannot start with '-'")
    return Remote(scheme=scheme, host=host, port=port, user=user, path="/" + "/".join(segments))


def check_allowed(remote: Remote, hosts: tuple[HostRule, ...], protocols: tuple[str, ...]) -> None:
    """Refuse a host or protocol the operator has not allowed."""
    if not hosts:
        raise GitHostNotAllowed(
            f"git sources are disabled on this server (cannot fetch {remote})",
            hint="the operator allows hosts with CODEBASE_MCP_GIT_HOSTS, e.g. "
            '"github.com,gitlab.example.com"; or index a mounted directory with repo_path',
        )
    if remote.scheme not in protocols:
        raise GitHostNotAllowed(
            f"git URL {remote} uses {remote.scheme}://, which this server does not allow",
            hint=f"use {' or '.join(p + '://' for p in protocols) or 'nothing'}; the operator "
            "sets CODEBASE_MCP_GIT_PROTOCOLS",
        )
    if not any(rule.matches(remote.host, remote.port, remote.scheme) for rule in hosts):
        where = remote.host if remote.port is None else f"{remote.host}:{remote.port}"
        raise GitHostNotAllowed(
            f"git host {where} is not allowed (allowed: {', '.join(map(str, hosts))})",
            hint="the operator adds hosts to CODEBASE_MCP_GIT_HOSTS",
        )


# --- refs ----------------------------------------------------------------------
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHORT_SHA = re.compile(r"[0-9a-f]{7,63}")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


@dataclass(frozen=True)
class RefSpec:
    """What the user asked for, classified: the default branch, a name, or a commit."""

    text: str  # normalised: "HEAD", "main", "refs/tags/v1", a lower-case sha
    kind: str  # "head" | "name" | "sha" | "name-or-short-sha"

    @property
    def patterns(self) -> tuple[str, ...]:
        """The ``git ls-remote`` patterns that can match this ref exactly."""
        if self.kind == "head":
            return ("HEAD",)
        if self.kind == "sha":
            return ()
        if self.text.startswith("refs/"):
            return (self.text, self.text + "^{}")
        return (
            f"refs/heads/{self.text}",
            f"refs/tags/{self.text}",
            f"refs/tags/{self.text}^{{}}",
        )


def parse_ref(raw: str | None) -> RefSpec:
    """Check a ref the way ``git check-ref-format`` would, and classify it."""
    ref = (raw or "").strip()
    if not ref or ref == "HEAD":
        return RefSpec("HEAD", "head")
    hint = "pass a branch (main), a tag (v1.2.0), a full ref (refs/heads/main) or a commit sha"
    shown = ref if len(ref) <= 100 else ref[:100] + "..."
    if ref.startswith("-"):
        raise InvalidGitSource(f"git ref {shown!r} starts with '-'", hint=hint)
    if _FULL_SHA.fullmatch(ref.lower()):
        return RefSpec(ref.lower(), "sha")
    bad = (
        _BAD_REF_CHARS.search(ref)
        or ".." in ref
        or "@{" in ref
        or "//" in ref
        or ref == "@"
        or ref.endswith(("/", ".", ".lock"))
        or ref.startswith("/")
        or any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/"))
        or len(ref) > 255
    )
    if bad:
        raise InvalidGitSource(f"git ref {shown!r} is not a valid branch, tag or commit", hint=hint)
    if _SHORT_SHA.fullmatch(ref.lower()):
        return RefSpec(ref, "name-or-short-sha")
    return RefSpec(ref, "name")
