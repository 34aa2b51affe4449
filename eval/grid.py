"""Choose hybrid search's fusion on the whole eval: a small grid, every repository,
and a leave-one-repository-out check against overfitting.

    .venv/bin/python eval/grid.py --database-url postgresql://...   # or a fresh postgres image
    .venv/bin/python eval/grid.py --tag grid                        # results/grid.json, grid.md

Every role=eval repository is indexed once with the server's own indexer (the
embedding cache of eval/run.py makes that cheap after the first run). For each
query the two halves run once through the server's own SQL (``vector_search``,
``text_search`` for each BM25 setting), then every fusion of the grid is applied
to the same lists with the server's own ``fuse_hybrid``, so a configuration
costs no SQL. Scores: MRR@10, R@1, R@5 over files, per repository and as the
mean over repositories (each weighs the same). Leave-one-out: for each
repository, the configuration with the best mean MRR on the *other* repositories
is scored on it; the mean of those held-out scores is what the choice is worth
on a repository it was not chosen on.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run as runner  # noqa: E402  (eval/run.py: embedders, indexing, checkout)

from codebase_mcp.evaluation.embcache import CachedEmbedder, VectorStore  # noqa: E402
from codebase_mcp.evaluation.queries import load_query_set  # noqa: E402
from codebase_mcp.evaluation.repos import checkout, default_cache, load_pins, select  # noqa: E402
from codebase_mcp.evaluation.scoring import Scored, file_ranking, first_rank, metrics  # noqa: E402
from codebase_mcp.server import db  # noqa: E402
from codebase_mcp.server import search as S  # noqa: E402
from codebase_mcp.server.config import ServerSettings  # noqa: E402

LIMIT = 10
DEPTH = max(LIMIT * 3, 30)  # what search() asks of each half
BM25_GRID = [S.Bm25(1.2, 0.75), S.Bm25(1.2, 0.4), S.Bm25(0.8, 0.75)]
FUSION_GRID = [
    *(S.Fusion("rrf", k, w) for k in (10, 30, 60) for w in (0.5, 0.6, 0.7)),
    *(S.Fusion("convex", 60, a) for a in (0.5, 0.6, 0.7, 0.8)),
]


def config_name(kind: str, bm25: S.Bm25 | None = None, fusion: S.Fusion | None = None) -> str:
    if kind == "vector":
        return "vector"
    b = f"bm25(k1={bm25.k1:g},b={bm25.b:g})" if bm25 else ""
    if kind == "lexical":
        return f"lexical {b}"
    assert fusion is not None
    f = (
        f"rrf(k={fusion.k},w={fusion.weight:g})"
        if fusion.method == "rrf"
        else f"convex(w={fusion.weight:g})"
    )
    return f"hybrid {b} {f}"


def copies(hits: list[S.Hit]) -> list[S.Hit]:
    return [dataclasses.replace(h) for h in hits]


async def lists_for_repo(
    pool: Any, project: str, queries: list[Any], vectors: list[list[float]]
) -> list[dict[str, Any]]:
    """Per query: the vector list and one lexical list per BM25 setting."""
    out = []
    async with pool.acquire() as conn:
        project_row = await db.get_project(conn, project)
        assert project_row is not None
        for query, vector in zip(queries, vectors, strict=True):
            semantic = await S.vector_search(conn, project_row, vector, S.Filters(), DEPTH, 100)
            lexical = {}
            for bm25 in BM25_GRID:
                found = await S.text_search(
                    conn, project_row, query.query, vector, S.Filters(), DEPTH, 0,
                    max_cost=ServerSettings().text_search_max_cost, bm25=bm25,
                )  # fmt: skip
                lexical[bm25] = found.hits
            out.append({"query": query, "semantic": semantic, "lexical": lexical})
    return out


def score(lists: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every configuration's metrics on one repository."""
    outcomes: dict[str, list[Scored]] = {}

    def add(name: str, hits: list[S.Hit], query: Any) -> None:
        files = file_ranking(h.rel_path for h in hits[:LIMIT])
        outcomes.setdefault(name, []).append(Scored(query.kind, first_rank(files, query.files)))

    for item in lists:
        query = item["query"]
        add("vector", item["semantic"], query)
        for bm25, lexical in item["lexical"].items():
            add(config_name("lexical", bm25), lexical, query)
            for fusion in FUSION_GRID:
                fused = S.fuse_hybrid(copies(item["semantic"]), copies(lexical), LIMIT, fusion)
                add(config_name("hybrid", bm25, fusion), fused, query)
    return {name: metrics(found) for name, found in outcomes.items()}


