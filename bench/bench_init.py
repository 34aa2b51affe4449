"""Startup overhead of `codebase-mcp init` → bench/results/init.json.

    .venv/bin/python bench/bench_init.py [--runs 15] [--baseline REF] [--bytecode cached|none]
        [--image IMAGE] [--baseline-image IMAGE] [--imports N] [--output bench/results/init.json]

"Overhead" is the time from spawning ``codebase-mcp init … -- CMD`` until CMD
runs, with every dependency already up and no migration pending: a real
Postgres (the project's image, started here), a fake Ollama API on loopback
with the model present, and the shipped migrations already applied. CMD is
``date +%s%N``, which prints its start time and exits. Scenarios:

- ``exec``: spawning ``date`` directly (the floor: fork/exec and the clock).
- ``supervise_only``: ``init --no-wait-database --no-wait-embedder --no-migrate``
  (interpreter, CLI and settings imports, spawning).
- ``full``: waits for Postgres (connect, auth, ``SELECT 1``, pgvector) and the
  embedder (``GET /``, ``/api/tags``), checks migrations are at head, then spawns.

``--baseline REF`` also runs ``supervise_only`` and ``full`` with the source tree
of git revision REF (extracted with ``git archive``, put first on PYTHONPATH) in
the same run, the runs of all scenarios interleaved, so before and after are
measured under the same load.

``--image IMAGE`` (and ``--baseline-image IMAGE``) add ``full`` run inside a server
image, as its ENTRYPOINT runs it (Python and bytecode of the image, PID 1):
``podman run --network host --entrypoint /bin/sh IMAGE -c 'date; exec codebase-mcp
init -- date'``, the time between the two dates, both taken in the container (the
container's own start is not counted).

``--bytecode cached`` (the default) compiles every module once into a private
PYTHONPYCACHEPREFIX before timing, as the server image does at build time
(``compileall``); ``none`` keeps the environment as it is (with
PYTHONDONTWRITEBYTECODE=1 the project's own modules are then compiled at every start).

Also recorded: the init's own ``init.ready elapsed_s`` (waits + migration
check, measured inside the process) and the CPU time of each run. Target: ``full`` median < 300 ms.
Noisy shared machine: the load averages are stored with the figures.

``--imports N`` adds where the start-up goes: N more runs of each ``full`` scenario
under ``-X importtime`` (PYTHONPROFILEIMPORTTIME=1), each module's import time
counted for the family that pulled it in (pydantic, click, asyncio/asyncpg,
urllib/http.client, SQLAlchemy/alembic, the project, else interpreter start-up and
stdlib), medians over the runs. importtime's own overhead inflates these figures:
compare them with each other, not with the timings above.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.postgres import start_postgres
from tests.unit.init.fake_ollama import OllamaState, fake_ollama

from codebase_mcp import migrate

CLI = str(Path(sys.executable).with_name("codebase-mcp"))
TARGET_MS = 300.0
CHILD = ["date", "+%s%N"]
SUPERVISE_ONLY = ["--no-wait-database", "--no-wait-embedder", "--no-migrate"]


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def once(argv: list[str], env: dict[str, str]) -> tuple[float, float | None, float]:
    """(ms from spawn to the child's start, the init's init.ready elapsed in ms, CPU ms).

    The CPU time (user + sys of the whole run, teardown included) depends far
    less on other load on the machine than the wall-clock figures. In an image
    run the start is the time the container's shell printed just before exec
    (first stderr line), and the CPU time is podman's, not the init's.
    """
    cpu_before = children_cpu_ms()
    start_ns = time.time_ns()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    cpu = children_cpu_ms() - cpu_before
    if argv[0] == "podman":
        start_ns = int(done.stderr.splitlines()[0])
    child_ns = int(done.stdout.strip().splitlines()[-1])
    ready = None
    for line in done.stderr.splitlines():
        if line.startswith("{") and '"init.ready"' in line:
            ready = float(json.loads(line)["elapsed_s"]) * 1000
    return (child_ns - start_ns) / 1e6, ready, cpu


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def extract_source(ref: str, into: Path) -> str:
    """``src/`` and ``migrations/`` of git revision ``ref`` under ``into``; the full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src", "migrations"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    return commit


