from __future__ import annotations

import email.message
import hashlib
import io
import socket
import urllib.error
from pathlib import Path

import pytest

from codebase_mcp.builder.store import Store, Wanted, is_transient
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


class Flaky:
    """An opener that fails ``failures`` times with ``error`` and then serves DATA."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, url: str) -> Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return Response(DATA)


def resolver_down() -> urllib.error.URLError:
    return urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


def http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://x/a", code, "status", email.message.Message(), None)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (resolver_down(), True),
        (http_error(503), True),
        (http_error(429), True),
        (http_error(404), False),
        (urllib.error.URLError(ConnectionResetError(104, "reset")), True),
        (urllib.error.URLError(ConnectionRefusedError(111, "refused")), False),
        (TimeoutError("timed out"), True),
        (OSError(28, "No space left on device"), False),
        (ValueError("unknown url type"), False),
    ],
)
def test_which_failures_are_worth_another_try(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_resolver_that_comes_back_is_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    waits: list[float] = []
    opener = Flaky(2, resolver_down())
    store = Store(tmp_path, retry_delays=(1.0, 2.0, 3.0), sleep=waits.append)
    path = store.fetch(Wanted("Debian package libattr1", SHA, ("http://x/a",)), opener)
    assert path.read_bytes() == DATA
    assert waits == [1.0, 2.0] and opener.calls == 3
    assert "could not download Debian package libattr1 (attempt 1), retrying in 1s" in (
        capsys.readouterr().err
    )


def test_a_permanent_failure_is_not_retried(tmp_path: Path) -> None:
    waits: list[float] = []
    opener = Flaky(99, http_error(404))
    store = Store(tmp_path, retry_delays=(1.0, 2.0), sleep=waits.append)
    with pytest.raises(FetchError, match="HTTP Error 404") as info:
        store.fetch(Wanted("pkg", SHA, ("http://x/a",)), opener)
    assert waits == [] and opener.calls == 1
    assert "attempts" not in info.value.message


def test_retries_end_with_every_url_and_the_attempt_count(tmp_path: Path) -> None:
    waits: list[float] = []
    opener = Flaky(99, resolver_down())
    store = Store(tmp_path, retry_delays=(1.0, 2.0), sleep=waits.append)
    with pytest.raises(FetchError) as info:
        store.fetch(Wanted("pkg", SHA, ("http://x/a", "http://y/a")), opener)
    assert waits == [1.0, 2.0] and opener.calls == 6
    message = info.value.message
    assert "after 3 attempts" in message and "http://x/a" in message and "http://y/a" in message
    assert list((tmp_path / "sha256").iterdir()) == []
