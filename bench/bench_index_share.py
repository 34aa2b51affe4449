#!/usr/bin/env python3
"""A teammate's first index: from scratch (before) vs import of a shared index, then
indexing their own clone (after), in one run (issue 15, "Shareable indexes").

    .venv/bin/python bench/bench_index_share.py [--repo cobra] [--rate 18]

A throwaway Postgres container (the project's image, named share-bench-pg-*)
holds two databases. In ``origin`` the repository (eval/repos.toml, default
cobra 1.8.1) is indexed from scratch through the real MCP tools against the
Ollama-API stand-in at ``--rate`` chunks/s (``before``: what every teammate
paid). It is exported (``indexshare.export_project`` + ``indexfile.encode``,
size and seconds). In ``teammate``, a fresh database, the file is decoded,
verified and imported (seconds), then the teammate's own clone, at another path
with one file edited, is indexed (``after``: chunks embedded vs reused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO))
sys.path.insert(1, str(REPO / "bench"))

from servers import create_database

DIGEST = "5ec0c1d0" * 8


async def measure(origin: str, teammate: str, source: Path, rate: float, work: Path) -> Any:
    from bench_second_clone import index_once  # type: ignore[import-not-found]
    from tests.integration.server.fake_embedder import running_fake_embedder

    from codebase_mcp.migrate import upgrade_head
    from codebase_mcp.server import indexfile, indexshare

    await upgrade_head(origin)
    await upgrade_head(teammate)
    mine = work / "teammate-clone"
    shutil.copytree(source, mine, symlinks=True)
    edited = sorted(p for p in mine.rglob("*.go") if p.is_file())[0]
    edited.write_text(edited.read_text() + "\n// edited by the teammate\nfunc teammateEdit() {}\n")
    with running_fake_embedder(per_input_delay=1.0 / rate, digest=DIGEST) as fake:
        before = await index_once(origin, fake, source, "team", cache=True)
        started = time.perf_counter()
        data = indexfile.encode(await indexshare.export_project(origin, "team"))
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        index = indexshare.relocate(indexfile.decode(data), str(mine), None)
        result = await indexshare.import_index(teammate, index, replace_existing=False)
        import_s = time.perf_counter() - started
        fake.reset()
        after = await index_once(teammate, fake, mine, "team", cache=True)
    return {
        "before_index_from_scratch": before,
        "export": {"bytes": len(data), "seconds": round(export_s, 2), "chunks": result.chunks},
        "import": {"seconds": round(import_s, 2), "files": result.files},
        "after_index_own_clone": after,
        "edited_file": str(edited.relative_to(mine)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", default="cobra", help="a name in eval/repos.toml")
    parser.add_argument("--rate", type=float, default=18.0, help="embedder chunks per second")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "index-share.json")
    args = parser.parse_args()

    from tests.support.postgres import start_postgres

    from codebase_mcp.evaluation.repos import checkout, load_pins, select

    (pin,) = select(load_pins(REPO / "eval" / "repos.toml"), [args.repo], None)
    source = checkout(pin)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repository": f"{pin.name} {pin.version} ({pin.subdirectory})",
        "embedder": f"Ollama-API stand-in at {args.rate:g} chunks/s, one request at a time",
        "load_at_start": os.getloadavg(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="share-bench-") as tmp,
        start_postgres(name=f"share-bench-pg-{secrets.token_hex(4)}") as server,
    ):
        for name in ("origin", "teammate"):
            asyncio.run(create_database(server.admin_dsn, name))
        report.update(
            asyncio.run(
                measure(server.dsn("origin"), server.dsn("teammate"), source, args.rate, Path(tmp))
            )
        )
    before, after = report["before_index_from_scratch"], report["after_index_own_clone"]
    first_query_after = report["import"]["seconds"]
    report["summary"] = {
        "seconds_before": before["seconds"],
        "seconds_after_import": first_query_after,
        "seconds_after_import_plus_index": round(first_query_after + after["seconds"], 2),
        "chunks_embedded_before": before["chunks_embedded"],
        "chunks_embedded_after": after["chunks_embedded"],
        "chunks_reused_after": after["chunks_reused"],
        "files_indexed_after": after["files_indexed"],
        "export_bytes": report["export"]["bytes"],
        "export_seconds": report["export"]["seconds"],
    }
    report["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
