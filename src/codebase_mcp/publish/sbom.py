"""SBOMs (SPDX 2.3 JSON, CycloneDX 1.5 JSON) from the lock, checked against the image.

Every package comes from the lock (name, version, arch, sha256, download URL);
licenses come from the image's own files. Before a document is written, the
image's dpkg status and installed dist-infos must match the lock exactly:
anything installed but not locked (or locked but missing) is an
:class:`SbomMismatch`. The bytes are deterministic: no wall-clock time (the
document's time is the image's ``created`` label = SOURCE_DATE_EPOCH), the
namespace and serial number derive from the image's input hash, keys and
packages are sorted.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from codebase_mcp import __version__
from codebase_mcp.builder.debian import installed_packages
from codebase_mcp.builder.lockfile import ImageLock
from codebase_mcp.errors import SbomMismatch
from codebase_mcp.publish import licenses
from codebase_mcp.publish.contents import ImageContents, normalize

Format = Literal["spdx", "cyclonedx"]
PROJECT = "codebase-mcp"
TOOL = f"codebase-mcp-{__version__}"
_ID_CHARS = str.maketrans(dict.fromkeys("_+~:/@ ", "-"))


@dataclass(frozen=True)
class Component:
    kind: Literal["deb", "pypi"]
    name: str
    version: str
    arch: str
    sha256: str | None  # None: the project itself, built from source into the image
    download: str
    license: str
    purl: str

    @property
    def spdx_id(self) -> str:
        suffix = f"-{self.arch}" if self.arch else ""
        raw = f"SPDXRef-{self.kind}-{self.name}{suffix}".translate(_ID_CHARS)
        return "".join(c if c.isalnum() or c in ".-" else "-" for c in raw)


@dataclass(frozen=True)
class Subject:
    """The image an SBOM describes, from its labels."""

    name: str
    input_hash: str
    created: str
    version: str
    licenses: str
    source: str
    revision: str

    @classmethod
    def from_labels(cls, name: str, labels: dict[str, str]) -> Subject:
        oci = "org.opencontainers.image."
        return cls(
            name=name,
            input_hash=labels.get("io.codebase-mcp.input-hash", ""),
            created=labels.get(f"{oci}created", "1970-01-01T00:00:00Z"),
            version=labels.get(f"{oci}version", __version__),
            licenses=labels.get(f"{oci}licenses", licenses.NOASSERTION),
            source=labels.get(f"{oci}source", ""),
            revision=labels.get(f"{oci}revision", ""),
        )

    @property
    def title(self) -> str:
        return f"codebase-mcp-{self.name}"

    @property
    def namespace(self) -> str:
        return f"https://spdx.org/spdxdocs/{self.title}-{self.input_hash}"


# --- the check ------------------------------------------------------------------------
def expected_python(entry: ImageLock, project_version: str | None) -> dict[str, str]:
    """Normalised name → version of every distribution the lock installs in the venv."""
    wanted: dict[str, str] = {}
    if entry.python is not None:
        for wheel in [*entry.python.wheels, *entry.python.no_deps]:
            wanted[normalize(wheel.name)] = wheel.version
    if project_version is not None:
        wanted[PROJECT] = project_version
    return wanted


def check(
    name: str, entry: ImageLock, contents: ImageContents, project_version: str | None
) -> None:
    """SbomMismatch unless the image holds exactly the locked packages."""
    problems: list[str] = []
    installed = set(installed_packages(contents.dpkg_status))
    locked = {(p.name, p.version, p.arch) for p in entry.debian.packages}
    if not contents.dpkg_status:
        problems.append("the image has no dpkg status (/var/lib/dpkg/status)")
    for pkg, version, arch in sorted(installed - locked):
        problems.append(f"Debian package {pkg} {version} ({arch}) is installed but not locked")
    for pkg, version, arch in sorted(locked - installed):
        problems.append(f"Debian package {pkg} {version} ({arch}) is locked but not installed")
    have = {normalize(d.name): d.version for d in contents.dists}
    want = expected_python(entry, project_version)
    for dist in sorted(set(have) | set(want)):
        if dist not in want:
            problems.append(f"Python package {dist} {have[dist]} is installed but not locked")
        elif dist not in have:
            problems.append(f"Python package {dist} {want[dist]} is locked but not installed")
        elif have[dist] != want[dist]:
            problems.append(
                f"Python package {dist} is {have[dist]} in the image but {want[dist]} in the lock"
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SbomMismatch(
            f"image '{name}' does not match build/lock.json:\n  {shown}{more}",
            hint=f"rebuild it from the lock (`codebase-mcp image build --force {name}`); "
            "if the lock changed, `codebase-mcp image lock` first",
        )


# --- components -----------------------------------------------------------------------
def components(
    entry: ImageLock, contents: ImageContents, project_version: str | None, source: str
) -> list[Component]:
    result = []
    suite = entry.debian.suite
    for p in entry.debian.packages:
        result.append(
            Component(
                kind="deb",
                name=p.name,
                version=p.version,
                arch=p.arch,
                sha256=p.sha256,
                download=p.snapshot_url or p.url,
                license=licenses.debian_expression(contents.copyrights.get(p.name)),
                purl=f"pkg:deb/debian/{p.name}@{quote(p.version, safe='')}"
                f"?arch={p.arch}&distro={suite}",
            )
        )
    metadata = {normalize(d.name): d.metadata for d in contents.dists}
    wheels = [*entry.python.wheels, *entry.python.no_deps] if entry.python else []
    for w in wheels:
        key = normalize(w.name)
        result.append(
            Component(
                kind="pypi",
                name=key,
                version=w.version,
                arch="",
                sha256=w.sha256,
                download=w.url,
                license=licenses.python_expression(metadata.get(key, {})),
                purl=f"pkg:pypi/{key}@{quote(w.version, safe='')}",
            )
        )
    if project_version is not None:
        result.append(
            Component(
                kind="pypi",
                name=PROJECT,
                version=project_version,
                arch="",
                sha256=None,
                download=source or licenses.NOASSERTION,
                license=licenses.python_expression(metadata.get(PROJECT, {})),
                purl=f"pkg:pypi/{PROJECT}@{quote(project_version, safe='')}",
            )
        )
    return sorted(result, key=lambda c: (c.kind, c.name, c.arch))


# --- documents ------------------------------------------------------------------------
def spdx_document(subject: Subject, comps: list[Component]) -> dict[str, Any]:
    image_id = "SPDXRef-image"
    image: dict[str, Any] = {
        "SPDXID": image_id,
        "name": subject.title,
        "versionInfo": subject.version,
        "primaryPackagePurpose": "CONTAINER",
        "downloadLocation": subject.source or licenses.NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": licenses.NOASSERTION,
        "licenseDeclared": subject.licenses,
        "copyrightText": licenses.NOASSERTION,
        "comment": f"input hash {subject.input_hash}"
        + (f"; source revision {subject.revision}" if subject.revision else ""),
    }
    packages = [image]
    refs: set[str] = set(licenses.license_refs(subject.licenses))
    ids = unique_ids(comps)
    for c in comps:
        package: dict[str, Any] = {
            "SPDXID": ids[c],
            "name": c.name,
            "versionInfo": c.version,
            "primaryPackagePurpose": "LIBRARY",
            "downloadLocation": c.download,
            "filesAnalyzed": False,
            "licenseConcluded": licenses.NOASSERTION,
            "licenseDeclared": c.license,
            "copyrightText": licenses.NOASSERTION,
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": c.purl,
                }
            ],
        }
        if c.sha256:
            package["checksums"] = [{"algorithm": "SHA256", "checksumValue": c.sha256}]
        refs.update(licenses.license_refs(c.license))
        packages.append(package)
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": image_id,
        }
    ] + [
        {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": ids[c]}
        for c in comps
    ]
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{subject.title}-{subject.input_hash[:32]}",
        "documentNamespace": subject.namespace,
        "creationInfo": {"created": subject.created, "creators": [f"Tool: {TOOL}"]},
        "documentDescribes": [image_id],
        "packages": packages,
        "relationships": relationships,
    }
    if refs:
        document["hasExtractedLicensingInfos"] = [
            {
                "licenseId": ref,
                "name": ref.removeprefix("LicenseRef-"),
                "extractedText": f"License named '{ref.removeprefix('LicenseRef-')}' by a "
                "package's own metadata in the image (Debian: /usr/share/doc/PKG/copyright, "
                "where the full text is); it has no SPDX license list id.",
            }
            for ref in sorted(refs)
        ]
    return document


def unique_ids(comps: list[Component]) -> dict[Component, str]:
    """SPDX ids, made unique when two names only differ in characters ids cannot hold."""
    seen: dict[str, int] = {}
    ids = {}
    for c in comps:
        base = c.spdx_id
        seen[base] = seen.get(base, 0) + 1
        ids[c] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return ids


def cyclonedx_document(subject: Subject, comps: list[Component]) -> dict[str, Any]:
    def license_field(expr: str) -> list[dict[str, Any]]:
        if expr == licenses.NOASSERTION:
            return []
        if " " not in expr and not expr.startswith("LicenseRef-"):
            return [{"license": {"id": expr}}]
        return [{"expression": expr}]

    components_out = []
    for c in comps:
        item: dict[str, Any] = {
            "type": "library",
            "bom-ref": c.purl,
            "name": c.name,
            "version": c.version,
            "purl": c.purl,
            "externalReferences": [{"type": "distribution", "url": c.download}],
        }
        if c.sha256:
            item["hashes"] = [{"alg": "SHA-256", "content": c.sha256}]
        if lic := license_field(c.license):
            item["licenses"] = lic
        components_out.append(item)
    image: dict[str, Any] = {
        "type": "container",
        "bom-ref": "image",
        "name": subject.title,
        "version": subject.version,
        "properties": [{"name": "io.codebase-mcp.input-hash", "value": subject.input_hash}],
    }
    if lic := license_field(subject.licenses):
        image["licenses"] = lic
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, subject.namespace)}",
        "version": 1,
        "metadata": {
            "timestamp": subject.created,
            "tools": {
                "components": [{"type": "application", "name": PROJECT, "version": __version__}]
            },
            "component": image,
        },
        "components": components_out,
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in components_out]}],
    }


def render(
    fmt: Format,
    subject: Subject,
    entry: ImageLock,
    contents: ImageContents,
    project_version: str | None,
) -> bytes:
    """Check, then the document's bytes (sorted keys, 2-space indent, trailing newline)."""
    check(subject.name, entry, contents, project_version)
    comps = components(entry, contents, project_version, subject.source)
    doc = spdx_document(subject, comps) if fmt == "spdx" else cyclonedx_document(subject, comps)
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
