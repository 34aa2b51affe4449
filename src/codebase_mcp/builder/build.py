"""Run planned builds: each layer made once per key (store), then the image assembled.

The thin outer layer over ``plan.py`` (what), ``layerstore.py`` (where layers
live), ``sandbox.py`` (running the image's Python), ``tarball.py`` (canonical
tars) and ``oci.py`` (the image documents, and skopeo to store them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codebase_mcp import ui
from codebase_mcp.builder import debian, oci, sandbox, tarball
from codebase_mcp.builder import plan as planning
from codebase_mcp.builder.definitions import (
    ImageDefinition,
    canonical_json,
    image_names,
    images_dir,
    load_definition,
    load_pyproject,
    sha256_text,
)
from codebase_mcp.builder.diff import write_record
from codebase_mcp.builder.layerstore import Layer, LayerStore
from codebase_mcp.builder.lockfile import ImageLock, Lock, check_fresh, load_lock
from codebase_mcp.builder.project import executable, files_digest, project_files, wheel_argv
from codebase_mcp.builder.store import Store, Wanted, default_store, file_sha256
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
    substituted: bool = False  # pulled from a substituter by its pinned digest

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Builder:
    root: Path
    store: Store
    runner: Runner
    storage_args: tuple[str, ...] = ()  # e.g. ("--root", X, "--runroot", Y) for `verify`
    layer_store: LayerStore | None = None  # default: layers in the store itself
    substituter: Any = None  # builder.substitute.Substituter, or None
    _siblings: dict[str, list[ImageLock]] = field(default_factory=dict, repr=False)
    _verified: dict[str, Layer] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, root: Path, store: Path | None = None, runner: Runner | None = None) -> Builder:
        return cls(root=root, store=Store(store or default_store()), runner=runner or Runner())

    @property
    def layers(self) -> LayerStore:
        return self.layer_store or LayerStore(self.store.root)

    # --- planning ----------------------------------------------------------------
    def plan(
        self, name: str, lock: Lock | None = None
    ) -> tuple[ImageDefinition, ImageLock, planning.ImagePlan]:
        definition = load_definition(self.root, name)
        lock = lock or load_lock(self.root)
        entry = check_fresh(lock, definition, load_pyproject(self.root))
        epoch = lock.source_date_epoch
        # Hashing the project's files is the costly part of a plan: do it once.
        project_digest = self._project_digest(definition)
        rootfs = rootfs_key(definition, entry, epoch)
        layer_plans = self._layer_plans(definition, entry, lock, rootfs, project_digest)
        provenance = self._provenance(definition)
        digest = planning.input_hash(
            provenance=provenance,
            rootfs=rootfs,
            definition=definition,
            layers=layer_plans,
            entry=entry,
            epoch=epoch,
            project_digest=project_digest,
        )
        image_plan = planning.ImagePlan(
            name=name,
            ref=planning.image_ref(name, digest),
            input_hash=digest,
            layers=tuple(layer_plans),
            labels=planning.oci_labels(definition, digest, epoch, provenance),
            project_digest=project_digest,
            rootfs_key=rootfs,
        )
        return definition, entry, image_plan

    def _layer_plans(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        lock: Lock,
        rootfs: str,
        project_digest: str | None,
    ) -> list[planning.LayerPlan]:
        epoch = lock.source_date_epoch
        base = planning.rootfs_layer(rootfs)
        layers = [base]
        if definition.python is not None:
            if entry.python is None or not entry.python.tools:
                raise DefinitionError(f"the lock for '{definition.name}' has no Python section")
            venv = definition.python.venv
            shared = planning.common_wheels(self.siblings(lock, rootfs, venv) or [entry])
            layers += planning.python_layers(base, venv, entry, shared, epoch)
            if definition.project is not None:
                assert project_digest is not None
                pip = entry.python.tools[0]
                layers.append(planning.app_layer(base, venv, pip, project_digest, epoch))
        elif definition.project is not None:
            raise DefinitionError(
                f"image '{definition.name}' has [project] but no [python]",
                hint="the project is installed as a wheel into the image's venv: add [python]",
            )
        if definition.files:
            layers.append(self._files_layer(definition, epoch))
        return layers

    def siblings(self, lock: Lock, rootfs: str, venv: str) -> list[ImageLock]:
        """Lock entries of the Python images on the same root filesystem and venv path."""
        key = f"{rootfs}:{venv}"
        if key not in self._siblings:
            found = []
            for other in image_names(self.root):
                if other not in lock.images:
                    continue
                definition = load_definition(self.root, other)
                entry = lock.images[other]
                if (
                    definition.python is not None
                    and entry.python is not None
                    and definition.python.venv == venv
                    and rootfs_key(definition, entry, lock.source_date_epoch) == rootfs
                ):
                    found.append(entry)
            self._siblings[key] = found
        return self._siblings[key]

    def _files_layer(self, definition: ImageDefinition, epoch: int) -> planning.LayerPlan:
        image_dir = images_dir(self.root) / definition.name
        files = []
        for dest, rel in sorted(definition.files.items()):
            planning.check_image_path(definition.name, dest)
            source = (image_dir / rel).resolve()
            if not source.is_relative_to(image_dir.resolve()) or not source.is_file():
                raise DefinitionError(
                    f"image '{definition.name}' lists file '{rel}' (for {dest}), "
                    f"which is not a file in {image_dir}"
                )
            # The checkout's mode depends on the umask of whoever cloned it
            # (0775 vs 0755): keep only what git records, the x bit.
            files.append((dest, str(source), file_sha256(source), normal_mode(source)))
        return planning.files_layer(files, epoch)

    def _provenance(self, definition: ImageDefinition) -> dict[str, str]:
        """Where the image's inputs come from: the repository and the last commit changing them.

        The commit is the last one that touched this image's inputs (not HEAD), so
        commits elsewhere in the tree leave the image, and its digest, unchanged.
        The repository URL is the one pyproject.toml declares, not this clone's
        ``remote.origin.url``: a fork, an SSH clone or a CI checkout must not
        change the image.
        """
        paths = [f"images/{definition.name}", "build/lock.json"]
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
        started = time.monotonic()
        self._verified.clear()  # every build re-hashes the layers it uses
        planned = [(time.monotonic(), *self.plan(name, lock)) for name in names]
        todo = []
        cached: set[str] = set()
        substituted: set[str] = set()
        for _, definition, entry, image_plan in planned:
            name = definition.name
            if not force and self.image_exists(image_plan.ref):
                ui.info(f"==> {name}: {image_plan.ref} is built (inputs unchanged), skipping")
                cached.add(name)
            elif (
                not force
                and self.substituter is not None
                and self.substituter.substitute(self, image_plan)
            ):
                substituted.add(name)
            else:
                todo.append((definition, entry, image_plan))
        if todo:
            self.store.ensure_writable()
            self.layers.root.mkdir(parents=True, exist_ok=True)
            self._root_filesystems(todo, lock.source_date_epoch)
        timings: dict[str, float] = {}
        for definition, entry, image_plan in todo:
            began = time.monotonic()
            self._build_one(definition, entry, image_plan, lock.source_date_epoch)
            timings[definition.name] = time.monotonic() - began
        results = []
        for _, definition, entry, image_plan in planned:
            name = definition.name
            write_record(
                self.store.root,
                name,
                image_plan.input_hash,
                {
                    **entry.model_dump(mode="json", exclude={"resolved_from"}),
                    "layers": " ".join(f"{lp.name}:{lp.key[:12]}" for lp in image_plan.layers),
                    "project": image_plan.project_digest,
                    "rootfs": image_plan.rootfs_key,
                    "epoch": lock.source_date_epoch,
                },
            )
            info = self.inspect(image_plan.ref)
            seconds = timings.get(name, 0.0) if name not in cached else 0.0
            if len(planned) == 1:
                seconds = time.monotonic() - started
            results.append(
                BuildResult(
                    name=name,
                    ref=image_plan.ref,
                    image_id=f"sha256:{info['Id']}",
                    digest=str(info.get("Digest", "")),
                    input_hash=image_plan.input_hash,
                    cached=name in cached,
                    size_bytes=int(str(info.get("Size", 0))),
                    seconds=round(seconds, 2),
                    substituted=name in substituted,
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

    def _root_filesystems(
        self, todo: list[tuple[ImageDefinition, ImageLock, planning.ImagePlan]], epoch: int
    ) -> None:
        """Make the missing root filesystem layers first, independent ones in parallel.

        mmdebstrap is most of a cold build and mostly waits (dpkg, I/O): two
        root filesystems side by side take little more than the longer one.
        """
        missing: dict[str, tuple[ImageDefinition, ImageLock, planning.LayerPlan]] = {}
        for definition, entry, image_plan in todo:
            base = image_plan.layers[0]
            if base.key not in missing and self.layers.get(base.key, check=False) is None:
                missing[base.key] = (definition, entry, base)
        if len(missing) < 2:
            return
        ui.info(f"==> making {len(missing)} root filesystems in parallel")
        with ThreadPoolExecutor(max_workers=min(len(missing), 2)) as pool:
            futures = [
                pool.submit(self.layer, definition, entry, base, epoch)
                for definition, entry, base in missing.values()
            ]
            for future in futures:
                future.result()

    def _build_one(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        image_plan: planning.ImagePlan,
        epoch: int,
    ) -> None:
        made = [self.layer(definition, entry, lp, epoch) for lp in image_plan.layers]
        with ui.step(f"{definition.name}: assemble → {image_plan.ref}"):
            self.assemble(definition, image_plan, made, epoch)

    # --- layers ----------------------------------------------------------------------
    def layer(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        lp: planning.LayerPlan,
        epoch: int,
    ) -> Layer:
        """The layer for ``lp``: from the store (re-hashed), or made and stored now."""
        if lp.key in self._verified:  # re-hashed once per build, not once per use in it
            return self._verified[lp.key]
        found = self.layers.get(lp.key)
        if found is not None:
            ui.info(f"    {definition.name}: layer {lp.name} {found.digest[:12]} (cached)")
            self._verified[lp.key] = found
            return found
        with ui.step(f"{definition.name}: layer {lp.name}"), self._work(f"{lp.name}-") as work:
            if lp.kind == "rootfs":
                made = self._make_rootfs(definition, entry, lp, work, epoch)
            elif lp.kind in ("python", "app"):
                made = self._make_python(definition, entry, lp, work, epoch)
            else:
                made = self._make_files(lp, work, epoch)
        self._verified[lp.key] = made
        return made

    @contextmanager
    def _work(self, prefix: str) -> Iterator[Path]:
        tmp_root = self.layers.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_root))
        work.chmod(0o755)  # mmdebstrap's unshared user must reach the repository
        try:
            yield work
        finally:
            remove_tree(work)

    def _make_rootfs(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        lp: planning.LayerPlan,
        work: Path,
        epoch: int,
    ) -> Layer:
        """mmdebstrap from the locked .debs, with no network; then one canonical tar."""
        debs = [w for w in wanted(entry) if w.label.startswith("Debian package")]
        paths = self.store.fetch_all(debs, progress=ui.info)
        mode = debian.mode_for_uid(os.getuid())
        repo = work / "repo"
        scan = debian.write_flat_repo(repo, [(p, paths[p.sha256]) for p in entry.debian.packages])
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
        check_installed(out, entry)
        return self.layers.put(lp.key, lp.name, lambda f: tarball.canonical_tar(out, f, epoch))

    def _make_python(
        self,
        definition: ImageDefinition,
        entry: ImageLock,
        lp: planning.LayerPlan,
        work: Path,
        epoch: int,
    ) -> Layer:
        """pip in the image's own root filesystem (sandbox), then the staged files' tar."""
        assert lp.pip is not None
        base = planning.LayerPlan("rootfs", "rootfs", lp.rootfs)
        tree = self.tree(base.key, lambda: self.layer(definition, entry, base, epoch))
        (tree / lp.venv.lstrip("/")).mkdir(parents=True, exist_ok=True)  # its mount point
        inputs = work / "inputs"
        inputs.mkdir()
        items = [Wanted(f"wheel {w.filename}", w.sha256, (w.url,)) for w in (lp.pip, *lp.wheels)]
        paths = self.store.fetch_all(items, progress=ui.info)
        pip_tree = self.pip_tree(tree, lp.rootfs, lp.pip.sha256, paths[lp.pip.sha256], epoch)
        shutil.copytree(pip_tree, inputs / "pip", copy_function=lambda a, b: link(Path(a), Path(b)))
        if lp.kind == "python":
            (inputs / "wheels").mkdir()
            for w in lp.wheels:
                link(paths[w.sha256], inputs / "wheels" / w.filename)
            (inputs / "requirements.txt").write_text(planning.requirements_text(lp.wheels))
        else:
            (inputs / "app").mkdir()
            self.runner.run(
                wheel_argv(sys.executable, inputs / "app"),
                cwd=self.root,
                env={"SOURCE_DATE_EPOCH": str(epoch)},
                hint="building the project wheel failed; is hatchling installed (`make venv`)?",
            )
        mounts = sandbox.Mounts(
            stage=work / "stage", venv_dir=work / "venv", inputs=inputs, tmp=work / "tmp"
        )
        for directory in (mounts.stage, mounts.venv_dir, mounts.tmp):
            directory.mkdir()
        script = sandbox.python_script(
            lp.venv, "pip", skeleton=lp.skeleton, requirements=lp.kind == "python"
        )
        self.runner.run(
            sandbox.argv(tree, lp.venv, mounts, script, epoch),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            inherit_env=False,
            hint="the sandbox needs user namespaces (`codebase-mcp doctor`); rerun with "
            "`codebase-mcp -v image build` to see the command",
        )
        return self.layers.put(lp.key, lp.name, lambda f: tarball.tree_tar(mounts.stage, f, epoch))

    def _make_files(self, lp: planning.LayerPlan, work: Path, epoch: int) -> Layer:
        stage = work / "stage"
        for dest, source, mode in lp.files:
            target = stage / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(mode)
        for directory in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)
        return self.layers.put(lp.key, lp.name, lambda f: tarball.tree_tar(stage, f, epoch))

    def pip_tree(self, tree: Path, rootfs: str, sha256: str, wheel: Path, epoch: int) -> Path:
        """pip's locked wheel unpacked, its bytecode compiled by the image's interpreter.

        Run from the wheel (a zip), pip compiles its own modules in memory on every
        start: seconds of CPU per layer. Unpacked and compiled once (per pip and
        interpreter), it starts in a fraction of that. Only pip's speed depends on
        this: what it installs is the same.
        """
        trees = self.layers.root / "trees"
        target = trees / f"pip-{sha256[:32]}-{rootfs[:16]}"
        if target.is_dir():
            return target
        trees.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=trees))
        try:
            with zipfile.ZipFile(wheel) as zipped:  # the locked wheel, its sha256 checked
                zipped.extractall(tmp / "stage")  # noqa: S202 - zipfile drops ../ and /
            for sub in ("venv", "inputs", "tmp"):
                (tmp / sub).mkdir()
            mounts = sandbox.Mounts(tmp / "stage", tmp / "venv", tmp / "inputs", tmp / "tmp")
            (tree / "opt" / "venv").mkdir(parents=True, exist_ok=True)
            self.runner.run(
                sandbox.argv(tree, "/opt/venv", mounts, sandbox.COMPILE_PIP, epoch),
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                inherit_env=False,
            )
            (tmp / "stage").replace(target)
        except OSError:
            if not target.is_dir():
                raise
        finally:
            remove_tree(tmp)
        return target

    def tree(self, key: str, rootfs: Callable[[], Layer]) -> Path:
        """The root filesystem layer ``key`` unpacked (once) for recipes to run in."""
        trees = self.layers.root / "trees"
        target = trees / key
        if target.is_dir():
            return target
        trees.mkdir(parents=True, exist_ok=True)
        blob = rootfs().path  # made, or re-hashed, only when it is to be unpacked
        tmp = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=trees))
        try:
            self.runner.run(sandbox.unpack_argv(blob, tmp))
            for rel in sandbox.MOUNT_DIRS:
                (tmp / rel).mkdir(parents=True, exist_ok=True)
            (tmp / "dev").mkdir(exist_ok=True)
            (tmp / "dev" / "null").touch()
            tmp.replace(target)
        except OSError:
            if not target.is_dir():
                raise
        finally:
            if tmp.exists():
                remove_tree(tmp)
        return target

    # --- assembly --------------------------------------------------------------------
    def assemble(
        self,
        definition: ImageDefinition,
        image_plan: planning.ImagePlan,
        layers: list[Layer],
        epoch: int,
    ) -> None:
        """OCI layout from the layer blobs and a config, stored with skopeo; no buildah."""
        config = oci.image_config(
            definition.config,
            image_plan.labels,
            [layer.digest for layer in layers],
            epoch,
            [layer.name for layer in layers],
        )
        blobs = [oci.Blob(layer.digest, layer.size, layer.path) for layer in layers]
        with self._work("oci-") as work:
            oci.write_layout(work / "image", config, blobs)
            self.runner.run(
                oci.copy_argv(work / "image", self.storage_args, image_plan.ref),
                hint="rerun with `codebase-mcp -v image build` to see every command",
            )
        expected = hashlib.sha256(config).hexdigest()
        actual = str(self.inspect(image_plan.ref)["Id"])
        if actual != expected:
            raise BuildError(
                f"{image_plan.ref} was stored as image {actual[:12]}, not {expected[:12]} "
                "(the sha256 of the config the builder wrote)",
                hint="the engine changed the image while storing it; report this with "
                "`podman version` and `skopeo --version`",
            )


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only directories (a plain user's unpacked tree)."""

    def make_writable(func: Any, target: str, _exc: object) -> None:
        parent = os.path.dirname(target)
        for p in (parent, target):
            with contextlib.suppress(OSError):
                os.chmod(p, os.lstat(p).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        with contextlib.suppress(OSError):
            func(target)

    shutil.rmtree(path, onerror=make_writable)


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
