"""Pinned foreign repositories: read ``eval/repos.toml``, fetch, verify, unpack.

An archive is fetched into the content-addressed store (hashed while it is
written, renamed into place only when its sha256 matches the pin: see
:mod:`codebase_mcp.builder.store`) and unpacked into ``CACHE/NAME-SHA12``
through a temporary directory renamed into place at the end: a failed or
interrupted unpack leaves nothing behind, and a directory that exists is
complete. Members that could write outside the target (absolute paths, ``..``,
links, devices) are refused (``tarfile``'s ``data`` filter).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from codebase_mcp.builder.store import Store, Wanted, default_store
from codebase_mcp.errors import ConfigError, FetchError

ROLES = ("eval", "bench")
ARCHIVES = ("tar.gz", "tar.xz", "tgz")
_FIELDS = (
    "name",
    "kind",
    "version",
    "source",
    "url",
    "sha256",
    "archive",
    "subdirectory",
    "license",
    "role",
)


@dataclass(frozen=True)
class RepoPin:
    name: str
    kind: str
    version: str
    source: str
    urls: tuple[str, ...]
    sha256: str
    archive: str
    subdirectory: str
    license: str
    role: str

    @property
    def wanted(self) -> Wanted:
        return Wanted(f"{self.name} {self.version}", self.sha256, self.urls)

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.sha256[:12]}"


def default_cache() -> Path:
    env = os.environ.get("CODEBASE_MCP_EVAL_CACHE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "codebase-mcp" / "eval"


def _pin(raw: dict[str, object], where: str) -> RepoPin:
    missing = [f for f in _FIELDS if f not in raw]
    if missing:
        raise ConfigError(
            f"{where}: missing {', '.join(missing)}",
            hint=f"every [[repo]] needs {', '.join(_FIELDS)}",
        )
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}",
            hint=f"the fields are {', '.join(_FIELDS)}",
        )
    values = {k: raw[k] for k in _FIELDS}
    urls = values["url"]
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ConfigError(
            f"{where}: url must be a string or a list of strings",
            hint='write url = ["https://..."]',
        )
    text = {k: v for k, v in values.items() if k != "url"}
    bad = [k for k, v in text.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ConfigError(
            f"{where}: {', '.join(bad)} must be non-empty strings", hint="quote every value"
        )
    sha = str(text["sha256"]).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ConfigError(
            f"{where}: sha256 {text['sha256']!r} is not 64 hex digits",
            hint="pin the archive's sha256 (sha256sum FILE)",
        )
    if text["archive"] not in ARCHIVES:
        raise ConfigError(
            f"{where}: archive {text['archive']!r} is not one of {ARCHIVES}",
            hint="the fetcher unpacks tar archives",
        )
    if text["role"] not in ROLES:
        raise ConfigError(
            f"{where}: role {text['role']!r} is not one of {ROLES}",
            hint='"eval" repositories are scored, "bench" ones benchmarked',
        )
    sub = PurePosixPath(str(text["subdirectory"]))
    if sub.is_absolute() or ".." in sub.parts:
        raise ConfigError(
            f"{where}: subdirectory {sub} must be relative, without '..'",
            hint="name a directory inside the unpacked archive",
        )
    return RepoPin(
        name=str(text["name"]),
        kind=str(text["kind"]),
        version=str(text["version"]),
        source=str(text["source"]),
        urls=tuple(urls),
        sha256=sha,
        archive=str(text["archive"]),
        subdirectory=str(sub),
        license=str(text["license"]),
        role=str(text["role"]),
    )


def load_pins(path: Path) -> list[RepoPin]:
    """Every ``[[repo]]`` of a repos.toml, validated; names must be unique."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="run from the repository, or pass --repos",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the file") from exc
    raw = data.get("repo")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path} has no [[repo]] tables", hint="add one per repository")
    pins = [_pin(r, f"{path} repo #{i + 1}") for i, r in enumerate(raw)]
    names = [p.name for p in pins]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"{path}: repository name(s) {', '.join(dupes)} appear twice",
            hint="names must be unique",
        )
    return pins


def select(pins: list[RepoPin], names: list[str] | None, role: str | None) -> list[RepoPin]:
    """The pins named (all of ``role`` when no names are given)."""
    if not names:
        return [p for p in pins if role is None or p.role == role]
    known = {p.name: p for p in pins}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown repository {', '.join(unknown)}", hint=f"choose from {', '.join(known)}"
        )
    return [known[n] for n in names]


def unpack(archive: Path, target: Path) -> None:
    """Unpack ``archive`` to ``target`` (which must not exist) all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".unpack-{target.name}-", dir=target.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise FetchError(
                f"cannot unpack {archive}: {exc}",
                hint="the archive is damaged or unsafe; nothing was unpacked",
            ) from exc
        try:
            tmp.replace(target)
        except OSError:
            if not target.is_dir():  # not another process that unpacked it first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def checkout(
    pin: RepoPin,
    *,
    store: Store | None = None,
    cache: Path | None = None,
    opener: Callable[[str], object] | None = None,
) -> Path:
    """The directory to index for ``pin``: fetched, verified and unpacked if needed."""
    cache = cache or default_cache()
    unpacked = cache / pin.dirname
    if not unpacked.is_dir():
        store = store or Store(default_store())
        store.ensure_writable()
        archive = store.fetch(pin.wanted, opener)
        store.verify(pin.wanted)
        unpack(archive, unpacked)
    root = unpacked / pin.subdirectory
    if not root.is_dir():
        raise ConfigError(
            f"{pin.name}: subdirectory {pin.subdirectory} is not in the archive",
            hint=f"look inside {unpacked} and fix subdirectory in repos.toml",
        )
    return root


def cached_root(pin: RepoPin, cache: Path | None = None) -> Path | None:
    """The directory to index if it is already unpacked (no network), else None."""
    root = (cache or default_cache()) / pin.dirname / pin.subdirectory
    return root if root.is_dir() else None
