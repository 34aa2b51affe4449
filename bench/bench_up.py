"""Time from `codebase-mcp up` (images built) to a healthy pod → bench/results/up.json.

    .venv/bin/python bench/bench_up.py [--runs 3] [--output bench/results/up.json]

Run 1 is cold (fresh volumes: initdb, migrations); the next runs are warm
(`down` kept the volumes), which is what a user sees day to day. Each run is
the real CLI in a subprocess, test profile (own names, random port), so it
does not touch a running `codebase-mcp` pod. The target is < 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from codebase_mcp import proc
from codebase_mcp.builder import api
from codebase_mcp.pod.features import detect_version

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("codebase-mcp"))
TARGET_SECONDS = 20.0


def up(name: str, env: dict[str, str], repo: Path) -> dict[str, object]:
    started = time.monotonic()
    result = proc.run(
        # The images were built (cached) above: time `up` itself.
        [
            CLI,
            "up",
            "--profile",
            "test",
            "--name",
            name,
            "--repo",
            str(repo),
            "--json",
            "--no-build",
        ],
        env=env,
        timeout=600,
    )
    wall = time.monotonic() - started
    data = json.loads(result.stdout[result.stdout.index("{") :])
    return {
        "seconds": round(wall, 2),
        "healthy_after": data["healthy_after"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "up.json")
    args = parser.parse_args()

    print("building images (cached)...", file=sys.stderr)
    api.build(["postgres", "embedder", "server"])
    refs = {name: api.image_ref(name) for name in ("postgres", "embedder", "server")}
    version = detect_version(proc.Runner())
    name = f"codebase-mcp-bench-{secrets.token_hex(3)}"
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        env = {"CODEBASE_MCP_DATA_DIR": str(Path(tmp) / "data"), "CODEBASE_MCP_QUIET": "1"}
        repo = ROOT / "src" / "codebase_mcp" / "pod"
        try:
            for index in range(args.runs):
                run = up(name, env, repo)
                run["kind"] = "cold" if index == 0 else "warm"
                runs.append(run)
                print(f"run {index + 1}: {run}", file=sys.stderr)
                proc.run([CLI, "down", "--name", name], env=env, timeout=300)
        finally:
            proc.run([CLI, "down", "--name", name, "--volumes"], env=env, timeout=300, check=False)
    warm = [float(str(r["seconds"])) for r in runs if r["kind"] == "warm"]
    report = {
        "benchmark": "up: `codebase-mcp up` with images built → every container's probe passes",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "podman": str(version),
        },
        "images": refs,
        "runs": runs,
        "target_seconds": TARGET_SECONDS,
        "warm_median_seconds": round(statistics.median(warm), 2) if warm else None,
        "meets_target": all(float(str(r["seconds"])) < TARGET_SECONDS for r in runs),
        "seed_target_seconds": 120,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
