from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from codebase_mcp.builder.store import Store, Wanted
from codebase_mcp.errors import FetchError, HashMismatch

DATA = b"package bytes" * 1000
SHA = hashlib.sha256(DATA).hexdigest()


class Response(io.BytesIO):
    def __enter__(self) -> Response:
        return self


def opener_for(data: bytes):  # type: ignore[no-untyped-def]
    return lambda url: Response(data)


def test_fetch_verifies_and_stores_by_hash(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = store.fetch(Wanted("pkg", SHA, ("http://x/pkg.deb",)), opener_for(DATA))
    assert path == tmp_path / "sha256" / SHA
    assert path.read_bytes() == DATA
    assert store.verify(Wanted("pkg", SHA, ())) == path


def test_hash_mismatch_names_package_and_hashes_and_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(HashMismatch) as info:
        store.fetch(Wanted("Debian package libc6 2.41", SHA, ("http://x/a",)), opener_for(b"evil"))
    message = info.value.message
    assert "libc6" in message and SHA in message and hashlib.sha256(b"evil").hexdigest() in message
    assert not any((tmp_path / "sha256").iterdir())


class DiskFull(io.BytesIO):
    def __enter__(self) -> DiskFull:
        return self

    def read(self, size: int | None = -1) -> bytes:
        raise OSError(28, "No space left on device")


def test_interrupted_download_leaves_no_entry_and_no_partial(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(FetchError, match="No space left"):
        store.fetch(Wanted("pkg", SHA, ("http://x/a",)), lambda url: DiskFull())
    assert list((tmp_path / "sha256").iterdir()) == []


def test_falls_back_to_the_next_url(tmp_path: Path) -> None:
    calls = []

    def opener(url: str) -> Response:
        calls.append(url)
        if url.startswith("http://gone"):
            raise OSError("404")
        return Response(DATA)

    Store(tmp_path).fetch(Wanted("pkg", SHA, ("http://gone/a", "https://snapshot/a")), opener)
    assert calls == ["http://gone/a", "https://snapshot/a"]


def test_tampered_store_entry_is_detected(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = store.fetch(Wanted("pkg", SHA, ("u",)), opener_for(DATA))
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(HashMismatch, match="corrupt"):
        store.verify(Wanted("pkg", SHA, ()))
