"""Find (or build) the local image for a name, and make its SBOM."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.builder.definitions import load_definition, load_pyproject
from codebase_mcp.builder.lockfile import load_lock
from codebase_mcp.errors import ImageNotBuilt
from codebase_mcp.proc import Runner
from codebase_mcp.publish import sbom
from codebase_mcp.publish.contents import image_files, read_contents


@dataclass(frozen=True)
class LocalImage:
    name: str
    ref: str
    labels: dict[str, str]

    @property
    def input_hash(self) -> str:
        return self.labels.get("io.codebase-mcp.input-hash", "")


def labels_of(ref: str, runner: Runner, storage_args: tuple[str, ...] = ()) -> dict[str, str]:
    out = runner.run(["podman", *storage_args, "image", "inspect", ref]).stdout
    labels = json.loads(out)[0].get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def local_image(
    root: Path,
    name: str,
    *,
    runner: Runner,
    ref: str | None = None,
    build: bool = False,
    store: Path | None = None,
) -> LocalImage:
    """The image for ``name``: ``ref`` if given, else the one the current inputs hash to.

    With ``build``, a missing image is built first (the builder fetches what the
    store lacks); without, a missing image is :class:`ImageNotBuilt`.
    """
    from codebase_mcp.builder.build import Builder

    if ref is None:
        builder = Builder.create(root, store, runner)
        ref = builder.plan(name)[2].ref
        if not builder.image_exists(ref):
            if not build:
                raise ImageNotBuilt(
                    f"image '{name}' is not built for the current inputs ({ref})",
                    hint=f"run `codebase-mcp image build {name}` first (it needs the store "
                    "filled, or the Debian mirror and PyPI to fill it)",
                )
            ui.info(f"==> {name}: not built yet, building {ref}")
            (result,) = builder.build([name])
            ref = result.ref
    elif runner.run(["podman", "image", "exists", ref], check=False).returncode != 0:
        raise ImageNotBuilt(f"no local image {ref}", hint="check the ref with `podman images`")
    return LocalImage(name=name, ref=ref, labels=labels_of(ref, runner))


def sbom_bytes(root: Path, image: LocalImage, fmt: sbom.Format, runner: Runner) -> bytes:
    """The image's SBOM, after checking its contents against the lock (SbomMismatch)."""
    definition = load_definition(root, image.name)
    entry = load_lock(root).image(image.name)
    project_version = (
        str(load_pyproject(root)["project"]["version"]) if definition.project is not None else None
    )
    venv = definition.python.venv if definition.python is not None else None
    with image_files(image.ref, runner) as files:
        contents = read_contents(files, venv)
    subject = sbom.Subject.from_labels(image.name, image.labels)
    return sbom.render(fmt, subject, entry, contents, project_version)
