"""A miniature project checkout (definitions, templates, lock) for planning tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder.definitions import load_definition, load_pyproject
from codebase_mcp.builder.lockfile import (
    DebianLock,
    DebPackage,
    ImageLock,
    Lock,
    LockedWheel,
    PythonLock,
    write_lock,
)

PYPROJECT = """
[project]
name = "demo"
version = "0.1.0"
dependencies = ["click>=8"]
[project.optional-dependencies]
server = ["asyncpg>=0.29"]
"""

IMAGE_TOML = """
description = "demo image"
[debian]
packages = ["python3"]
[python]
extras = ["server"]
[project]
files = ["pyproject.toml", "src/**"]
[config]
user = "10001:10001"
entrypoint = ["/opt/venv/bin/demo"]
[config.env]
LANG = "C.UTF-8"
[files]
"/usr/local/bin/entry" = "entry.sh"
"""


def deb(name: str, version: str = "1.0") -> DebPackage:
    filename = f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb"
    return DebPackage(
        name=name,
        version=version,
        arch="amd64",
        sha256=f"{hash(name) & 0xFFFF:064x}",
        size=100,
        filename=filename,
        url=f"http://deb.example/debian/{filename}",
        snapshot_url=f"https://snapshot.example/{filename}",
    )


def wheel(name: str, version: str = "1.0") -> LockedWheel:
    filename = f"{name}-{version}-py3-none-any.whl"
    return LockedWheel(
        name=name,
        version=version,
        filename=filename,
        url=f"https://files.example/{filename}",
        sha256="ab" * 32,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "src" / "demo").mkdir(parents=True)
    (tmp_path / "src" / "demo" / "__init__.py").write_text("VALUE = 1\n")
    image_dir = tmp_path / "images" / "demo"
    image_dir.mkdir(parents=True)
    (image_dir / "image.toml").write_text(IMAGE_TOML)
    (image_dir / "entry.sh").write_text("#!/bin/sh\n")
    definition = load_definition(tmp_path, "demo")
    entry = ImageLock(
        resolved_from=definition.resolution_inputs(load_pyproject(tmp_path)),
        debian=DebianLock(
            suite="trixie",
            mirror="http://deb.example/debian",
            snapshot="20260101T000000Z",
            packages=[deb("python3"), deb("libc6")],
        ),
        python=PythonLock(
            version="3.13",
            platform="manylinux_2_41_x86_64",
            wheels=[wheel("asyncpg"), wheel("click")],
            no_deps=[],
            tools=[wheel("pip", "26.0")],
        ),
    )
    write_lock(tmp_path, Lock(source_date_epoch=1767225600, images={"demo": entry}))
    return tmp_path