# Root packages -> the family their import time is counted in (the rest: "stdlib, other").
FAMILIES = {
    "pydantic": "pydantic + pydantic-settings",
    "pydantic_core": "pydantic + pydantic-settings",
    "pydantic_settings": "pydantic + pydantic-settings",
    "annotated_types": "pydantic + pydantic-settings",
    "typing_inspection": "pydantic + pydantic-settings",
    "dotenv": "pydantic + pydantic-settings",
    "click": "click",
    "asyncio": "asyncio + asyncpg",
    "asyncpg": "asyncio + asyncpg",
    "_asyncio": "asyncio + asyncpg",
    "concurrent": "asyncio + asyncpg",
    "urllib.request": "urllib.request + http.client + email + ssl",
    "urllib.error": "urllib.request + http.client + email + ssl",
    "urllib.response": "urllib.request + http.client + email + ssl",
    "http": "urllib.request + http.client + email + ssl",
    "email": "urllib.request + http.client + email + ssl",
    "ssl": "urllib.request + http.client + email + ssl",
    "_ssl": "urllib.request + http.client + email + ssl",
    "sqlalchemy": "sqlalchemy + alembic",
    "alembic": "sqlalchemy + alembic",
    "codebase_mcp": "codebase_mcp",
}


def _family(name: str) -> str | None:
    return FAMILIES.get(".".join(name.split(".")[:2])) or FAMILIES.get(
        name.split(".", maxsplit=1)[0]
    )


def import_families(stderr: str) -> dict[str, float]:
    """Import time (ms) per family, each module counted for whoever pulled it in; + "total".

    ``-X importtime`` prints a module after the modules it imported, indented by
    depth; read backwards, each module comes before them, so a stack gives its
    importers. A module counts for its own family, else for its nearest importer
    that has one (``re`` first imported by click counts for click), else for the
    interpreter's start-up and the stdlib.
    """
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, label = line[len("import time:") :].split("|")
        name = label.strip()
        depth = (len(label) - len(label.lstrip()) - 1) // 2
        rows.append((depth, name, int(self_us) / 1000))
    sums: dict[str, float] = {"total": 0.0}
    importers: list[str] = []
    for depth, name, ms in reversed(rows):
        del importers[depth:]
        family = next(
            (f for f in map(_family, [name, *reversed(importers)]) if f),
            "interpreter start-up, stdlib",
        )
        sums[family] = sums.get(family, 0.0) + ms
        sums["total"] += ms
        importers.append(name)
    return sums


