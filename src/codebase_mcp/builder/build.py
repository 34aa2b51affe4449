"""Run planned builds: fetch → root filesystem → context → buildah. The thin outer layer."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codebase_mcp import __version__, ui
from codebase_mcp.builder import debian, layers
from codebase_mcp.builder import plan as planning
from codebase_mcp.builder.definitions import (
    ImageDefinition,
    canonical_json,
    images_dir,
    load_definition,
    load_pyproject,
    sha256_text,
)
from codebase_mcp.builder.diff import write_record
from codebase_mcp.builder.lockfile import ImageLock, Lock, check_fresh, load_lock
from codebase_mcp.builder.project import executable, files_digest, project_files, wheel_argv
from codebase_mcp.builder.store import Store, Wanted, default_store
from codebase_mcp.errors import BuildError, DefinitionError
from codebase_mcp.proc import Runner


@dataclass(frozen=True)
class BuildResult:
    name: str
    ref: str
    image_id: str
    digest: str
    input_hash: str
    cached: bool
    size_bytes: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Builder:
    root: Path
    store: Store
    runner: Runner
    storage_args: tuple[str, ...] = ()  # e.g. ("--root", X, "--runroot", Y) for `verify`
    no_cache: bool = False
    reuse_rootfs: bool = True  # False: rebuild the root filesystem too (verify)

    @classmethod
    def create(cls, root: Path, store: Path | None = None, runner: Runner | None = None) -> Builder:
        return cls(root=root, store=Store(store or default_store()), runner=runner or Runner())

    # --- planning ----------------------------------------------------------------
    def plan(
        self, name: str, lock: Lock | None = None
    ) -> tuple[ImageDefinition, ImageLock, planning.ImagePlan]:
        definition = load_definition(self.root, name)
        lock = lock or load_lock(self.root)
        entry = check_fresh(lock, definition, load_pyproject(self.root))
        epoch = lock.source_date_epoch
        image_dir = images_dir(self.root) / name
        # Hashing the project's files is the costly part of a plan: do it once.
        project_digest = self._project_digest(definition)
        rootfs = rootfs_key(definition, entry, epoch)
        python_ctx = self._python_context(definition, entry, project_digest)
        containerfile = planning.render_containerfile(
            definition, image_dir, planning.template_variables(definition, entry, epoch, python_ctx)
        )
        planning.check_layers_driver_independent(name, containerfile)
        provenance = self._provenance(definition)
        digest = planning.input_hash(
            provenance=provenance,
            rootfs=rootfs,
            definition=definition,
            containerfile=containerfile,
            entry=entry,
            epoch=epoch,
            project_digest=project_digest,
            context_digest=files_digest(image_dir, self._context_files(definition, image_dir)),
        )
        image_plan = planning.ImagePlan(
            name=name,
            ref=planning.image_ref(name, digest),
            input_hash=digest,
            containerfile=containerfile,
            labels=planning.oci_labels(definition, digest, epoch, provenance),
            project_digest=project_digest,
            rootfs_key=rootfs,
        )
        return definition, entry, image_plan

    def _provenance(self, definition: ImageDefinition) -> dict[str, str]:
        """Where the image's inputs come from: the repository and the last commit changing them.

        The commit is the last one that touched this image's inputs (not HEAD), so
        commits elsewhere in the tree leave the image, and its digest, unchanged.
        The repository URL is the one pyproject.toml declares, not this clone's
        ``remote.origin.url``: a fork, an SSH clone or a CI checkout must not
        change the image.
        """
        paths = [f"images/{definition.name}", "images/_shared", "build/lock.json"]
        if definition.project is not None:
            paths += [p.split("*", 1)[0].rstrip("/") or "." for p in definition.project.files]
        git = git_argv(self.root)
        revision = self.runner.run(
            [*git, "log", "-1", "--format=%H", "--", *sorted(set(paths))], check=False
        )
        shallow = self.runner.run([*git, "rev-parse", "--is-shallow-repository"], check=False)
        if shallow.stdout.strip() == "true":
            ui.warn(
                "this is a shallow clone: the revision label (the last commit touching the "
                f"inputs of {definition.name}) may be wrong, and the image differ from a full "
                "clone's; `git fetch --unshallow` (CI: fetch-depth 0)"
            )
        return {
            "revision": revision.stdout.strip() if revision.returncode == 0 else "",
            "source": source_url(load_pyproject(self.root)),
        }

    def _project_digest(self, definition: ImageDefinition) -> str | None:
        if definition.project is None:
            return None
        return files_digest(self.root, project_files(self.root, definition.project.files))

    def _python_context(
        self, definition: ImageDefinition, entry: ImageLock, project_digest: str | None
    ) -> planning.PythonContext | None:
        if definition.python is None:
            return None
        if entry.python is None or not entry.python.tools:
            raise DefinitionError(f"the lock for '{definition.name}' has no Python section")
        app = (
            f"app/codebase_mcp-{__version__}-py3-none-any.whl"
            if definition.project is not None
            else None
        )
        deps = [*entry.python.wheels, *entry.python.no_deps, *entry.python.tools]
        return planning.PythonContext(
            venv=definition.python.venv,
            pip_wheel=f"python/tools/{entry.python.tools[0].filename}",
            app_wheel=app,
            deps_key=sha256_text(planning.requirements_text(deps))[:16],
            app_key=(project_digest or "")[:16],
        )

    @staticmethod
    def _context_files(definition: ImageDefinition, image_dir: Path) -> list[Path]:
        files = []
        for rel in definition.context_files:
            if not (image_dir / rel).is_file():
                raise DefinitionError(
                    f"image '{definition.name}' lists context file '{rel}', "
                    f"which is not in {image_dir}"
                )
            files.append(Path(rel))
        return sorted(files)

    # --- running -------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        result = self.runner.run(
            ["podman", *self.storage_args, "image", "exists", ref], check=False
        )
        return result.returncode == 0

    def inspect(self, ref: str) -> dict[str, object]:
        out = self.runner.run(["podman", *self.storage_args, "image", "inspect", ref]).stdout
        data = json.loads(out)
        return dict(data[0])

    def build(self, names: list[str], *, force: bool = False) -> list[BuildResult]:
        lock = load_lock(self.root)
        results = []
        for name in names:
            started = time.monotonic()
            definition, entry, image_plan = self.plan(name, lock)
            cached = not force and self.image_exists(image_plan.ref)
            if cached:
                ui.info(f"==> {name}: {image_plan.ref} is built (inputs unchanged), skipping")
            else:
                self._build_one(definition, entry, image_plan, lock.source_date_epoch)
            write_record(
                self.store.root,
                name,
                image_plan.input_hash,
                {
                    **entry.model_dump(mode="json", exclude={"resolved_from"}),
                    "containerfile": image_plan.containerfile,
                    "project": image_plan.project_digest,
                    "rootfs": image_plan.rootfs_key,
                    "epoch": lock.source_date_epoch,
                },
            )
            info = self.inspect(image_plan.ref)
            results.append(
                BuildResult(
                    name=name,
                    ref=image_plan.ref,
                    image_id=f"sha256:{info['Id']}",
                    digest=str(info.get("Digest", "")),
                    input_hash=image_plan.input_hash,
                    cached=cached,
                    size_bytes=int(str(info.get("Size", 0))),
                    seconds=round(time.monotonic() - started, 2),
                )
            )
        return results

    def fetch(self, names: list[str]) -> int:
        self.store.ensure_writable()
        lock = load_lock(self.root)
        count = 0
        for name in names:
            definition = load_definition(self.root, name)
            entry = check_fresh(lock, definition, load_pyproject(self.root))
            count += len(self.store.fetch_all(wanted(entry), progress=ui.info))
        return count

    def _build_one(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        image_plan: planning.ImagePlan,
        epoch: int,
    ) -> None:
        name = definition.name
        self.store.ensure_writable()
        with ui.step(f"{name}: fetch and verify inputs"):
            paths = self.store.fetch_all(wanted(entry), progress=ui.info)
        with ui.step(f"{name}: root filesystem ({len(entry.debian.packages)} Debian packages)"):
            rootfs = self.rootfs(definition, entry, paths, epoch, image_plan.rootfs_key)
        try:
            self._assemble(definition, entry, image_plan, paths, rootfs, epoch)
        finally:
            if not self.reuse_rootfs:
                # verify's freshly made root filesystem is for this build only.
                rootfs.unlink(missing_ok=True)

    def _assemble(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        image_plan: planning.ImagePlan,
        paths: dict[str, Path],
        rootfs: Path,
        epoch: int,
    ) -> None:
        """Context, buildah, canonical layer order."""
        name = definition.name
        tmp_root = self.store.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="context-", dir=tmp_root) as tmp:
            context = Path(tmp)
            with ui.step(f"{name}: build context"):
                self._write_context(context, definition, entry, image_plan, paths, rootfs, epoch)
            with ui.step(f"{name}: buildah bud → {image_plan.ref}"):
                self.runner.run(
                    planning.buildah_argv(
                        image_plan,
                        context,
                        epoch,
                        storage=list(self.storage_args),
                        no_cache=self.no_cache,
                    ),
                    capture=False,
                    stdout_to_stderr=True,  # stdout carries --json
                    hint="rerun with `codebase-mcp -v image build` to see every command",
                )
            with ui.step(f"{name}: layers in canonical order"):
                image_id = layers.canonicalise_image(
                    self.runner, self.storage_args, image_plan.ref, context
                )
                ui.info(
                    "    already in walk order"
                    if image_id is None
                    else f"    reordered (this storage driver sorts paths): {image_id[:12]}"
                )

    def rootfs(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        paths: dict[str, Path],
        epoch: int,
        key: str,
    ) -> Path:
        """The root filesystem tarball, cached in the store under ``key`` (see rootfs_key)."""
        mode = debian.mode_for_uid(os.getuid())
        cached = self.store.root / "rootfs" / f"{key}.tar"
        if not self.reuse_rootfs:
            cached = self.store.root / "tmp" / f"verify-{os.getpid()}-{key}.tar"
        if cached.is_file():
            ui.info(f"    cached root filesystem {cached.name}")
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=self.store.root))
        work.chmod(0o755)  # the unshared user must reach the repository
        try:
            repo = work / "repo"
            scan = debian.write_flat_repo(
                repo, [(p, paths[p.sha256]) for p in entry.debian.packages]
            )
            packages = self.runner.run(scan, cwd=repo).stdout
            (repo / "Packages").write_text(packages)
            (repo / "Release").write_text(
                debian.release_text(definition.debian.suite, packages.encode(), epoch)
            )
            out = work / "rootfs.tar"
            self.runner.run(
                debian.build_argv(definition.debian, mode, repo, out, epoch),
                env=debian.build_env(epoch),
                inherit_env=False,
                hint="mmdebstrap failed; as a plain user it needs /etc/subuid and /etc/subgid "
                "ranges (`codebase-mcp doctor`)",
            )
            devices = debian.device_members(out)
            if devices:
                self.runner.run(debian.delete_members_argv(out, devices))
            check_installed(out, entry)
            out.chmod(0o444)
            out.replace(cached)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return cached

    def _write_context(
        self,
        context: Path,
        definition: ImageDefinition,
        entry: ImageLock,
        image_plan: planning.ImagePlan,
        paths: dict[str, Path],
        rootfs: Path,
        epoch: int,
    ) -> None:
        (context / "Containerfile").write_text(image_plan.containerfile)
        link(rootfs, context / "rootfs.tar")
        image_dir = images_dir(self.root) / definition.name
        for rel in definition.context_files:
            target = context / "files" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image_dir / rel, target)
            # COPY keeps the mode; the checkout's depends on the umask of whoever
            # cloned it (0775 vs 0755): keep only what git records, the x bit.
            target.chmod(normal_mode(image_dir / rel))
        if entry.python is not None:
            wheels_dir = context / "python" / "wheels"
            tools_dir = context / "python" / "tools"
            wheels_dir.mkdir(parents=True)
            tools_dir.mkdir(parents=True)
            installed = [*entry.python.wheels, *entry.python.no_deps]
            for w in installed:
                link(paths[w.sha256], wheels_dir / w.filename)
            for w in entry.python.tools:
                link(paths[w.sha256], tools_dir / w.filename)
            (context / "python" / "requirements.txt").write_text(
                planning.requirements_text(installed)
            )
        if definition.project is not None:
            app = context / "app"
            app.mkdir()
            self.runner.run(
                wheel_argv(sys.executable, app),
                cwd=self.root,
                env={"SOURCE_DATE_EPOCH": str(epoch)},
                hint="building the project wheel failed; is hatchling installed (`make venv`)?",
            )


# Bump when the tarball is post-processed differently (2: device nodes removed).
ROOTFS_FORMAT = 2


def source_url(pyproject: dict[str, Any]) -> str:
    """``[project.urls]``'s Source (or Repository): the committed home of the sources."""
    urls = pyproject.get("project", {}).get("urls", {})
    for key in ("Source", "Repository", "source", "repository"):
        if isinstance(urls.get(key), str):
            return str(urls[key])
    return ""


