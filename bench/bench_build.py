"""Builder benchmark, before (main's code) and after (this checkout), in one run.

Run as root with `make bench-build`; writes bench/results/build.json. For the
server image, each side measures, as root and as a fresh plain user (rootless,
vfs): a cold build (empty containers-storage, empty store but for the fetched
inputs: every layer made, mmdebstrap included), the cached no-op, and an
app-only rebuild (one line added under src/), each side with its own code
(main's from a `git worktree` of main). After only: substitution, i.e. the
image published to a local registry and pulled by its pinned digest into an
empty storage, against the cold build. Inputs are fetched first and not timed.
Timings on shared 2-core machines are noisy: compare within one run; the load
average is recorded.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.publish.registry import start_registry
from tests.support.checkout import copy_checkout
from tests.support.rootless import build_user, user_python

from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.builder.substitute import Substituter
from codebase_mcp.builder.verify import throwaway_storage
from codebase_mcp.proc import Runner
from codebase_mcp.publish.run import PublishRequest, publish

IMAGE = "server"

# Run by each side's own code (PYTHONPATH = that side's src): cold, no-op, app-only.
DRIVER = r"""
import dataclasses, json, os, shutil, sys, tempfile, time
from pathlib import Path
repo, image = Path(sys.argv[1]), sys.argv[2]
from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.builder.verify import throwaway_storage
from codebase_mcp.proc import Runner

fields = {f.name for f in dataclasses.fields(Builder)}
runner = Runner()
home = Store(default_store())

def builder(root, store, storage):
    extra = {"no_cache": True} if "no_cache" in fields else {}
    return Builder(root=root, store=store, runner=runner, storage_args=storage.args, **extra)

def timed(b, **kw):
    started = time.monotonic()
    (result,) = b.build([image], **kw)
    return result, round(time.monotonic() - started, 2)

def edited(parent, n):
    copy = Path(tempfile.mkdtemp(dir=parent))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, copy / name)
    for name in ("src", "migrations", "images", "build"):
        shutil.copytree(repo / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "src" / "codebase_mcp" / "__init__.py"
    init.write_text(init.read_text() + f"\n# bench edit {n}\n")
    return copy

with throwaway_storage(home, runner, "bench-") as storage:
    storage.scratch.chmod(0o755)  # mmdebstrap's unshared user must reach the repository
    # A store holding the fetched inputs only: nothing made before is reused.
    store = Store(storage.scratch / "store")
    (store.root / "sha256").mkdir(parents=True)
    for entry in (home.root / "sha256").iterdir():
        if not entry.name.startswith("."):
            os.link(entry, store.root / "sha256" / entry.name)
    cold, cold_s = timed(builder(repo, store, storage), force=True)
    _, noop_s = timed(builder(repo, store, storage))
    app, app_s = timed(builder(edited(storage.scratch, 1), store, storage))
    app2, app2_s = timed(builder(edited(storage.scratch, 2), store, storage))
print(json.dumps({
    "cold_s": cold_s, "cached_noop_s": noop_s, "app_only_s": app_s, "app_only_again_s": app2_s,
    "image_id": cold.image_id, "digest": cold.digest, "size_bytes": cold.size_bytes,
    "app_layers_differ": app.image_id != cold.image_id,
}))
"""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def side(python: str, src: Path, repo: Path, prefix: list[str] | None = None) -> dict[str, Any]:
    before = load()
    site = os.environ.get("BENCH_SITE", "")
    path = f"{src}:{site}" if site else str(src)
    argv = [*(prefix or []), "env", f"PYTHONPATH={path}", python, "-c", DRIVER, str(repo), IMAGE]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if run.returncode != 0:
        sys.exit(f"{argv[:6]} failed:\n{run.stderr[-4000:]}")
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    return {**figures, "load_before": before, "load_after": load()}


@contextmanager
def main_worktree() -> Iterator[Path]:
    """main's code and inputs, checked out beside this one (removed afterwards)."""
    target = Path(tempfile.mkdtemp(prefix="bench-main-"))
    target.rmdir()
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(target), "main"],
        check=True,
    )
    try:
        yield target
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(target)])


