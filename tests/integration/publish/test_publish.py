"""publish / sbom against a real local registry, real podman and skopeo.

The registry is Debian's docker-registry, started on 127.0.0.1 by the test
itself and stopped afterwards; nothing else is started.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from codebase_mcp.builder.build import Builder, BuildResult
from codebase_mcp.builder.lockfile import load_lock
from codebase_mcp.proc import Runner
from codebase_mcp.publish.contents import image_files, read_contents
from tests.integration.publish.cli import REPO, cli
from tests.integration.publish.registry import Registry, drop_storage, start_registry

pytestmark = pytest.mark.integration


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout


@pytest.fixture(scope="module")
def built() -> dict[str, BuildResult]:
    """Both images, built by the builder if they are not already (cached otherwise)."""
    return {r.name: r for r in Builder.create(REPO).build(["postgres", "server"])}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def empty_storage(tmp_path: Path) -> Iterator[list[str]]:
    """podman arguments for a brand-new, empty image storage (removed afterwards)."""
    runroot = Path(f"/tmp/cmr-{secrets.token_hex(4)}")  # podman wants it short (< 50 chars)
    args = ["--root", str(tmp_path / "storage"), "--runroot", str(runroot)]
    yield args
    drop_storage(tmp_path / "storage", runroot)


def test_publish_by_digest_then_pull_back_and_run(
    built: dict[str, BuildResult], registry: Registry, tmp_path: Path, empty_storage: list[str]
) -> None:
    out = tmp_path / "out"
    digestfile = out / "digests.txt"
    dest = f"{registry.host}/it"
    # Not --no-build: in a shared tree the sources may change after `built`; publish then
    # builds the new inputs itself, and the checks below follow what it published.
    result = cli(
        "image", "publish", dest, "postgres", "server", "--tag", "v1",
        "--digestfile", str(digestfile), "--no-tls-verify", "--json",
        "--records", str(tmp_path / "substitutes.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Each pushed digest is recorded against the image's input hash, with its image ID.
    records = json.loads((tmp_path / "substitutes.json").read_text())["images"]
    for image in json.loads(result.stdout)["images"]:
        target, digest = image["reference"].split("@")
        ((input_hash, pin),) = records[target].items()
        assert input_hash.startswith(image["source"].rsplit(":", 1)[-1])
        assert pin["digest"] == digest and pin["image_id"].startswith("sha256:")
    lines = digestfile.read_text().splitlines()
    assert [line.split("@")[0] for line in lines] == [f"{dest}/postgres", f"{dest}/server"]
    printed = json.loads(result.stdout)["images"]
    assert [i["reference"] for i in printed] == lines
    for line, image in zip(lines, printed, strict=True):
        repo, digest = line.split("@")
        assert digest.startswith("sha256:") and len(digest) == 71
        name = repo.rsplit("/", 1)[-1]
        hash_tag = image["source"].rsplit(":", 1)[-1]  # the local tag: the input hash
        assert image["tags"] == [hash_tag, "v1"]
        for ref in (f"{repo}:v1", f"{repo}:{hash_tag}", line):
            inspected = run("skopeo", "inspect", "--tls-verify=false", f"docker://{ref}")
            assert json.loads(inspected)["Digest"] == digest, ref
        # The SBOM published beside the digest file is the image's own, byte for byte.
        sbom = (out / f"{name}.spdx.json").read_bytes()
        assert sbom == cli("image", "sbom", name, "--image", image["source"]).stdout.encode()

    server = lines[1]
    podman = ["podman", *empty_storage]
    assert run(*podman, "images", "-q") == ""
    run(*podman, "pull", "-q", "--tls-verify=false", server)
    version = run(
        *podman, "run", "--rm", "--network=none",
        "--entrypoint", "/opt/venv/bin/codebase-mcp", server, "--version",
    )  # fmt: skip
    assert "0.1.0" in version


def spdx_packages(data: str) -> dict[str, str]:
    return {p["name"]: p["versionInfo"] for p in json.loads(data)["packages"]}


def test_sbom_lists_locked_versions_and_is_deterministic(
    built: dict[str, BuildResult], tmp_path: Path
) -> None:
    lock = load_lock(REPO)
    # --image: the refs built above, even if the shared tree's sources changed since.
    pg = ["image", "sbom", "postgres", "--image", built["postgres"].ref]
    first = cli(*pg, "-o", str(tmp_path / "a.json"))
    second = cli(*pg, "-o", str(tmp_path / "b.json"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    postgres = spdx_packages((tmp_path / "a.json").read_text())
    locked_pg = {p.name: p.version for p in lock.images["postgres"].debian.packages}
    for name in ("postgresql-17", "postgresql-17-pgvector"):
        assert postgres[name] == locked_pg[name]

    server_sbom = cli("image", "sbom", "server", "--image", built["server"].ref)
    assert server_sbom.returncode == 0, server_sbom.stderr
    server = spdx_packages(server_sbom.stdout)
    entry = lock.images["server"]
    assert entry.python is not None
    locked_py = {w.name.lower(): w.version for w in entry.python.wheels}
    assert server["python3"] == {p.name: p.version for p in entry.debian.packages}["python3"]
    assert server["asyncpg"] == locked_py["asyncpg"]
    assert server["fastmcp"] == locked_py["fastmcp"]
    doc = json.loads(server_sbom.stdout)
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) == len(entry.debian.packages) + len(locked_py) + 2
    used = set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", json.dumps(doc["packages"])))
    assert used == {e["licenseId"] for e in doc.get("hasExtractedLicensingInfos", [])}
    cyclonedx = cli(
        "image", "sbom", "server", "--image", built["server"].ref, "--format", "cyclonedx"
    )
    assert cyclonedx.returncode == 0, cyclonedx.stderr
    assert json.loads(cyclonedx.stdout)["bomFormat"] == "CycloneDX"


@pytest.fixture
def tampered(built: dict[str, BuildResult]) -> Iterator[str]:
    """The server image plus a Python distribution and a dpkg entry the lock does not have."""
    ref = f"localhost/codebase-mcp-test-tampered:{secrets.token_hex(4)}"
    ctr = run("buildah", "from", "--pull-never", built["server"].ref).strip()
    try:
        mount = Path(run("buildah", "mount", ctr).strip())
        site = next((mount / "opt/venv/lib").glob("python*/site-packages"))
        extra = site / "sneaky-1.0.dist-info"
        extra.mkdir()
        (extra / "METADATA").write_text("Metadata-Version: 2.1\nName: sneaky\nVersion: 1.0\n")
        with (mount / "var/lib/dpkg/status").open("a") as status:
            status.write(
                "\nPackage: netcat-extra\nStatus: install ok installed\nVersion: 9.9-1\n"
                "Architecture: amd64\n"
            )
        run("buildah", "commit", "-q", ctr, ref)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
    yield ref
    subprocess.run(["podman", "rmi", "-f", ref], capture_output=True, check=False)


def test_sbom_check_fails_for_a_package_not_in_the_lock(tampered: str, tmp_path: Path) -> None:
    result = cli("image", "sbom", "server", "--image", tampered, "-o", str(tmp_path / "s.json"))
    assert result.returncode == 41, result.stderr
    assert "sneaky 1.0 is installed but not locked" in result.stderr
    assert "netcat-extra 9.9-1 (amd64) is installed but not locked" in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_mounted_and_exported_contents_agree(built: dict[str, BuildResult]) -> None:
    """The rootless path (export, extract a few files) reads what the root path (mount) reads."""
    runner = Runner()
    ref = built["server"].ref
    with image_files(ref, runner, mount=True) as files:
        mounted = read_contents(files)
    with image_files(ref, runner, mount=False) as files:
        exported = read_contents(files)
    assert "Package: python3\n" in mounted.dpkg_status
    assert any(d.name == "fastmcp" for d in mounted.dists)
    assert exported == mounted
    assert [d.metadata for d in exported.dists] == [d.metadata for d in mounted.dists]
