"""Builder benchmark: cold, rootfs-cached, no-op and app-only build times, and image sizes.

Run with `make bench-build`; writes bench/results/build.json. Cold builds use a
throwaway containers-storage and a freshly made root filesystem (inputs are
fetched first and not timed: that is network speed, not the builder's).
Timings on shared 2-core machines are noisy: compare ratios within one run.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.checkout import copy_checkout

from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.definitions import image_names
from codebase_mcp.builder.store import Store, default_store
from codebase_mcp.builder.verify import throwaway_storage
from codebase_mcp.proc import Runner


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = fn()
    return result, round(time.monotonic() - started, 2)


def main() -> None:
    # Measure a frozen copy of the checkout, so edits made meanwhile do not change the inputs.
    with tempfile.TemporaryDirectory(prefix="bench-checkout-") as frozen:
        measure(copy_checkout(Path(frozen)))


def measure(root: Path) -> None:
    runner = Runner()
    store = Store(default_store())
    names = image_names(root)
    Builder.create(root).fetch(names)
    figures: dict[str, dict[str, object]] = {}
    for name in names:
        with throwaway_storage(store, runner, "bench-") as storage:
            cold = Builder(
                root=root,
                store=store,
                runner=runner,
                storage_args=storage.args,
                no_cache=True,
                reuse_rootfs=False,
            )
            (cold_result,), cold_s = timed(lambda b=cold, n=name: b.build([n], force=True))
            warm = Builder(
                root=root, store=store, runner=runner, storage_args=storage.args, no_cache=True
            )
            _, warm_s = timed(lambda b=warm, n=name: b.build([n], force=True))
            noop = Builder(root=root, store=store, runner=runner, storage_args=storage.args)
            _, noop_s = timed(lambda b=noop, n=name: b.build([n]))
        figures[name] = {
            "cold_build_s": cold_s,
            "build_with_cached_rootfs_s": warm_s,
            "cached_noop_s": noop_s,
            "size_bytes": cold_result.size_bytes,
            "image_id": cold_result.image_id,
        }
        print(
            f"{name}: cold {cold_s}s, rootfs cached {warm_s}s, no-op {noop_s}s, "
            f"{cold_result.size_bytes / 1e6:.0f} MB",
            flush=True,
        )
    # App-only rebuild: one source file changes (buildah has no layer cache: each
    # stage is built again; the root filesystem comes from the store).
    Builder.create(root).build(["server"])
    with tempfile.TemporaryDirectory() as tmp:
        changed = copy_checkout(Path(tmp))
        init = changed / "src" / "codebase_mcp" / "__init__.py"
        init.write_text(init.read_text() + f"\n# bench {time.time()}\n")
        (result,), app_s = timed(lambda: Builder.create(changed).build(["server"]))
        subprocess.run(["podman", "rmi", "-f", result.ref], capture_output=True)
    figures["server"]["app_only_rebuild_s"] = app_s
    print(f"server: app-only rebuild {app_s}s", flush=True)
    out = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
        },
        "images": figures,
        "notes": "cold = empty storage + fresh mmdebstrap root filesystem; inputs pre-fetched. "
        "Reference: an unfiltered trixie postgresql-17 + pgvector rootfs tar is 524 MB "
        "(shared/HOST.md); docs, man pages, locales and the LLVM JIT are left out here.",
    }
    path = REPO / "bench" / "results" / "build.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
