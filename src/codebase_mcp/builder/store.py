"""The content-addressed store: every fetched input lives at ``sha256/<hex>``.

Downloads go to a temporary file in the store, are hashed while written, and
are renamed into place only when the hash matches the lock: an interrupted or
corrupt download (disk full, tampered mirror) never leaves a store entry.
Entries are re-verified before every build.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.errors import ConfigError, FetchError, HashMismatch

CHUNK = 1 << 20
# Seconds to wait before each new round over an input's URLs, when every URL failed in a
# way that may pass (DNS not answering, a reset, a 503). A fresh CI machine once lost its
# resolver for a few seconds and a whole build failed on one package; ~37 s of patience
# costs nothing when the network is fine and a hard failure (404, hash mismatch) never waits.
RETRY_DELAYS: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0)
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Whether a download failure may pass if tried again a little later."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_HTTP
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return isinstance(reason, BaseException) and is_transient(reason)
    if isinstance(exc, ConnectionRefusedError):
        return False  # the host answered: nothing listens there (or an offline proxy), now or soon
    # socket.gaierror: the resolver did not answer (EAI_AGAIN) or answered "no such name"
    # while it was failing; host names come from the lock, not from a user's typing.
    return isinstance(
        exc, socket.gaierror | TimeoutError | ConnectionError | http.client.IncompleteRead
    )


@dataclass(frozen=True)
class Wanted:
    """One input to fetch: a label for messages, its sha256 and where to get it."""

    label: str
    sha256: str
    urls: tuple[str, ...]


def default_store() -> Path:
    env = os.environ.get("CODEBASE_MCP_STORE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "codebase-mcp" / "store"


def writable_dir(path: Path) -> bool:
    """Whether this user can write ``path`` or create it (in its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Store:
    root: Path
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    sleep: Callable[[float], None] = time.sleep

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256

    def ensure_writable(self) -> None:
        """A clear error, not a traceback, when this user cannot write the store."""
        if not writable_dir(self.root):
            raise ConfigError(
                f"the store {self.root} is not writable by this user",
                hint="every user builds into a store of their own: set CODEBASE_MCP_STORE "
                "(or XDG_CACHE_HOME) to a directory you own (`codebase-mcp doctor` checks it)",
            )

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def verify(self, item: Wanted) -> Path:
        """The entry's path after re-hashing it; HashMismatch if it was altered."""
        path = self.path(item.sha256)
        actual = file_sha256(path)
        if actual != item.sha256:
            raise HashMismatch(
                f"store entry for {item.label} is corrupt: expected sha256 {item.sha256}, "
                f"found {actual} ({path})",
                hint=f"delete {path} and run `codebase-mcp image fetch` again",
            )
        return path

    def fetch(self, item: Wanted, opener: Callable[[str], object] | None = None) -> Path:
        if self.has(item.sha256):
            return self.path(item.sha256)
        errors: list[str] = []
        for attempt, delay in enumerate((*self.retry_delays, None), start=1):
            errors = []
            transient = True
            for url in item.urls:
                try:
                    return self._download(item, url, opener)
                except HashMismatch:
                    raise
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    errors.append(f"{url}: {exc}")
                    transient = transient and is_transient(exc)
            if not transient or delay is None:
                break
            ui.warn(f"could not download {item.label} (attempt {attempt}), retrying in {delay:g}s")
            self.sleep(delay)
        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
        raise FetchError(
            f"could not download {item.label}{tries}:\n  " + "\n  ".join(errors),
            hint="check the network to the mirror / PyPI, or that the lock's URLs still exist "
            "(Debian packages fall back to snapshot.debian.org)",
        )

    def _download(self, item: Wanted, url: str, opener: Callable[[str], object] | None) -> Path:
        target = self.path(item.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".partial-", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                response = (opener or _open)(url)
                with response as src:  # type: ignore[attr-defined]
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if actual != item.sha256:
                raise HashMismatch(
                    f"{item.label} from {url} has sha256 {actual}, but the lock pins {item.sha256}",
                    hint="the file changed upstream or was tampered with; nothing was stored. "
                    "If the change is expected, run `codebase-mcp image lock` again",
                )
            tmp.chmod(0o444)
            tmp.replace(target)
            return target
        finally:
            tmp.unlink(missing_ok=True)

    def fetch_all(
        self,
        items: Iterable[Wanted],
        *,
        progress: Callable[[str], None] | None = None,
        workers: int = 8,
    ) -> dict[str, Path]:
        unique = {i.sha256: i for i in items}
        missing = [i for i in unique.values() if not self.has(i.sha256)]
        if missing and progress:
            total = sum(1 for _ in missing)
            progress(f"fetching {total} of {len(unique)} inputs into {self.root}")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self.fetch, missing))
        return {sha: self.verify(item) for sha, item in unique.items()}

    def put_file(self, source: Path) -> tuple[str, Path]:
        """Add a local file (a built artefact) by its hash."""
        sha = file_sha256(source)
        target = self.path(sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".partial-{os.getpid()}-{sha[:8]}")
            shutil.copyfile(source, tmp)
            tmp.chmod(0o444)
            tmp.replace(target)
        return sha, target


def _open(url: str) -> object:
    request = urllib.request.Request(  # noqa: S310 - http(s) URLs from the lock
        url, headers={"User-Agent": "codebase-mcp-builder"}
    )
    return urllib.request.urlopen(request, timeout=60)  # noqa: S310 - http(s) URLs from the lock
