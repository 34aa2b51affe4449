"""Plan a build: render the Containerfile, hash the inputs, lay out the context, argv for buildah.

Everything here is pure (no processes): tests check plans without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from codebase_mcp import __version__
from codebase_mcp.builder.definitions import ImageDefinition, canonical_json, sha256_text
from codebase_mcp.builder.lockfile import ImageLock, LockedWheel
from codebase_mcp.errors import TemplateError

REF_PREFIX = "localhost/codebase-mcp-"
HASH_LABEL = "io.codebase-mcp.input-hash"
# Bump when the builder changes how images are made: it is part of every input hash.
BUILDER_FORMAT = 3


@dataclass(frozen=True)
class PythonContext:
    """Template variables for images with Python (paths inside the build context)."""

    venv: str
    pip_wheel: str
    requirements: str = "python/requirements.txt"
    app_wheel: str | None = None
    # buildah's layer cache keys a RUN step by its text and parent layer, not by
    # what its bind mounts hold: these hashes in the RUN text make it see changes.
    deps_key: str = ""
    app_key: str = ""


@dataclass(frozen=True)
class ImagePlan:
    name: str
    ref: str
    input_hash: str
    containerfile: str
    labels: dict[str, str] = field(default_factory=dict)
    project_digest: str | None = None  # hash of the project files copied in, if any
    rootfs_key: str = ""  # store key of the root filesystem tarball

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]


def render_containerfile(
    definition: ImageDefinition, image_dir: Path, variables: dict[str, Any]
) -> str:
    env = jinja2.Environment(
        # The image's own folder first, then partials shared by several images.
        loader=jinja2.FileSystemLoader([str(image_dir), str(image_dir.parent / "_shared")]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - renders a Containerfile, not HTML
    )
    try:
        template = env.get_template(definition.template)
        return template.render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"image '{definition.name}': template {image_dir / definition.template} not found"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{exc.filename or definition.template}:{exc.lineno}: template syntax error: "
            f"{exc.message}"
        ) from exc
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        raise TemplateError(
            f"{image_dir / definition.template}:{line}: {exc.message}",
            hint="the variables a template can use are listed in docs/builder.md",
        ) from exc


def _template_line(exc: BaseException) -> str:
    """The template line of a render-time error, read from the traceback."""
    tb = exc.__traceback__
    line = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


def template_variables(
    definition: ImageDefinition, entry: ImageLock, epoch: int, python: PythonContext | None
) -> dict[str, Any]:
    return {
        "image": definition,
        "config": definition.config,
        "debian": entry.debian,
        "python": python,
        "source_date_epoch": epoch,
        "context_files": sorted(definition.context_files),
    }


def requirements_text(wheels: list[LockedWheel]) -> str:
    """pip requirements pinning every wheel by version and hash (installed with --no-deps)."""
    lines = [
        f"{w.name}=={w.version} --hash=sha256:{w.sha256}"
        for w in sorted(wheels, key=lambda w: w.name)
    ]
    return "\n".join(lines) + "\n"


def input_hash(
    *,
    provenance: dict[str, str],
    rootfs: str,
    definition: ImageDefinition,
    containerfile: str,
    entry: ImageLock,
    epoch: int,
    project_digest: str | None,
    context_digest: str,
) -> str:
    """The content address of an image: everything that goes into it, and nothing else."""
    payload = {
        "builder": [__version__, BUILDER_FORMAT],
        "containerfile": containerfile,
        "rootfs": rootfs,
        "provenance": provenance,
        "lock": entry.model_dump(mode="json", exclude={"resolved_from"}),
        "epoch": epoch,
        "project": project_digest,
        "context": context_digest,
        "config": definition.config.model_dump(mode="json"),
    }
    return sha256_text(canonical_json(payload))


def image_ref(name: str, digest: str) -> str:
    return f"{REF_PREFIX}{name}:{digest[:32]}"


def oci_labels(
    definition: ImageDefinition, digest: str, epoch: int, provenance: dict[str, str] | None = None
) -> dict[str, str]:
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": f"codebase-mcp-{definition.name}",
        "org.opencontainers.image.description": definition.description,
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "MIT",
        HASH_LABEL: digest,
    }
    for key in ("revision", "source"):
        if provenance and provenance.get(key):
            labels[f"org.opencontainers.image.{key}"] = provenance[key]
    labels.update(definition.config.labels)
    return dict(sorted(labels.items()))


def buildah_argv(
    plan: ImagePlan,
    context: Path,
    epoch: int,
    *,
    storage: list[str] | None = None,
    no_cache: bool = False,
) -> list[str]:
    argv = [
        "buildah",
        *(storage or []),
        "bud",
        "--format",
        "oci",
        "--network",
        "none",
        "--pull-never",
        "--layers",
        "--timestamp",
        str(epoch),
        "--identity-label=false",
        # buildah 1.28 with --layers points base.digest at a cached intermediate
        # image (buildah#4657), which differs between builds; FROM scratch has no base.
        "--annotation",
        "org.opencontainers.image.base.digest=",
        "--annotation",
        "org.opencontainers.image.base.name=",
        # With --layers, history comments name the cached intermediate images
        # ("FROM 1a2b…"), whose IDs differ between builds that RUN something.
        "--omit-history",
        "--file",
        str(context / "Containerfile"),
        "--tag",
        plan.ref,
    ]
    if no_cache:
        argv.append("--no-cache")
    for key, value in plan.labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, str(context)]
