"""License names → SPDX license expressions (pure).

Debian packages: the short names in the machine-readable copyright file
(``/usr/share/doc/PKG/copyright``, DEP-5). Debian's names are not SPDX ids
(``GPL-2+``, ``Expat``, ``public-domain``): known ones are mapped, the rest
become ``LicenseRef-…`` ids that the SBOM declares. A package's declared
license is every license its copyright file names, joined with AND: a
conservative summary (the file lists per-file licenses and ``or`` choices,
an SBOM package has one field), never a legal conclusion.
"""

from __future__ import annotations

import re

from codebase_mcp.builder.debian import stanzas

NOASSERTION = "NOASSERTION"

# Debian short names (lowercase) → SPDX ids. "+" means "or later" and is handled below.
_DEBIAN_TO_SPDX: dict[str, str] = {
    "agpl-3": "AGPL-3.0-only",
    "apache-2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "artistic": "Artistic-1.0",
    "artistic-2.0": "Artistic-2.0",
    "artistic-2": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "bsl-1.0": "BSL-1.0",
    "cc0-1.0": "CC0-1.0",
    "cc0": "CC0-1.0",
    "curl": "curl",
    "expat": "MIT",
    "mit": "MIT",
    "fsfap": "FSFAP",
    "fsful": "FSFUL",
    "fsfullr": "FSFULLR",
    "gfdl-1.2": "GFDL-1.2-only",
    "gfdl-1.3": "GFDL-1.3-only",
    "gpl-1": "GPL-1.0-only",
    "gpl-2": "GPL-2.0-only",
    "gpl-3": "GPL-3.0-only",
    "isc": "ISC",
    "lgpl-2": "LGPL-2.0-only",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-3": "LGPL-3.0-only",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "openssl": "OpenSSL",
    "postgresql": "PostgreSQL",
    "psf-2": "PSF-2.0",
    "python": "Python-2.0",
    "python-2.0": "Python-2.0",
    "unicode-dfs-2016": "Unicode-DFS-2016",
    "x11": "X11",
    "zlib": "Zlib",
    "0bsd": "0BSD",
}
# Families whose "+" becomes "-or-later" (and whose plain form is "-only").
_OR_LATER = re.compile(r"^((?:a|l)?gpl|gfdl)-(\d(?:\.\d)?)\+$")
# SPDX ids that Python packaging metadata uses in the plain `License:` field.
_SPDX_IDS = {v.lower(): v for v in _DEBIAN_TO_SPDX.values()} | {
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd": "BSD-3-Clause",
    "mit license": "MIT",
    "psf": "PSF-2.0",
}
_SPLIT = re.compile(r",|\s+(?:and|or)\s+", re.IGNORECASE)
_REF_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


def license_ref(name: str) -> str:
    """A ``LicenseRef-`` id for a name SPDX does not know (letters, digits, '.', '-')."""
    readable = name.replace("+", "-or-later")
    return "LicenseRef-" + (_REF_CHARS.sub("-", readable).strip("-") or "unknown")


def debian_to_spdx(name: str) -> str:
    key = name.strip().lower()
    later = _OR_LATER.match(key)
    if later:
        family, version = later.groups()
        version = version if "." in version else f"{version}.0"
        return f"{family.upper()}-{version}-or-later"
    if key in _DEBIAN_TO_SPDX:
        return _DEBIAN_TO_SPDX[key]
    return license_ref(name.strip())


def is_machine_readable(copyright_text: str) -> bool:
    first = next(stanzas(copyright_text), {})
    return "copyright-format" in first.get("Format", "")


def debian_license_names(copyright_text: str) -> list[str]:
    """The license short names a DEP-5 copyright file names (empty when not DEP-5)."""
    if not is_machine_readable(copyright_text):
        return []
    names: set[str] = set()
    for stanza in stanzas(copyright_text):
        field = stanza.get("License", "").split("\n", 1)[0].strip()
        for raw in _SPLIT.split(field):
            token = raw.strip().strip("()")
            if token:
                names.add(token)
    return sorted(names)


def expression(ids: list[str]) -> str:
    """SPDX ids joined with AND (sorted, unique); NOASSERTION when there are none."""
    unique = sorted(set(ids))
    return " AND ".join(unique) if unique else NOASSERTION


def debian_expression(copyright_text: str | None) -> str:
    if copyright_text is None:
        return NOASSERTION
    return expression([debian_to_spdx(n) for n in debian_license_names(copyright_text)])


def python_expression(metadata: dict[str, str]) -> str:
    """From a dist-info METADATA: License-Expression (PEP 639), else a plain SPDX id in License."""
    declared = metadata.get("License-Expression", "").strip()
    if declared:
        return declared
    plain = metadata.get("License", "").strip().lower()
    return _SPDX_IDS.get(plain, NOASSERTION)


def license_refs(expr: str) -> list[str]:
    return sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", expr)))