def import_breakdown(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        samples.append(import_families(done.stderr))
    families = sorted({name for sample in samples for name in sample})
    medians = {name: statistics.median(s.get(name, 0.0) for s in samples) for name in families}
    return {name: round(value, 1) for name, value in sorted(medians.items(), key=lambda kv: -kv[1])}


def in_image(image: str) -> list[str]:
    """``podman run`` of the image's init, timed from inside (see the module docstring).

    The settings are passed by name (``--env NAME``: podman copies the value from
    its environment), so the database password is not on a command line.
    """
    passed = ["DATABASE_URL", "EMBEDDER_URL", "EMBEDDER_MODEL", "CODEBASE_MCP_INIT_LOG_FORMAT"]
    script = 'date +%s%N >&2; exec /opt/venv/bin/codebase-mcp init "$@"'
    return [
        "podman", "run", "--rm", "--network", "host",
        "--name", f"codebase-mcp-bench-init-{os.urandom(4).hex()}",
        *(f"--env={name}" for name in passed),
        "--entrypoint", "/bin/sh", image, "-c", script, "sh", "--", *CHILD,
    ]  # fmt: skip


def image_revision(image: str) -> str:
    """The git revision the image was built from (its OCI label)."""
    label = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
    return subprocess.run(
        ["podman", "image", "inspect", "--format", label, image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline", metavar="REF", help="git revision to compare with")
    parser.add_argument("--bytecode", choices=["cached", "none"], default="cached")
    parser.add_argument("--image", help="also time the init inside this server image")
    parser.add_argument("--baseline-image", help="and inside this one (the baseline's)")
    parser.add_argument("--imports", type=int, default=0, metavar="N", help="importtime runs")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "init.json")
    args = parser.parse_args()

    load_before = loadavg()
    state = OllamaState(models=["all-minilm:latest"])
    with (
        tempfile.TemporaryDirectory(prefix="bench-init-") as scratch,
        start_postgres() as pg,
        fake_ollama(state) as ollama_url,
    ):
        dsn = pg.dsn("codebase")
        applied = asyncio.run(migrate.upgrade_head(dsn))
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "EMBEDDER_URL": ollama_url,
            "EMBEDDER_MODEL": "all-minilm",
            "CODEBASE_MCP_INIT_LOG_FORMAT": "json",
        }
        if args.bytecode == "cached":
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
        runs: dict[str, tuple[list[str], dict[str, str]]] = {
            "exec": (CHILD, env),
            "supervise_only": ([CLI, "init", *SUPERVISE_ONLY, "--", *CHILD], env),
            "full": ([CLI, "init", "--", *CHILD], env),
        }
        baseline: dict[str, object] | None = None
        if args.baseline:
            source = Path(scratch) / "baseline"
            commit = extract_source(args.baseline, source)
            old_env = {**env, "PYTHONPATH": str(source / "src")}
            runs["baseline.supervise_only"] = runs["supervise_only"][0], old_env
            runs["baseline.full"] = runs["full"][0], old_env
            baseline = {"ref": args.baseline, "commit": commit}
        images = {"image.full": args.image, "baseline.image.full": args.baseline_image}
        images = {name: image for name, image in images.items() if image}
        for name, image in images.items():
            runs[name] = in_image(image), env
        if args.baseline_image:
            baseline = {**(baseline or {}), "image": args.baseline_image}
        print(
            f"migrated to {applied.after}; {args.runs} runs per scenario, interleaved",
            file=sys.stderr,
        )
        for name, (argv, run_env) in runs.items():  # compile (cached mode), warm the caches
            for _ in range(2):
                once(in_image(images[name]) if name in images else argv, run_env)
        totals: dict[str, list[float]] = {name: [] for name in runs}
        inside: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, (argv, run_env) in runs.items():
                run_argv = in_image(images[name]) if name in images else argv  # a fresh name
                total, ready, cpu = once(run_argv, run_env)
                totals[name].append(total)
                cpus[name].append(cpu)
                if ready is not None:
                    inside[name].append(ready)
        results: dict[str, dict[str, object]] = {}
        for name, (argv, _) in runs.items():
            entry: dict[str, object] = {"argv": argv, **summary(totals[name])}
            if name in images:
                entry["argv"] = argv[argv.index("--entrypoint") :]
                entry["image"] = images[name]
                entry["image_revision"] = image_revision(images[name])
            else:
                entry["cpu"] = summary(cpus[name])
            if inside[name]:
                entry["init_ready"] = summary(inside[name])
            results[name] = entry
            print(f"{name:24} {summary(totals[name])}", file=sys.stderr)
        if args.imports:
            for name in ("full", "baseline.full"):
                if name in runs:
                    breakdown = import_breakdown(*runs[name], runs=args.imports)
                    results[name]["imports_ms"] = breakdown
                    print(f"{name:24} imports {breakdown}", file=sys.stderr)

    full_median = results["full"]["median_ms"]
    assert isinstance(full_median, float)
    report: dict[str, object] = {
        "benchmark": "init startup overhead (dependencies up, no pending migration)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": args.runs,
        "bytecode": args.bytecode,
        "target_ms": TARGET_MS,
        "full_median_ms": full_median,
        "meets_target": full_median < TARGET_MS,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": loadavg(),
        },
        "migration_head": applied.after,
        "scenarios": {k: v for k, v in results.items() if not k.startswith("baseline.")},
    }
    if baseline is not None:
        if "baseline.full" in results:
            baseline["full_median_ms"] = results["baseline.full"]["median_ms"]
        baseline["scenarios"] = {
            k.removeprefix("baseline."): v for k, v in results.items() if k.startswith("baseline.")
        }
        report["baseline"] = baseline
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}: full median {full_median} ms (target {TARGET_MS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
