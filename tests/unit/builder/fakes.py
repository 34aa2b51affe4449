"""A stand-in for the engines the builder runs: mmdebstrap, the sandbox (pip), hatchling,
skopeo and podman, acting on real files so that the builder's own work (layer
tars, store, OCI layout) is real and only the foreign programs are faked."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codebase_mcp.builder.lockfile import load_lock, write_lock
from codebase_mcp.proc import Result, Runner

SITE = "opt/venv/lib/python3.13/site-packages"


class EngineRunner(Runner):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, str] = {}  # ref → image ID (config sha256)

    def run(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Result:
        args = tuple(os.fspath(a) for a in argv)
        self.calls.append(args)
        tool = Path(args[0]).name
        if tool == "podman":
            return self._podman(args)
        if tool == "mmdebstrap":
            rootfs_tar(Path(args[-2]), self.status)
        elif tool == "unshare":
            sandbox(args)
        elif tool == "tar" and "--extract" in args:
            with tarfile.open(args[args.index("--file") + 1]) as tar:
                tar.extractall(args[args.index("--directory") + 1], filter="tar")
        elif "hatchling" in args:
            project_wheel(Path(str(kwargs.get("cwd", "."))), Path(args[-1]))
        elif tool == "skopeo":
            self._copy(args)
        return Result(args, 0, "", "")

    status = ""  # dpkg status the fake mmdebstrap writes (set from the lock)

    def _podman(self, args: tuple[str, ...]) -> Result:
        ref = args[-1]
        if "exists" in args:
            return Result(args, 0 if ref in self.images else 1)
        if "inspect" in args:
            info = [{"Id": self.images[ref], "Digest": "sha256:" + "0" * 64, "Size": 1}]
            return Result(args, 0, json.dumps(info))
        return Result(args, 0)

    def _copy(self, args: tuple[str, ...]) -> None:
        layout = Path(args[-2].removeprefix("oci:"))
        index = json.loads((layout / "index.json").read_text())
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
        for blob in [manifest["config"], *manifest["layers"]]:
            data = (layout / "blobs" / "sha256" / blob["digest"].split(":")[1]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == blob["digest"].split(":")[1]
        ref = args[-1].split("]")[-1].removeprefix("containers-storage:")
        self.images[ref] = manifest["config"]["digest"].split(":")[1]

    def pip_runs(self) -> list[str]:
        """The sandbox scripts that ran pip, one per layer made."""
        return [a[-2] for a in self.calls if Path(a[0]).name == "unshare" and "pip" in a[-2]]


def rootfs_tar(out: Path, status: str) -> None:
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind in (("./", tarfile.DIRTYPE), ("./dev", tarfile.DIRTYPE),
                           ("./dev/null", tarfile.CHRTYPE), ("./usr", tarfile.DIRTYPE),
                           ("./var/lib/dpkg", tarfile.DIRTYPE)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755
            tar.addfile(info)
        data = status.encode()
        info = tarfile.TarInfo("./var/lib/dpkg/status")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def sandbox(args: tuple[str, ...]) -> None:
    """What pip would leave in /stage: a package per requirement, or the project."""
    at = args.index("sandbox")
    stage, inputs, script = Path(args[at + 2]), Path(args[at + 5]), args[at + 7]
    if "pip install" not in script:  # compiling pip's own modules
        return
    site = stage / SITE
    site.mkdir(parents=True, exist_ok=True)
    if "cp -a" in script:
        (stage / "opt/venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    if "requirements.txt" in script:
        for line in (inputs / "requirements.txt").read_text().splitlines():
            name = line.split("==")[0]
            (site / name).mkdir()
            (site / name / "__init__.py").write_text(line)
    else:
        (wheel,) = (inputs / "app").glob("*.whl")
        (site / "demo").mkdir()
        (site / "demo" / "__init__.py").write_bytes(wheel.read_bytes())


def project_wheel(root: Path, out: Path) -> None:
    digest = hashlib.sha256()
    for path in sorted((root / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    (out / "demo-0.1.0-py3-none-any.whl").write_text(digest.hexdigest())


def real_inputs(project: Path, store: Path) -> EngineRunner:
    """Give every locked input real bytes in ``store`` (the lock's hashes rewritten)."""
    lock = load_lock(project)
    blobs = store / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def stored(item: Any) -> Any:
        data = f"{item.name} {item.version}".encode()
        if hasattr(item, "filename"):  # a wheel: a zip
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as zipped:
                zipped.writestr(zipfile.ZipInfo(f"{item.name}/__init__.py"), data)
            data = out.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        (blobs / sha).write_bytes(data)
        return item.model_copy(update={"sha256": sha})

    images = {}
    status = []
    for name, entry in lock.images.items():
        debian = entry.debian.model_copy(
            update={"packages": [stored(p) for p in entry.debian.packages]}
        )
        python = entry.python
        if python is not None:
            python = python.model_copy(
                update={k: [stored(w) for w in getattr(python, k)] for k in _wheel_fields()}
            )
        images[name] = entry.model_copy(update={"debian": debian, "python": python})
        status = [
            f"Package: {p.name}\nVersion: {p.version}\nArchitecture: {p.arch}\n"
            "Status: install ok installed\n"
            for p in entry.debian.packages
        ]
    write_lock(project, lock.model_copy(update={"images": images}))
    runner = EngineRunner()
    runner.status = "\n".join(status)
    return runner


def _wheel_fields() -> Mapping[str, None]:
    return dict.fromkeys(("wheels", "no_deps", "tools"))
