"""Search-quality evaluation: index a real library, ask natural-language queries, score.

For each query in ``queries.json`` the answer is the file(s) that implement what
it asks for. Results are ranked chunks; we take the order in which *files* first
appear and report recall@1/@5/@10 (answer file among the first k files) and MRR
(1 / rank of the first answer file, 0 beyond 10). Both search modes (vector only,
hybrid vector + full text with RRF) run over the same index.

Embeddings come from the REAL model: all-MiniLM-L6-v2 computed in-process with
the project's embedder (``codebase_mcp.embedder``, the same code the embedder
image serves), or over HTTP from any Ollama-API embedder with ``--embedder-url``.

    .venv/bin/python eval/run_eval.py                      # starts the postgres image
    .venv/bin/python eval/run_eval.py --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codebase_mcp.server import db  # noqa: E402
from codebase_mcp.server.config import ServerSettings  # noqa: E402
from codebase_mcp.server.embeddings import Embedder, OllamaEmbedder  # noqa: E402
from codebase_mcp.server.indexer import Indexer, Progress  # noqa: E402
from codebase_mcp.server.search import Filters, TermStatsCache, search  # noqa: E402


class LocalEmbedder:
    """all-MiniLM-L6-v2 in-process through the project's numpy embedder."""

    model = "all-minilm"

    def __init__(self) -> None:
        from codebase_mcp.embedder.encoder import SentenceEncoder
        from codebase_mcp.embedder.model_files import load_model_files

        self.encoder = SentenceEncoder(load_model_files())
        self.calls = 0

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        vectors = await asyncio.to_thread(self.encoder.embed, list(texts))
        return [list(map(float, v)) for v in vectors]

    async def embed_query(self, text: str) -> list[float]:
        (vector,) = await self.embed_documents([text])
        return vector


def file_ranking(rel_paths: list[str]) -> list[str]:
    return list(dict.fromkeys(rel_paths))


def score(rankings: list[tuple[list[str], list[str]]]) -> dict[str, float]:
    def first_rank(files: list[str], answers: list[str]) -> int | None:
        for rank, name in enumerate(files, start=1):
            if name in answers:
                return rank
        return None

    ranks = [first_rank(files, answers) for files, answers in rankings]
    n = len(ranks)
    return {
        "recall@1": round(sum(1 for r in ranks if r and r <= 1) / n, 4),
        "recall@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4),
        "recall@10": round(sum(1 for r in ranks if r and r <= 10) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r and r <= 10) / n, 4),
    }


async def evaluate(database_url: str, embedder: Embedder, spec: dict[str, Any]) -> dict[str, Any]:
    from codebase_mcp.migrate import upgrade_head

    package = spec["repository"]["package"]
    version = importlib.metadata.version(package)
    if version != spec["repository"]["version"]:
        print(f"warning: {package} {version} installed, queries written for "
              f"{spec['repository']['version']}", file=sys.stderr)  # fmt: skip
    module = __import__(package)
    root = str(Path(module.__file__).parent.resolve())

    await upgrade_head(database_url)
    pool = await db.create_pool(database_url)
    settings = ServerSettings()
    try:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM projects WHERE id = 'eval'")

        async def report(progress: Progress) -> None:
            return None

        started = time.perf_counter()
        progress = await Indexer(pool, embedder, settings).run(
            project_id="eval", root=root, force=True, report=report
        )
        index_seconds = time.perf_counter() - started
        async with pool.acquire() as conn:
            # What autovacuum would do soon after: the full-text planner reads the
            # word frequencies ANALYZE gathers (a run must not depend on its timing).
            await conn.execute("ANALYZE chunks")

        results: dict[str, Any] = {}
        term_stats = TermStatsCache()  # as the server keeps one
        for mode in ("vector", "hybrid"):
            rankings = []
            per_query = []
            latencies = []
            lexical: dict[str, int] = {}
            for item in spec["queries"]:
                vector = await embedder.embed_query(item["query"])
                t = time.perf_counter()
                async with pool.acquire() as conn:
                    found = await search(
                        conn, "eval", item["query"], vector, Filters(), 30, mode=mode,
                        ef_search=settings.ef_search, expected_model=embedder.model,
                        text_max_cost=settings.text_search_max_cost, term_stats=term_stats,
                    )  # fmt: skip
                latencies.append((time.perf_counter() - t) * 1000)
                hits = found.hits
                if found.lexical:
                    lexical[found.lexical] = lexical.get(found.lexical, 0) + 1
                files = file_ranking([h.rel_path for h in hits])[:10]
                rankings.append((files, item["files"]))
                per_query.append(
                    {"query": item["query"], "answer": item["files"], "top5": files[:5]}
                )
            results[mode] = {
                **score(rankings),
                "search_ms_p50": round(statistics.median(latencies), 2),
                **({"lexical": lexical} if lexical else {}),
                "queries": per_query,
            }
        return {
            "repository": {**spec["repository"], "installed_version": version},
            "model": embedder.model,
            "embedder": type(embedder).__name__,
            "queries": len(spec["queries"]),
            "index": {
                "files": progress.counters["files_indexed"],
                "chunks": progress.counters["chunks_created"],
                "seconds": round(index_seconds, 1),
                "timings": progress.timings,
            },
            "settings": {
                "max_chunk_chars": settings.max_chunk_chars,
                "chunk_window_lines": settings.chunk_window_lines,
                "ef_search": settings.ef_search,
                "text_search_max_cost": settings.text_search_max_cost,
            },
            "results": results,
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="default: start the project's postgres image")
    parser.add_argument("--embedder-url", help="Ollama-API embedder (default: in-process)")
    parser.add_argument("--model", default="all-minilm")
    parser.add_argument("--queries", type=Path, default=Path(__file__).with_name("queries.json"))
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "results" / "starlette-all-minilm.json",
    )
    args = parser.parse_args()
    spec = json.loads(args.queries.read_text())

    with ExitStack() as stack:
        database_url = args.database_url
        if not database_url:
            from tests.support.postgres import start_postgres

            server = stack.enter_context(start_postgres())
            database_url = server.dsn("postgres")
        embedder: Embedder
        if args.embedder_url:
            embedder = OllamaEmbedder(args.embedder_url, args.model)
        else:
            embedder = LocalEmbedder()
        report = asyncio.run(evaluate(database_url, embedder, spec))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for mode, result in report["results"].items():
        print(f"{mode:7s} recall@1={result['recall@1']:.3f} recall@5={result['recall@5']:.3f} "
              f"recall@10={result['recall@10']:.3f} MRR={result['mrr']:.3f}")  # fmt: skip
    print(f"index: {report['index']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