def substitution(root: Path) -> dict[str, Any]:
    """Publish the after build to a local registry, then substitute into an empty storage."""
    runner = Runner()
    store = Store(default_store())
    with (
        tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp,
        start_registry(Path(tmp) / "registry") as registry,
    ):
        records = Path(tmp) / "substitutes.json"
        dest = f"{registry.host}/bench"
        request = PublishRequest(dest, [IMAGE], [], tls_verify=False, records=records)
        (pushed,) = publish(root, request, runner)
        with throwaway_storage(store, runner, "bench-subst-") as storage:
            builder = Builder(
                root=root, store=store, runner=runner, storage_args=storage.args,
                substituter=Substituter(dest, records, tls_verify=False),
            )  # fmt: skip
            before, started = load(), time.monotonic()
            (result,) = builder.build([IMAGE])
            seconds = round(time.monotonic() - started, 2)
    local = Builder.create(root).build([IMAGE])[0]
    return {
        "substitute_s": seconds,
        "substituted": result.substituted,
        "same_image_id": result.image_id == local.image_id,
        "reference": pushed.reference,
        "load_before": before,
    }


def main() -> None:
    """``bench_build.py [root|rootless]``: both parts (default), or one, merged into the file."""
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates (and removes) a build user")
    python = sys.executable
    Builder.create(REPO).fetch([IMAGE])
    results: dict[str, Any] = {}
    with main_worktree() as main_tree, tempfile.TemporaryDirectory(prefix="bench-") as frozen:
        # Frozen copies, so that edits made meanwhile do not change the inputs.
        after_repo = copy_checkout(Path(frozen) / "after")
        before_repo = copy_checkout(Path(frozen) / "before", main_tree)
        Builder.create(main_tree).fetch([IMAGE])
        for label in ("before", "after"):
            results[label] = {}
        for label, src, repo in (("before", main_tree / "src", before_repo),
                                 ("after", REPO / "src", after_repo)):  # fmt: skip
            if part == "rootless":
                break
            results[label]["root"] = side(python, src, repo)
            print(f"{label} root: {results[label]['root']}", flush=True)
        if part != "rootless":
            results["after"]["substitution"] = substitution(after_repo)
            print(f"substitution: {results['after']['substitution']}", flush=True)
        if part != "root":
            rootless(results, main_tree)
    write(results, part)


def rootless(results: dict[str, Any], main_tree: Path) -> None:
    """Each side's cold, no-op and app-only figures as a fresh plain user (vfs)."""
    with build_user(IMAGE) as user:
        user_python_path = user_python(user)
        if user_python_path is None:
            sys.exit(f"no Python {sys.version_info[:2]} that {user.name} can run")
        for label, tree in (("before", main_tree), ("after", REPO)):
            staged = user.stage / f"{label}-repo"
            copy_checkout(staged, tree)
            shutil.copytree(tree / "src", user.stage / f"{label}-src")
            subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(staged),
                            str(user.stage / f"{label}-src")], check=True)  # fmt: skip
            os.environ["BENCH_SITE"] = str(user.stage / "site")
            figures = side(user_python_path, user.stage / f"{label}-src", staged, user.argv_prefix)
            results[label]["rootless"] = figures
            print(f"{label} rootless: {figures}", flush=True)


def write(results: dict[str, Any], part: str) -> None:
    path = REPO / "bench" / "results" / "build.json"
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if part != "all" and path.is_file():  # one part again: merged into the last full figures
        previous = json.loads(path.read_text())
        for label in ("before", "after"):
            results[label] = {**previous.get(label, {}), **results[label]}
        runs = {**previous.get("runs", {}), part: when}
    else:
        runs = {"root": when, "rootless": when}
    after, before = results["after"], results["before"]
    identical = {
        label: results[label].get("root", {}).get("image_id")
        == results[label].get("rootless", {}).get("image_id")
        for label in ("before", "after")
    }
    out = {
        "when": when,
        "runs": runs,
        "host": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "image": IMAGE,
        "before": before,
        "after": after,
        "identical_root_rootless": identical,
        "notes": "before = main's builder (buildah bud, Containerfile stages); after = layers as "
        "derivations in the store, assembled as an OCI layout with skopeo. cold = empty "
        "storage and a store holding only the fetched inputs (every layer made, mmdebstrap "
        "included); app_only = one line added to src/codebase_mcp/__init__.py (again: a "
        "second, different edit); substitution = pull by pinned digest from a local registry "
        "into an empty storage. load = 1/5/15-min load average (other jobs share the host). "
        "runs: when each part (root, rootless; before and after in the same run) was measured.",
    }
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
