"""Layer derivations in the content-addressed store: ``layers/<key>.json`` → ``sha256/<digest>``.

A layer is made once per derivation key (the hash of everything that goes into
it) and kept as a blob named by its own sha256, beside the fetched inputs. The
record says which blob a key made. Every use re-hashes the blob: a blob whose
bytes no longer match its name (tampered, or damaged on disk) is never used;
the record and the blob are removed and the caller makes the layer again.

Writes are atomic: the tar goes to a temporary file in ``sha256/``, is synced
and renamed to its digest, and only then is the record written (also temp file
+ rename). A full disk or a crash mid-write leaves no record and no blob, only
a ``.partial-*`` file that is removed on the spot (or by ``image gc``).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from codebase_mcp import ui
from codebase_mcp.builder.store import file_sha256
from codebase_mcp.errors import LayerCorrupt, StoreFull

RECORD_DIR = "layers"


@dataclass(frozen=True)
class Layer:
    """A made layer: its blob's digest (hex) and size, and where the blob is."""

    key: str
    name: str
    digest: str
    size: int
    path: Path

    @property
    def diff_id(self) -> str:
        return f"sha256:{self.digest}"


@dataclass(frozen=True)
class LayerStore:
    root: Path

    def record_path(self, key: str) -> Path:
        return self.root / RECORD_DIR / f"{key}.json"

    def blob_path(self, digest: str) -> Path:
        return self.root / "sha256" / digest

    def record(self, key: str) -> dict[str, object] | None:
        path = self.record_path(key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            ui.warn(f"layer record {path} is unreadable; making the layer again")
            path.unlink(missing_ok=True)
            return None
        return dict(data) if isinstance(data, dict) else None

    def get(self, key: str, *, check: bool = True) -> Layer | None:
        """The layer made for ``key``, its blob re-hashed; None when not made (or discarded)."""
        data = self.record(key)
        if data is None:
            return None
        digest, name = str(data.get("digest", "")), str(data.get("name", "layer"))
        blob = self.blob_path(digest)
        if not blob.is_file():
            self.record_path(key).unlink(missing_ok=True)
            return None
        if check:
            actual = file_sha256(blob)
            if actual != digest:
                self.discard(key, blob)
                ui.warn(
                    f"layer {name} ({key[:12]}): blob {blob} is corrupt (sha256 {actual[:12]}, "
                    f"expected {digest[:12]}); it was removed and is not used"
                )
                return None
        return Layer(key, name, digest, blob.stat().st_size, blob)

    def require(self, key: str) -> Layer:
        """Like :meth:`get`, but a missing or corrupt layer is an error (no way to remake it)."""
        layer = self.get(key)
        if layer is None:
            raise LayerCorrupt(
                f"layer {key[:12]} is missing or corrupt in {self.root}",
                hint="run `codebase-mcp image build` to make it again",
            )
        return layer

    def discard(self, key: str, blob: Path | None = None) -> None:
        self.record_path(key).unlink(missing_ok=True)
        if blob is not None:
            blob.unlink(missing_ok=True)

    def put(self, key: str, name: str, write: Callable[[BinaryIO], None]) -> Layer:
        """Make the layer for ``key`` with ``write(file)``, atomically."""
        blobs = self.root / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        (self.root / RECORD_DIR).mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".partial-layer-", dir=blobs)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                hashing = _Hashing(out)
                write(hashing)  # type: ignore[arg-type]
                out.flush()
                os.fsync(out.fileno())
            digest, size = hashing.hexdigest(), hashing.size
            target = self.blob_path(digest)
            tmp.chmod(0o444)
            if target.is_file() and file_sha256(target) == digest:
                tmp.unlink()  # the same bytes are already there (another key made them)
            else:
                tmp.replace(target)
            _write_json_atomic(
                self.record_path(key), {"digest": digest, "name": name, "size": size}
            )
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(
                    f"no space left in {self.root} while writing layer {name}: "
                    "nothing was stored for it",
                    hint="free disk space (`codebase-mcp image gc --apply` removes what the "
                    "current lock no longer uses), then build again",
                ) from exc
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Layer(key, name, digest, size, target)


class _Hashing:
    """A write-only file that hashes what goes through it."""

    def __init__(self, out: BinaryIO) -> None:
        import hashlib

        self.out, self.hash, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.out.flush()

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


def _write_json_atomic(path: Path, value: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(value, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
