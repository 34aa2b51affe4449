from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from codebase_mcp.builder.lockfile import ImageLock
from codebase_mcp.errors import SbomMismatch
from codebase_mcp.publish import sbom
from codebase_mcp.publish.contents import Dist, ImageContents
from tests.unit.publish.conftest import status_text

LABELS = {
    "io.codebase-mcp.input-hash": "f" * 64,
    "org.opencontainers.image.created": "2026-11-21T09:15:44Z",
    "org.opencontainers.image.version": "0.1.0",
    "org.opencontainers.image.licenses": "MIT",
    "org.opencontainers.image.source": "https://example.org/codebase-mcp.git",
    "org.opencontainers.image.revision": "0123abcd",
}
SUBJECT = sbom.Subject.from_labels("server", LABELS)


def spdx(entry: ImageLock, contents: ImageContents) -> dict[str, object]:
    data: dict[str, object] = json.loads(sbom.render("spdx", SUBJECT, entry, contents, "0.1.0"))
    return data


def packages(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    items = doc["packages"]
    assert isinstance(items, list)
    return {str(p["name"]): p for p in items}


def test_lists_locked_debian_and_python_packages_with_hashes_and_licenses(
    entry: ImageLock, contents: ImageContents
) -> None:
    pkgs = packages(spdx(entry, contents))
    assert pkgs["libc6"]["versionInfo"] == "2.41-12"
    assert pkgs["libc6"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "b" * 64}]
    assert pkgs["libc6"]["licenseDeclared"] == "BSD-3-Clause AND GPL-2.0-or-later AND MIT"
    assert pkgs["python3"]["licenseDeclared"] == "NOASSERTION"
    assert pkgs["asyncpg"]["licenseDeclared"] == "Apache-2.0"
    assert pkgs["typing-extensions"]["licenseDeclared"] == "PSF-2.0"
    assert pkgs["typing-extensions"]["externalRefs"] == [
        {
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": "pkg:pypi/typing-extensions@4.15.0",
        }
    ]
    # The project is in the image, built from source: no archive hash to give.
    assert "checksums" not in pkgs["codebase-mcp"]
    assert pkgs["codebase-mcp"]["downloadLocation"] == LABELS["org.opencontainers.image.source"]
    assert "pip" not in pkgs  # a build tool, mounted at build time, not installed


def test_document_is_valid_spdx_shape_and_deterministic(
    entry: ImageLock, contents: ImageContents
) -> None:
    first = sbom.render("spdx", SUBJECT, entry, contents, "0.1.0")
    # Equal but separate inputs: nothing in the bytes depends on identity or time.
    second = sbom.render("spdx", SUBJECT, entry.model_copy(), replace(contents), "0.1.0")
    assert first == second
    doc = json.loads(first)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["dataLicense"] == "CC0-1.0"
    assert doc["creationInfo"]["created"] == LABELS["org.opencontainers.image.created"]
    assert doc["documentNamespace"].endswith("f" * 64)
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids)
    contained = {r["relatedSpdxElement"] for r in doc["relationships"][1:]}
    assert contained == set(ids) - {"SPDXRef-image"}


def test_every_license_ref_is_declared(entry: ImageLock, contents: ImageContents) -> None:
    odd = replace(contents, copyrights={**contents.copyrights, "libc6": DEP5_ODD})
    doc = spdx(entry, odd)
    used = set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", json.dumps(doc["packages"])))
    assert used == {"LicenseRef-public-domain"}
    declared = {e["licenseId"] for e in doc["hasExtractedLicensingInfos"]}  # type: ignore[attr-defined]
    assert declared == used


DEP5_ODD = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
    "Files: *\nLicense: public-domain\n"
)


def test_cyclonedx_document(entry: ImageLock, contents: ImageContents) -> None:
    data = sbom.render("cyclonedx", SUBJECT, entry, contents, "0.1.0")
    assert data == sbom.render("cyclonedx", SUBJECT, entry, contents, "0.1.0")
    doc = json.loads(data)
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.5"
    assert doc["metadata"]["timestamp"] == LABELS["org.opencontainers.image.created"]
    by_name = {c["name"]: c for c in doc["components"]}
    assert by_name["asyncpg"]["hashes"] == [{"alg": "SHA-256", "content": "c" * 64}]
    assert by_name["asyncpg"]["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert by_name["libc6"]["licenses"] == [
        {"expression": "BSD-3-Clause AND GPL-2.0-or-later AND MIT"}
    ]
    assert by_name["libc6"]["purl"] == "pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=trixie"


def test_package_installed_but_not_locked_fails(entry: ImageLock, contents: ImageContents) -> None:
    extra = replace(
        contents,
        dpkg_status=status_text([("libc6", "2.41-12"), ("python3", "3.13.5-1"), ("curl", "8.0")]),
    )
    with pytest.raises(SbomMismatch) as err:
        sbom.render("spdx", SUBJECT, entry, extra, "0.1.0")
    assert "curl 8.0 (amd64) is installed but not locked" in str(err.value)
    assert err.value.exit_code == 41


def test_python_dist_installed_but_not_locked_fails(
    entry: ImageLock, contents: ImageContents
) -> None:
    extra = replace(contents, dists=[*contents.dists, Dist("requests", "2.32.0")])
    with pytest.raises(SbomMismatch, match="requests 2.32.0 is installed but not locked"):
        sbom.check("server", entry, extra, "0.1.0")


def test_missing_and_different_versions_fail(entry: ImageLock, contents: ImageContents) -> None:
    changed = replace(
        contents,
        dpkg_status=status_text([("python3", "3.13.5-1")]),
        dists=[Dist("asyncpg", "0.31.0"), Dist("codebase-mcp", "0.1.0")],
    )
    with pytest.raises(SbomMismatch) as err:
        sbom.check("server", entry, changed, "0.1.0")
    text = str(err.value)
    assert "libc6 2.41-12 (amd64) is locked but not installed" in text
    assert "asyncpg is 0.31.0 in the image but 0.32.0 in the lock" in text
    assert "typing-extensions 4.15.0 is locked but not installed" in text


def test_image_without_dpkg_status_fails(entry: ImageLock, contents: ImageContents) -> None:
    with pytest.raises(SbomMismatch, match="no dpkg status"):
        sbom.check("server", entry, replace(contents, dpkg_status=""), "0.1.0")


def test_names_that_map_to_the_same_spdx_id_stay_distinct() -> None:
    def comp(name: str) -> sbom.Component:
        return sbom.Component("deb", name, "1", "amd64", "a" * 64, "u", "MIT", f"pkg:deb/{name}")

    ids = sbom.unique_ids([comp("libstdc++6"), comp("libstdc--6"), comp("libstdc__6")])
    assert list(ids.values()) == [
        "SPDXRef-deb-libstdc--6-amd64",
        "SPDXRef-deb-libstdc--6-amd64-2",
        "SPDXRef-deb-libstdc--6-amd64-3",
    ]
