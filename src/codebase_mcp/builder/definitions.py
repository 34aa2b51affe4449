"""Image definitions: each ``images/<name>/image.toml`` declares an image's inputs.

The builder is generic: everything image-specific (Debian packages, Python
extras, project files, files from the image's folder, runtime config) is data
in these files, from which the builder derives the image's layers (see
``builder/plan.py``). Only directories that contain an ``image.toml`` are
images (``images/pod`` holds pod templates, for instance).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codebase_mcp.errors import DefinitionError, UnknownImage

DEFINITION_FILE = "image.toml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DebianInputs(Strict):
    """The root filesystem: a Debian suite, an mmdebstrap variant and packages."""

    suite: str = "trixie"
    mirror: str = "http://deb.debian.org/debian"
    variant: Literal["essential", "required", "minbase", "buildd", "important", "standard"] = (
        "essential"
    )
    packages: list[str] = Field(min_length=1)
    # dpkg path filters added to the builder's defaults (docs, man pages, locales).
    path_excludes: list[str] = []
    path_includes: list[str] = []
    # Shell run by mmdebstrap with the chroot as "$1" (see mmdebstrap(1) hooks).
    essential_hooks: list[str] = []
    customize_hooks: list[str] = []


class PythonInputs(Strict):
    """Python wheels for the image's interpreter, from the project's dependency groups."""

    version: str = "3.13"
    platform: str = "manylinux_2_41_x86_64"
    extras: list[str] = []
    # Requirements installed without their dependencies (e.g. a model-weights
    # package whose declared dependencies the image does not want).
    no_deps: list[str] = []
    venv: str = "/opt/venv"


class ProjectInputs(Strict):
    """Which project files go into the image (as a wheel built from them)."""

    files: list[str] = ["pyproject.toml", "README.md", "src/codebase_mcp/**", "migrations/**"]


class RuntimeConfig(Strict):
    user: str | None = None
    workdir: str | None = None
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    expose: list[int] = []
    stop_signal: str | None = None
    volumes: list[str] = []
    labels: dict[str, str] = {}


class ImageDefinition(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str
    debian: DebianInputs
    python: PythonInputs | None = None
    project: ProjectInputs | None = None
    # Files from the image's own folder, by their path in the image (the last layer).
    files: dict[str, str] = {}
    config: RuntimeConfig = RuntimeConfig()

    def resolution_inputs(self, pyproject: dict[str, Any]) -> dict[str, Any]:
        """What the lock's resolution depends on: a change here makes the lock stale."""
        inputs: dict[str, Any] = {
            "debian": {
                "suite": self.debian.suite,
                "mirror": self.debian.mirror,
                "variant": self.debian.variant,
                "packages": sorted(self.debian.packages),
            }
        }
        if self.python is not None:
            inputs["python"] = {
                "version": self.python.version,
                "platform": self.python.platform,
                "requirements": python_requirements(pyproject, self.python.extras),
                "no_deps": sorted(self.python.no_deps),
            }
        return inputs


def python_requirements(pyproject: dict[str, Any], extras: list[str]) -> list[str]:
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in optional:
            raise DefinitionError(
                f"image asks for Python dependency group '{extra}', which pyproject.toml lacks",
                hint=f"groups defined: {', '.join(sorted(optional)) or 'none'}",
            )
        reqs += optional[extra]
    return sorted(set(reqs))


def images_dir(root: Path) -> Path:
    return root / "images"


def image_names(root: Path) -> list[str]:
    base = images_dir(root)
    if not base.is_dir():
        return []
    return sorted(p.parent.name for p in base.glob(f"*/{DEFINITION_FILE}"))


def load_definition(root: Path, name: str) -> ImageDefinition:
    path = images_dir(root) / name / DEFINITION_FILE
    if not path.is_file():
        known = ", ".join(image_names(root)) or "none"
        raise UnknownImage(
            f"no image named '{name}'", hint=f"images defined under images/: {known}"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{path}: invalid TOML: {exc}") from exc
    data.setdefault("name", name)
    try:
        definition = ImageDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(
            f"{path} is invalid:\n{exc}", hint="see docs/builder.md for the fields"
        ) from exc
    if definition.name != name:
        raise DefinitionError(f"{path}: name '{definition.name}' differs from its folder '{name}'")
    return definition


def load_definitions(root: Path, names: list[str] | None = None) -> list[ImageDefinition]:
    return [load_definition(root, n) for n in (names or image_names(root))]


def load_pyproject(root: Path) -> dict[str, Any]:
    return tomllib.loads((root / "pyproject.toml").read_text())


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
