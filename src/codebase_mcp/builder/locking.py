"""``image lock``: resolve every input of every image and write build/lock.json.

The only part of the builder that talks to package indexes: apt (through
mmdebstrap) for Debian packages, pip for wheels.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.builder import debian, pyresolve
from codebase_mcp.builder.definitions import ImageDefinition, load_definitions, load_pyproject
from codebase_mcp.builder.lockfile import (
    DebianLock,
    ImageLock,
    Lock,
    LockedWheel,
    PythonLock,
    UpstreamLock,
    load_lock,
    lock_path,
    write_lock,
)
from codebase_mcp.errors import CommandFailed, LockError, UnknownImage
from codebase_mcp.proc import Runner

# pip itself is mounted into Python images at build time to install the wheels.
PIP_REQUIREMENT = "pip"


def lock_images(
    root: Path,
    names: list[str] | None = None,
    *,
    update: list[str] | None = None,
    runner: Runner | None = None,
) -> tuple[Path, list[str]]:
    """Resolve the named images (default: all, or those holding an ``update`` package)."""
    runner = runner or Runner()
    definitions = load_definitions(root)
    previous = load_lock(root) if lock_path(root).is_file() else None
    chosen = select(definitions, names, update, previous)
    pyproject = load_pyproject(root)
    images = dict(previous.images) if previous else {}
    epochs = [previous.source_date_epoch] if previous else []
    for definition in chosen:
        with ui.step(f"{definition.name}: resolve Debian packages ({definition.debian.suite})"):
            deb_lock, epoch = resolve_debian(definition, runner)
        python_lock = None
        if definition.python is not None:
            with ui.step(
                f"{definition.name}: resolve Python wheels (Python {definition.python.version})"
            ):
                python_lock = resolve_python(definition, pyproject, runner)
        images[definition.name] = ImageLock(
            resolved_from=definition.resolution_inputs(pyproject),
            debian=deb_lock,
            python=python_lock,
        )
        epochs.append(epoch)
    known = {d.name for d in definitions}
    images = {k: v for k, v in sorted(images.items()) if k in known}
    upstream = resolve_upstream(root, previous, runner)
    lock = Lock(source_date_epoch=max(epochs), images=images, upstream=upstream)
    return write_lock(root, lock), [d.name for d in chosen]


def lock_upstream(
    root: Path, *, runner: Runner | None = None
) -> tuple[Path, dict[str, UpstreamLock]]:
    """Re-pin only the upstream images; every image entry of the lock stays as it is.

    Pinning Ollama must not drag in newer Debian packages or wheels (and so
    rebuild every image): this touches nothing but ``upstream``.
    """
    if not lock_path(root).is_file():
        raise LockError(
            "no build/lock.json to add upstream pins to",
            hint="run `codebase-mcp image lock` first",
        )
    previous = load_lock(root)
    upstream = resolve_upstream(root, previous, runner or Runner())
    return write_lock(root, previous.model_copy(update={"upstream": upstream})), upstream


def upstream_definitions(root: Path) -> dict[str, str]:
    """name → reference from images/upstream.toml."""
    path = root / "images" / "upstream.toml"
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    return {name: str(entry["reference"]) for name, entry in sorted(data.items())}


def resolve_upstream(root: Path, previous: Lock | None, runner: Runner) -> dict[str, UpstreamLock]:
    """Pin each upstream image by digest with skopeo; keep the old pin when unreachable."""
    pinned: dict[str, UpstreamLock] = {}
    for name, reference in upstream_definitions(root).items():
        result = runner.run(
            ["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{reference}"],
            check=False,
            timeout=120,
        )
        digest = result.stdout.strip() if result.returncode == 0 else ""
        if digest.startswith("sha256:"):
            pinned[name] = UpstreamLock(reference=reference, digest=digest)
            continue
        old = previous.upstream.get(name) if previous else None
        kept = old if old is not None and old.reference == reference else None
        reason = (result.stderr.strip().splitlines() or ["no digest"])[-1]
        ui.warn(
            f"could not resolve {reference} ({reason}); "
            + ("keeping the previous digest" if kept and kept.digest else "left unpinned")
        )
        pinned[name] = kept or UpstreamLock(reference=reference)
    return pinned


def select(
    definitions: list[ImageDefinition],
    names: list[str] | None,
    update: list[str] | None,
    previous: Lock | None,
) -> list[ImageDefinition]:
    by_name = {d.name: d for d in definitions}
    if names:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise UnknownImage(
                f"no image named {', '.join(missing)}", hint=f"images: {', '.join(by_name)}"
            )
        return [by_name[n] for n in names]
    if update:
        if previous is None:
            raise LockError("--update needs an existing lock", hint="run `codebase-mcp image lock`")
        wanted = {pyresolve.canonical_name(u) for u in update}
        chosen = []
        for name, entry in previous.images.items():
            held = {p.name for p in entry.debian.packages}
            if entry.python is not None:
                held |= {w.name for w in [*entry.python.wheels, *entry.python.no_deps]}
            if wanted & {pyresolve.canonical_name(h) for h in held} and name in by_name:
                chosen.append(by_name[name])
        if not chosen:
            raise LockError(
                f"no locked image contains {', '.join(update)}",
                hint="name a Debian package or Python distribution from build/lock.json",
            )
        return chosen
    return definitions


def resolve_debian(definition: ImageDefinition, runner: Runner) -> tuple[DebianLock, int]:
    capture_dir = Path(tempfile.mkdtemp(prefix="codebase-mcp-lock-"))
    capture_dir.chmod(0o777)  # written by the (possibly unshared) mmdebstrap hook
    try:
        argv = debian.lock_argv(
            definition.debian, debian.mode_for_uid(os.getuid()), debian.Capture(capture_dir)
        )
        try:
            runner.run(argv, env={"LC_ALL": "C.UTF-8"})
        except CommandFailed as exc:
            raise LockError(
                f"resolving Debian packages for '{definition.name}' failed: {exc.message}",
                hint=f"check that {definition.debian.mirror} is reachable and that every package "
                f"exists in {definition.debian.suite}; build/lock.json was not changed",
            ) from exc
        return debian.resolve_from_capture(definition.debian, debian.Capture(capture_dir))
    finally:
        shutil.rmtree(capture_dir, ignore_errors=True)


def resolve_python(
    definition: ImageDefinition, pyproject: dict[str, object], runner: Runner
) -> PythonLock:
    assert definition.python is not None
    py = definition.python
    target = pyresolve.Target(python_version=py.version, platform=py.platform)
    reqs = definition.resolution_inputs(pyproject)["python"]["requirements"]
    try:
        wheels = pyresolve.resolve(reqs, target, python=sys.executable, runner=runner)
        no_deps = pyresolve.resolve(py.no_deps, target, no_deps=True, runner=runner)
        tools = pyresolve.resolve([PIP_REQUIREMENT], target, no_deps=True, runner=runner)
    except CommandFailed as exc:
        raise LockError(
            f"resolving Python wheels for '{definition.name}' failed: {exc.message}",
            hint=exc.hint,
        ) from exc

    def as_locked(items: list[pyresolve.Wheel]) -> list[LockedWheel]:
        return [LockedWheel(**w.as_dict()) for w in items]

    return PythonLock(
        version=py.version,
        platform=py.platform,
        wheels=as_locked(wheels),
        no_deps=as_locked(no_deps),
        tools=as_locked(tools),
    )