def leave_one_out(per_repo: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    names = list(per_repo)
    hybrid = [c for c in next(iter(per_repo.values())) if c.startswith("hybrid")]
    out: dict[str, Any] = {}
    for held in names:
        rest = [n for n in names if n != held]
        best = max(hybrid, key=lambda c: sum(per_repo[n][c]["mrr@10"] for n in rest) / len(rest))
        out[held] = {"chosen": best, "held_out_mrr@10": per_repo[held][best]["mrr@10"]}
    out["mean_held_out_mrr@10"] = round(
        sum(v["held_out_mrr@10"] for v in out.values()) / len(names), 4
    )
    return out


def markdown(report: dict[str, Any]) -> str:
    per_repo = report["repos"]
    repos = list(per_repo)
    configs = sorted(report["mean"], key=lambda c: -report["mean"][c]["mrr@10"])
    lines = [
        f"# Fusion grid `{report['tag']}` ({report['date']}, load {report['load']})",
        "",
        f"MRR@10 per repository and mean over repositories; limit {LIMIT}, each half "
        f"{DEPTH} deep. Chosen on the mean: **{report['best']}**.",
        "",
        "| configuration | " + " | ".join(repos) + " | mean | R@1 | R@5 |",
        "|---|" + "---|" * (len(repos) + 3),
    ]
    for c in configs:
        m = report["mean"][c]
        cells = " | ".join(f"{per_repo[r][c]['mrr@10']:.3f}" for r in repos)
        lines.append(
            f"| {c} | {cells} | **{m['mrr@10']:.3f}** | {m['recall@1']:.3f} | {m['recall@5']:.3f} |"
        )
    loo = report["leave_one_out"]
    lines += ["", "Leave one repository out (chosen on the other four, scored on it):", ""]
    lines += ["| held out | chosen | MRR@10 |", "|---|---|---|"]
    for r in repos:
        lines.append(f"| {r} | {loo[r]['chosen']} | {loo[r]['held_out_mrr@10']:.3f} |")
    lines += [f"| **mean** | | **{loo['mean_held_out_mrr@10']:.3f}** |", ""]
    return "\n".join(lines)


async def evaluate(database_url: str, embedder: Any, work: list[Any]) -> dict[str, Any]:
    from codebase_mcp.migrate import upgrade_head

    await upgrade_head(database_url)
    pool = await db.create_pool(database_url)
    settings = ServerSettings()
    per_repo: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        for pin, root, query_set in work:
            project = f"eval-{pin.name}"
            print(f"{pin.name}: indexing", file=sys.stderr, flush=True)
            await runner.index_repo(pool, embedder, settings, project, root)
            vectors = [await embedder.embed_query(q.query) for q in query_set.queries]
            lists = await lists_for_repo(pool, project, list(query_set.queries), vectors)
            per_repo[pin.name] = score(lists)
    finally:
        await pool.close()
    configs = list(next(iter(per_repo.values())))
    mean = {
        c: {
            k: round(sum(per_repo[r][c][k] for r in per_repo) / len(per_repo), 4)
            for k in ("mrr@10", "recall@1", "recall@5", "recall@10")
        }
        for c in configs
    }
    hybrid = [c for c in configs if c.startswith("hybrid")]
    best = max(hybrid, key=lambda c: mean[c]["mrr@10"])
    return {
        "repos": per_repo,
        "mean": mean,
        "best": best,
        "leave_one_out": leave_one_out(per_repo),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--database-url")
    parser.add_argument("--tag", default="grid")
    parser.add_argument("--output-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    work = []
    for pin in select(load_pins(HERE / "repos.toml"), args.names, "eval"):
        work.append((pin, checkout(pin), load_query_set(HERE / "queries" / f"{pin.name}.json")))
    inner = runner.LocalEmbedder()
    store = VectorStore(default_cache() / "embeddings.sqlite")
    embedder = CachedEmbedder(inner, store, inner.vector_identity)
    with ExitStack() as stack:
        url = args.database_url
        if not url:
            import secrets

            from tests.support.postgres import start_postgres

            name = f"codebase-mcp-grid-pg-{secrets.token_hex(4)}"
            url = stack.enter_context(start_postgres(name=name)).dsn("postgres")
        try:
            body = asyncio.run(evaluate(url, embedder, work))
        finally:
            store.close()
    report = {
        "tag": args.tag,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "embedding_cache": f"{embedder.hits} hits, {embedder.misses} embedded",
        **body,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"{args.tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.output_dir / f"{args.tag}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