def rootfs_key(definition: ImageDefinition, entry: ImageLock, epoch: int) -> str:
    """What the root filesystem is made of: the .debs and the exact mmdebstrap recipe."""
    recipe = debian.build_argv(definition.debian, "MODE", Path("/REPO"), Path("/OUT"), epoch)
    return sha256_text(
        canonical_json(
            {
                "debs": sorted(p.sha256 for p in entry.debian.packages),
                # The mode is not part of the key: root and rootless give the same bytes.
                "recipe": [a for a in recipe if not a.startswith("--mode=")],
                "epoch": epoch,
                "format": ROOTFS_FORMAT,
            }
        )
    )


def wanted(entry: ImageLock) -> list[Wanted]:
    items = [
        Wanted(f"Debian package {p.name} {p.version}", p.sha256, (p.url, p.snapshot_url))
        for p in entry.debian.packages
    ]
    if entry.python is not None:
        for w in [*entry.python.wheels, *entry.python.no_deps, *entry.python.tools]:
            items.append(Wanted(f"wheel {w.filename}", w.sha256, (w.url,)))
    return items


def git_argv(root: Path) -> list[str]:
    """git reading the checkout's history, whoever owns it.

    git refuses a repository owned by another user ("dubious ownership"), and
    the revision label would silently go missing: a rootless build of a shared
    checkout would differ from its owner's. The builder already trusts this
    checkout (it runs its hooks), so it is declared safe for this one call.
    """
    return ["git", "-c", f"safe.directory={root.resolve()}", "-C", str(root)]


def normal_mode(path: Path) -> int:
    """0755 for an executable file, else 0644: what git records, umask aside."""
    return 0o755 if executable(path) else 0o644


def link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def check_installed(rootfs_tar: Path, entry: ImageLock) -> None:
    """The packages dpkg installed must be exactly the locked ones."""
    with tarfile.open(rootfs_tar) as tar:
        member = tar.extractfile("./var/lib/dpkg/status")
        if member is None:
            raise BuildError(f"{rootfs_tar} has no dpkg status")
        status = member.read().decode()
    installed = set(debian.installed_packages(status))
    locked = {(p.name, p.version, p.arch) for p in entry.debian.packages}
    if installed != locked:
        extra = sorted(installed - locked)[:5]
        missing = sorted(locked - installed)[:5]
        raise BuildError(
            f"the root filesystem's packages differ from the lock (extra: {extra}, "
            f"missing: {missing})",
            hint="run `codebase-mcp image lock` again and commit build/lock.json",
        )
