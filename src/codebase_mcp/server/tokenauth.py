"""Bearer-token auth for ``/mcp``: one shared token, checked by FastMCP's auth layer.

FastMCP's ``TokenVerifier`` is the hook: given ``auth=``, FastMCP wraps the
MCP route (and only it: ``/health`` stays open for probes) in its
``RequireAuthMiddleware``, which answers 401 with ``WWW-Authenticate: Bearer``
when the header is missing or the token is wrong. FastMCP's bundled
``StaticTokenVerifier`` looks tokens up in a dict (not constant time, and
meant for tests), so this module brings its own verifier: ``hmac.compare_digest``
over the bytes, and the token never kept in request state or written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from fastmcp.server.auth import AccessToken, TokenVerifier
from pydantic import SecretStr

from codebase_mcp.errors import ConfigError

# RFC 6750's b64token: what fits in `Authorization: Bearer ...` without quoting.
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 1024
CLIENT_ID = "codebase-mcp-client"
MAKE_ONE = "make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"


def check_token(token: str, source: str) -> SecretStr:
    """A usable token or ConfigError (which never quotes the token)."""
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        raise ConfigError(
            f"the auth token in {source} is {len(token)} characters long "
            f"({MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} needed)",
            hint=MAKE_ONE,
        )
    if not _TOKEN.match(token):
        raise ConfigError(
            f"the auth token in {source} has characters a Bearer header cannot carry",
            hint="use letters, digits and - . _ ~ + / (and = at the end); " + MAKE_ONE,
        )
    return SecretStr(token)


def read_token_file(path: Path) -> SecretStr:
    """The token in ``path`` (surrounding whitespace dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"cannot read the auth token file {path}: {reason}",
            hint="check the path and that the server's user may read it "
            "(CODEBASE_MCP_AUTH_TOKEN_FILE / --auth-token-file)",
        ) from None
    return check_token(text.strip(), str(path))


def fingerprint(token: SecretStr) -> str:
    """A short, non-reversible name for a token (safe to show; tells two tokens apart)."""
    return "sha256:" + hashlib.sha256(token.get_secret_value().encode()).hexdigest()[:12]


class BearerTokenVerifier(TokenVerifier):
    """Accepts exactly one token, compared in constant time."""

    def __init__(self, token: SecretStr) -> None:
        super().__init__()
        self._expected = token.get_secret_value().encode("ascii")
        self._fingerprint = fingerprint(token)

    async def verify_token(self, token: str) -> AccessToken | None:
        # Starlette decodes header bytes as latin-1: encoding back gives the bytes sent.
        presented = token.encode("latin-1", errors="replace")
        if not hmac.compare_digest(presented, self._expected):
            return None
        # The request state holds a fingerprint, not the secret itself.
        return AccessToken(token=self._fingerprint, client_id=CLIENT_ID, scopes=[])
