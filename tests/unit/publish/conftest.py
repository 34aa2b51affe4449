"""Small, hand-made locks and image contents for the publishing unit tests."""

from __future__ import annotations

import pytest

from codebase_mcp.builder.lockfile import DebianLock, DebPackage, ImageLock, LockedWheel, PythonLock
from codebase_mcp.publish.contents import Dist, ImageContents

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: lib/*
Copyright: 2021 Other
License: Expat or BSD-3-clause

License: GPL-2+
 The full text is in /usr/share/common-licenses/GPL-2.
"""


def deb(name: str, version: str, sha: str) -> DebPackage:
    return DebPackage(
        name=name,
        version=version,
        arch="amd64",
        sha256=sha * 64,
        size=100,
        filename=f"pool/main/x/{name}_{version}_amd64.deb",
        url=f"http://deb.debian.org/debian/pool/main/x/{name}_{version}_amd64.deb",
        snapshot_url=f"https://snapshot.debian.org/archive/debian/20260101T000000Z/pool/{name}.deb",
    )


def wheel(name: str, version: str, sha: str) -> LockedWheel:
    return LockedWheel(
        name=name,
        version=version,
        filename=f"{name}-{version}-py3-none-any.whl",
        url=f"https://files.pythonhosted.org/{name}-{version}-py3-none-any.whl",
        sha256=sha * 64,
    )


def status_text(packages: list[tuple[str, str]]) -> str:
    return "\n".join(
        f"Package: {n}\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64\n"
        for n, v in packages
    )


@pytest.fixture
def entry() -> ImageLock:
    return ImageLock(
        resolved_from={},
        debian=DebianLock(
            suite="trixie",
            mirror="http://deb.debian.org/debian",
            snapshot="20260101T000000Z",
            packages=[deb("python3", "3.13.5-1", "a"), deb("libc6", "2.41-12", "b")],
        ),
        python=PythonLock(
            version="3.13",
            platform="manylinux_2_41_x86_64",
            wheels=[wheel("asyncpg", "0.32.0", "c"), wheel("Typing_Extensions", "4.15.0", "d")],
            no_deps=[],
            tools=[wheel("pip", "25.3", "e")],
        ),
    )


@pytest.fixture
def contents() -> ImageContents:
    return ImageContents(
        dpkg_status=status_text([("libc6", "2.41-12"), ("python3", "3.13.5-1")]),
        copyrights={"libc6": DEP5, "python3": "Not a machine-readable file.\n"},
        dists=[
            Dist("asyncpg", "0.32.0", {"License-Expression": "Apache-2.0"}),
            Dist("codebase_mcp", "0.1.0", {"License-Expression": "MIT"}),
            Dist("typing_extensions", "4.15.0", {"License": "PSF"}),
        ],
    )
