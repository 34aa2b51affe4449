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
BUILDER_FORMAT = 4


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


def instructions(containerfile: str) -> list[tuple[str, str]]:
    """The Containerfile's instructions as (KEYWORD, arguments): comments dropped,
    continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in containerfile.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        if text:
            keyword, _, rest = text.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    if pending.strip():
        keyword, _, rest = pending.strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def image_stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The stages whose layers the image is made of: the last one, the stage it
    starts FROM, and so on; build stages only copied from are left out."""
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []  # (name, base, steps)
    for keyword, args in steps:
        if keyword == "FROM":
            words = args.split()
            base = next((w for w in words if not w.startswith("--")), "")
            alias = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else ""
            stages.append((alias, base, []))
        elif stages:
            stages[-1][2].append((keyword, args))
    chain: list[list[tuple[str, str]]] = []
    by_name = {alias: (base, body) for alias, base, body in stages if alias}
    if stages:
        _, base, body = stages[-1]
        chain.append(body)
        while base in by_name and len(chain) <= len(stages):
            base, body = by_name[base]
            chain.append(body)
    return chain


def check_layers_driver_independent(name: str, containerfile: str) -> None:
    """No stage the image is made of may RUN anything.

    A RUN layer is a diff computed by the storage driver, and drivers differ:
    overlay's native diff (root) records directories a step only touched
    (/run for buildah's .containerenv mount point, /tmp), vfs (rootless) does
    not. ADD and COPY layers hold what they copy, whatever the driver.
    """
    runs = [
        args
        for stage in image_stages(instructions(containerfile))
        for kw, args in stage
        if kw == "RUN"
    ]
    if runs:
        raise TemplateError(
            f"image '{name}': a stage the image is made of runs `RUN {runs[0][:60]}`; "
            "a RUN layer's bytes depend on the storage driver (overlay as root, vfs "
            "rootless), so root and rootless builds would differ",
            hint="run it in a build stage (`FROM … AS name`) and `COPY --from=name` what it "
            "makes, as images/_shared/python.j2 does",
        )


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
        # No --layers: each stage is committed once, as one layer (the templates
        # use a stage per layer), instead of one commit per instruction, each
        # a full copy of the image with the vfs driver (rootless). Its cache
        # never matched anyway: it compares history, which is omitted.
        "--timestamp",
        str(epoch),
        "--identity-label=false",
        # buildah 1.28 points base.digest at the intermediate image of the stage
        # the image starts from (buildah#4657); the image has no base to name.
        "--annotation",
        "org.opencontainers.image.base.digest=",
        "--annotation",
        "org.opencontainers.image.base.name=",
        # History comments name intermediate images ("FROM 1a2b…"), whose IDs
        # differ between builds that RUN something.
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
