"""Root vs rootless: the server image built cold by root (overlay) and by a plain user (vfs).

Run as root with `make bench-rootless`; writes bench/results/build_rootless.json.
Both builds are cold: root's in a throwaway containers-storage with a freshly
made root filesystem (mmdebstrap as root), the user's in its own new storage and
store (mmdebstrap --mode=unshare, rootless buildah). Inputs are pre-fetched (the
user's store is seeded with them) and not timed. Both must give the same image.
Timings on shared 2-core machines are noisy: the load average is recorded.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.rootless import CLI, build_user, user_python

from codebase_mcp import ui
from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.layerstore import LayerStore
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.builder.verify import scratch_of, storage_driver, throwaway_storage
from codebase_mcp.proc import Runner

IMAGE = "server"
STEP = re.compile(r"^==> \S+: (.+?)(?: \(.*\)| → .*)?$")
DONE = re.compile(r"^\s+done in ([0-9.]+)s$")


def steps(lines: list[str]) -> dict[str, float]:
    """The builder's own step timings, read from its progress lines."""
    found: dict[str, float] = {}
    current = None
    for line in lines:
        if match := STEP.match(line):
            current = match.group(1)
        elif (match := DONE.match(line)) and current is not None:
            found[current] = float(match.group(1))
    return found


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def root_cold(repo: Path) -> dict[str, object]:
    runner = Runner()
    store = Store(default_store())
    lines: list[str] = []
    original = ui.info

    def keep(message: str) -> None:
        lines.append(message)
        original(message)

    ui.info = keep  # type: ignore[assignment]
    try:
        with throwaway_storage(store, runner, "bench-") as storage:
            builder = Builder(
                root=repo, store=store, runner=runner, storage_args=storage.args,
                layer_store=LayerStore(scratch_of(storage) / "layers"),  # every layer made again
            )  # fmt: skip
            before, started = load(), time.monotonic()
            (result,) = builder.build([IMAGE], force=True)
            seconds = round(time.monotonic() - started, 2)
    finally:
        ui.info = original  # type: ignore[assignment]
    return {
        "total_s": seconds,
        "steps_s": steps(lines),
        "image_id": result.image_id,
        "digest": result.digest,
        "storage_driver": storage_driver(runner),
        "load_before": before,
        "load_after": load(),
    }


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates (and removes) a build user")
    with build_user(IMAGE) as user:
        repo = user.stage / "repo"
        root = root_cold(repo)
        print(f"root: {root['total_s']}s {root['steps_s']}", flush=True)
        python = user_python(user)
        if python is None:
            sys.exit(f"no Python {sys.version_info[:2]} that {user.name} can run")
        before, started = load(), time.monotonic()
        run = user.run(python, "-c", CLI, "image", "build", IMAGE, "--json", "--root", str(repo))
        seconds = round(time.monotonic() - started, 2)
        if run.returncode != 0:
            sys.exit(run.stderr[-3000:])
        (result,) = json.loads(run.stdout)["images"]
        driver = user.run("podman", "info", "--format", "{{.Store.GraphDriverName}}")
        rootless = {
            "total_s": seconds,
            "steps_s": steps(run.stderr.splitlines()),
            "image_id": result["image_id"],
            "digest": result["digest"],
            "storage_driver": driver.stdout.strip(),
            "load_before": before,
            "load_after": load(),
        }
        print(f"rootless: {seconds}s {rootless['steps_s']}", flush=True)
    same = root["image_id"] == rootless["image_id"] and root["digest"] == rootless["digest"]
    out = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "image": IMAGE,
        "root": root,
        "rootless": rootless,
        "identical": same,
        "rootless_over_root": round(float(seconds) / float(str(root["total_s"])), 2),
        "notes": "cold builds, inputs pre-fetched. root: throwaway storage and layer store, "
        "mmdebstrap as root. rootless: a new plain user (own storage and store), mmdebstrap "
        "--mode=unshare, the Python layers in the unshared sandbox, skopeo into vfs. "
        "load = 1/5/15-min load average.",
    }
    path = REPO / "bench" / "results" / "build_rootless.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}; identical: {same}")
    if not same:
        sys.exit("root and rootless builds differ")


if __name__ == "__main__":
    main()
