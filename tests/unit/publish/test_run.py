"""publish() with a fake engine: results only after every push, errors explained."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.errors import PublishError
from codebase_mcp.proc import Result, Runner, failure
from codebase_mcp.publish import run
from codebase_mcp.publish.images import LocalImage


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class FakeEngine(Runner):
    """podman push writes a digest file; pushes of `fail_name` fail with `fail_stderr`."""

    def __init__(self, fail_name: str | None = None, fail_stderr: str = "") -> None:
        super().__init__()
        self.fail_name = fail_name
        self.fail_stderr = fail_stderr

    def run(  # type: ignore[override]
        self, argv: Sequence[str | os.PathLike[str]], *, check: bool = True, **_: Any
    ) -> Result:
        args = tuple(os.fspath(a) for a in argv)
        self.calls.append(args)
        if self.fail_name and f"/{self.fail_name}:" in args[-1]:
            result = Result(args, 125, "", self.fail_stderr)
            if check:
                raise failure(result, None)
            return result
        if args[:2] == ("podman", "push"):
            name = args[-1].rsplit("/", 1)[-1].split(":")[0]
            digestfile = Path(args[args.index("--digestfile") + 1])
            digestfile.write_text(digest_of(name))
        return Result(args, 0)


@pytest.fixture
def fake_images(monkeypatch: pytest.MonkeyPatch) -> None:
    def local_image(_root: Path, name: str, **_: Any) -> LocalImage:
        return LocalImage(
            name,
            f"localhost/codebase-mcp-{name}:{'0' * 32}",
            {
                "io.codebase-mcp.input-hash": name[0] * 64,
            },
        )

    def sbom_bytes(_root: Path, image: LocalImage, _fmt: str, _runner: Runner) -> bytes:
        return f'{{"name": "{image.name}"}}\n'.encode()

    monkeypatch.setattr(run, "local_image", local_image)
    monkeypatch.setattr(run, "sbom_bytes", sbom_bytes)


def request(tmp_path: Path, **kw: Any) -> run.PublishRequest:
    base: Mapping[str, Any] = {
        "destination": "127.0.0.1:5000/test",
        "names": ["postgres", "server"],
        "tags": ["v1"],
        "digestfile": tmp_path / "out" / "digests.txt",
        "tls_verify": False,
    }
    return run.PublishRequest(**{**base, **kw})


@pytest.mark.usefixtures("fake_images")
def test_digest_file_and_sboms_after_all_pushes(tmp_path: Path) -> None:
    engine = FakeEngine()
    results = run.publish(tmp_path, request(tmp_path), engine)
    digests = (tmp_path / "out" / "digests.txt").read_text().splitlines()
    assert digests == [
        f"127.0.0.1:5000/test/postgres@{digest_of('postgres')}",
        f"127.0.0.1:5000/test/server@{digest_of('server')}",
    ]
    assert [r.reference for r in results] == digests
    assert (tmp_path / "out" / "server.spdx.json").read_text() == '{"name": "server"}\n'
    assert results[0].tags == ["p" * 32, "v1"]
    pushes = [c for c in engine.calls if c[:2] == ("podman", "push")]
    copies = [c for c in engine.calls if c[:2] == ("skopeo", "copy")]
    assert [c[-1] for c in pushes] == [
        f"docker://127.0.0.1:5000/test/postgres:{'p' * 32}",
        f"docker://127.0.0.1:5000/test/server:{'s' * 32}",
    ]
    assert copies[1][-2:] == (
        f"docker://127.0.0.1:5000/test/server@{digest_of('server')}",
        "docker://127.0.0.1:5000/test/server:v1",
    )


@pytest.mark.usefixtures("fake_images")
@pytest.mark.parametrize(
    ("stderr", "message", "hint"),
    [
        (
            "Error: trying to reuse blob: pinging container registry nohost.invalid: "
            'Get "https://nohost.invalid/v2/": dial tcp: lookup nohost.invalid: no such host',
            "is unknown (DNS lookup failed)",
            "spelling of REGISTRY",
        ),
        (
            "Error: writing blob: initiating layer upload to /v2/test/server/blobs/uploads/ "
            "in 127.0.0.1:5000: authentication required",
            "refused the credentials",
            "podman login 127.0.0.1:5000",
        ),
        (
            'Error: pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": '
            "http: server gave HTTP response to HTTPS client",
            "TLS to registry",
            "--no-tls-verify",
        ),
        ("dial tcp 127.0.0.1:5000: connect: connection refused", "cannot connect", "running"),
    ],
)
def test_failed_push_leaves_no_results_and_says_why(
    tmp_path: Path, stderr: str, message: str, hint: str
) -> None:
    engine = FakeEngine(fail_name="server", fail_stderr=stderr)
    (tmp_path / "out").mkdir()
    with pytest.raises(PublishError) as err:
        run.publish(tmp_path, request(tmp_path), engine)
    assert message in str(err.value)
    assert err.value.hint is not None and hint in err.value.hint
    assert err.value.exit_code == 40
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


@pytest.mark.usefixtures("fake_images")
def test_failed_tag_copy_leaves_no_results(tmp_path: Path) -> None:
    engine = FakeEngine(fail_name="server", fail_stderr="unauthorized: access denied")
    with pytest.raises(PublishError):
        run.publish(tmp_path, request(tmp_path, names=["server"], tags=[]), engine)
    assert not (tmp_path / "out").exists()


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "d.txt"
    target.write_text("old\n")
    run.write_atomic(target, b"new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["d.txt"]
