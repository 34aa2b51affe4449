"""Search-quality evaluation: index pinned foreign repositories, ask the queries, score.

Every repository of eval/repos.toml with role "eval" is fetched (sha256-pinned),
indexed with the server's own walker, chunker, indexer and SQL into the
project's postgres image, and searched with every mode the server offers
(read from codebase_mcp.server.search, so a new mode appears here without an
edit). Scores per repository, per mode and per query kind: recall@1/5/10 and
MRR@10 over files, plus the size of the answer an agent would read.

    .venv/bin/python eval/run.py                          # all repos, all modes
    .venv/bin/python eval/run.py click fd --modes hybrid  # some of them
    .venv/bin/python eval/run.py --set text_search_max_cost=500 --tag cost500
    .venv/bin/python eval/run.py --database-url postgresql://...  # a running database

Embeddings: the real all-MiniLM-L6-v2 in-process (the embedder image's code), or
any Ollama-API embedder with --embedder-url, through an on-disk cache keyed by
model identity and the sha256 of each embedded text (~/.cache/codebase-mcp/eval/
embeddings.sqlite): a re-run, with other modes or settings, embeds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import platform
import statistics
import sys
import time
import typing
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # tests.support.postgres starts the postgres image

from codebase_mcp.errors import CodebaseMcpError, ConfigError  # noqa: E402
from codebase_mcp.evaluation.embcache import CachedEmbedder, VectorStore  # noqa: E402
from codebase_mcp.evaluation.queries import (  # noqa: E402
    KINDS,
    QuerySet,
    load_query_set,
    missing_answers,
)
from codebase_mcp.evaluation.repos import RepoPin, checkout, default_cache, load_pins, select  # noqa: E402  # noqa: E402
from codebase_mcp.evaluation.scoring import (  # noqa: E402  # noqa: E402
    Scored,
    by_kind,
    file_ranking,
    first_rank,
    mean_metrics,
    metrics,
)
from codebase_mcp.server import db  # noqa: E402
from codebase_mcp.server import search as search_module  # noqa: E402
from codebase_mcp.server.config import ServerSettings  # noqa: E402
from codebase_mcp.server.embeddings import Embedder, OllamaEmbedder  # noqa: E402
from codebase_mcp.server.indexer import Indexer, Progress  # noqa: E402


# --- what the server offers --------------------------------------------------------
def server_modes() -> list[str]:
    """The search modes the server offers: ``search.SEARCH_MODES`` if the module
    defines it, else the values ``ServerSettings.search_mode`` accepts."""
    modes = getattr(search_module, "SEARCH_MODES", None)
    if modes:
        return list(modes)
    annotation = ServerSettings.model_fields["search_mode"].annotation
    return [str(m) for m in typing.get_args(annotation)]


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``--set key=value`` pairs, for ServerSettings fields (checked by name)."""
    fields = ServerSettings.model_fields
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r} is not KEY=VALUE", hint="e.g. --set ef_search=200")
        if key not in fields:
            raise ConfigError(
                f"--set {key}: ServerSettings has no such field",
                hint=f"fields: {', '.join(sorted(fields))}",
            )
        out[key] = value
    return out


def make_settings(overrides: dict[str, str]) -> ServerSettings:
    # The lexical half runs without its time budget unless asked (scores must not
    # depend on the machine's load); CODEBASE_MCP_* variables apply as in the server.
    values: dict[str, Any] = {"text_search_budget_ms": 0, **overrides}
    try:
        return ServerSettings(**values)
    except ValueError as exc:
        raise ConfigError(f"invalid --set value: {exc}", hint="check the field's type") from exc


async def run_search(
    conn: Any,
    project_id: str,
    query: str,
    vector: list[float],
    limit: int,
    mode: str,
    settings: ServerSettings,
    model: str,
    term_stats: Any,
) -> Any:
    """One search through the server's own ``search()``. Only the keyword arguments
    its signature names are passed, so a search that takes ``settings`` (fusion
    parameters) gets them, and one that does not still runs."""
    offered: dict[str, Any] = {
        "mode": mode,
        "ef_search": settings.ef_search,
        "expected_model": model,
        "text_budget_ms": settings.text_search_budget_ms,
        "text_max_cost": settings.text_search_max_cost,
        "term_stats": term_stats,
        "settings": settings,
    }
    accepted = inspect.signature(search_module.search).parameters
    kwargs = {k: v for k, v in offered.items() if k in accepted}
    return await search_module.search(
        conn, project_id, query, vector, search_module.Filters(), limit, **kwargs
    )


def answer_chars(hits: Sequence[Any], context_lines: int) -> int:
    """Characters of the answer ``search_code(detail="full")`` gives for these hits
    (one object per hit, its content and context lines)."""
    results: list[dict[str, Any]] = [
        {
            "path": hit.path,
            "relative_path": hit.rel_path,
            "start_line": hit.start_line,
            "end_line": hit.end_line,
            "language": hit.language,
            "symbol": hit.symbol,
            "score": hit.score,
            "similarity": round(hit.similarity, 6),
            "content": hit.content,
            "context_before": "",
            "context_after": "",
        }
        for hit in hits
    ]
    if context_lines:
        try:
            from codebase_mcp.server.service import read_context
        except ImportError:  # the server's answer code moved: size without context
            pass
        else:
            spans = [(h.path, h.start_line, h.end_line, h.content) for h in hits]
            for result, (before, after) in zip(
                results, read_context(spans, context_lines), strict=True
            ):
                result["context_before"], result["context_after"] = before, after
    return len(json.dumps({"results": results}))


def compact_answer(hits: Sequence[Any], query: str) -> tuple[int, list[str]] | None:
    """(characters, files in order) of the default, compact ``search_code`` answer,
    or None where the server has no compact form."""
    try:
        from codebase_mcp.server.paths import PathMapper
        from codebase_mcp.server.service import compact_hits
    except ImportError:
        return None
    repo, compact = compact_hits(hits, query, PathMapper([]))
    body = {"repo_path": repo, "results": [h.model_dump(exclude_none=True) for h in compact]}
    return len(json.dumps(body)), file_ranking(h.relative_path for h in compact)


# --- embedders ------------------------------------------------------------------------
class LocalEmbedder:
    """all-MiniLM-L6-v2 in-process through the project's numpy embedder."""

    model = "all-minilm"

    def __init__(self) -> None:
        from codebase_mcp.embedder.encoder import SentenceEncoder
        from codebase_mcp.embedder.model_files import load_model_files

        files = load_model_files()
        self.encoder = SentenceEncoder(files)
        # Not ``identity``: the indexer asks an embedder's ``identity()`` for the digest
        # of its weights (the server's embedding cache); this one is the eval cache's key.
        self.vector_identity = local_identity(files.weights_digest())

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = await asyncio.to_thread(self.encoder.embed, list(texts))
        return [list(map(float, v)) for v in vectors]

    async def embed_query(self, text: str) -> list[float]:
        (vector,) = await self.embed_documents([text])
        return vector


def local_identity(weights_digest: str) -> str:
    """What determines the in-process vectors: weights, tokenizer and encoder code."""
    import importlib.metadata

    import codebase_mcp.embedder as package

    digest = hashlib.sha256()
    for name in ("encoder.py", "bert.py"):
        digest.update((Path(package.__file__).parent / name).read_bytes())
    tokenizers = importlib.metadata.version("tokenizers")
    return f"local/all-minilm/{weights_digest[:16]}/code-{digest.hexdigest()[:16]}/tok-{tokenizers}"


# --- one repository -----------------------------------------------------------------
async def index_repo(
    pool: Any, embedder: Embedder, settings: ServerSettings, project: str, root: Path
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM projects WHERE id = $1", project)

    async def report(progress: Progress) -> None:
        return None

    started = time.perf_counter()
    progress = await Indexer(pool, embedder, settings).run(
        project_id=project, root=str(root), force=True, report=report
    )
    seconds = time.perf_counter() - started
    async with pool.acquire() as conn:
        # What autovacuum would do soon after: the lexical planner reads ANALYZE's
        # statistics, and a run must not depend on autovacuum's timing.
        await conn.execute("ANALYZE chunks")
    return {
        "files": progress.counters["files_indexed"],
        "chunks": progress.counters["chunks_created"],
        "seconds": round(seconds, 1),
        "timings": progress.timings,
        "errors": progress.errors,
    }


async def score_repo(
    pool: Any,
    embedder: Embedder,
    settings: ServerSettings,
    project: str,
    query_set: QuerySet,
    modes: list[str],
    limit: int,
) -> dict[str, Any]:
    term_stats = search_module.TermStatsCache()  # as the server keeps one
    vectors = [await embedder.embed_query(q.query) for q in query_set.queries]
    out: dict[str, Any] = {}
    for mode in modes:
        outcomes: list[Scored] = []
        per_query: list[dict[str, Any]] = []
        latencies: list[float] = []
        sizes: list[int] = []
        compact_sizes: list[int] = []
        compact_differs = 0
        lexical: dict[str, int] = {}
        for query, vector in zip(query_set.queries, vectors, strict=True):
            started = time.perf_counter()
            async with pool.acquire() as conn:
                found = await run_search(
                    conn,
                    project,
                    query.query,
                    vector,
                    limit,
                    mode,
                    settings,
                    embedder.model,
                    term_stats,
                )
            latencies.append((time.perf_counter() - started) * 1000)
            status = getattr(found, "lexical", None)
            if status:
                lexical[str(status)] = lexical.get(str(status), 0) + 1
            files = file_ranking(h.rel_path for h in found.hits)
            rank = first_rank(files, query.files)
            outcomes.append(Scored(query.kind, rank))
            sizes.append(answer_chars(found.hits, settings.context_lines))
            compact = compact_answer(found.hits, query.query)
            if compact is not None:
                compact_sizes.append(compact[0])
                # the compact answer must point at the same files, in the same order
                compact_differs += compact[1] != files
            per_query.append(
                {
                    "query": query.query,
                    "kind": query.kind,
                    "answer": list(query.files),
                    "rank": rank,
                    "top5": files[:5],
                }
            )
        out[mode] = {
            **metrics(outcomes),
            "by_kind": by_kind(outcomes),
            "answer_chars_mean": round(statistics.mean(sizes)),
            "answer_chars_max": max(sizes),
            **(
                {
                    "compact_chars_mean": round(statistics.mean(compact_sizes)),
                    "compact_chars_max": max(compact_sizes),
                    "compact_files_differ": compact_differs,
                }
                if compact_sizes
                else {}
            ),
            "search_ms_p50": round(statistics.median(latencies), 2),
            **({"lexical": lexical} if lexical else {}),
            "per_query": per_query,
        }
    return out


# --- the run --------------------------------------------------------------------------
async def evaluate(
    database_url: str,
    embedder: Embedder,
    settings: ServerSettings,
    work: list[tuple[RepoPin, Path, QuerySet]],
    modes: list[str],
    limit: int,
) -> dict[str, Any]:
    from codebase_mcp.migrate import upgrade_head

    await upgrade_head(database_url)
    pool = await db.create_pool(database_url)
    repos: dict[str, Any] = {}
    try:
        for pin, root, query_set in work:
            project = f"eval-{pin.name}"
            print(f"{pin.name}: indexing {root}", file=sys.stderr, flush=True)
            index = await index_repo(pool, embedder, settings, project, root)
            print(
                f"{pin.name}: {index['chunks']} chunks in {index['seconds']} s; "
                f"{len(query_set.queries)} queries x {len(modes)} modes",
                file=sys.stderr,
                flush=True,
            )
            results = await score_repo(pool, embedder, settings, project, query_set, modes, limit)
            repos[pin.name] = {
                "pin": {k: v for k, v in asdict(pin).items() if k != "urls"},
                "index": index,
                "results": results,
            }
    finally:
        await pool.close()
    mean = {
        mode: {
            **mean_metrics(
                [
                    {k: v for k, v in r["results"][mode].items() if isinstance(v, int | float)}
                    for r in repos.values()
                ]
            ),
            "by_kind": {
                kind: mean_metrics(
                    [
                        r["results"][mode]["by_kind"][kind]
                        for r in repos.values()
                        if kind in r["results"][mode]["by_kind"]
                    ]
                )
                for kind in KINDS
            },
        }
        for mode in modes
    }
    return {"repos": repos, "mean": mean}


def markdown(report: dict[str, Any]) -> str:
    modes = report["modes"]
    lines = [
        f"# Search eval `{report['tag']}` ({report['date']}, load {report['machine']['load']})",
        "",
        f"limit {report['limit']} chunks per query, collapsed to files; "
        f"settings overrides: {report['overrides'] or 'none'}",
        "",
        "| repo | mode | queries | R@1 | R@5 | R@10 | MRR@10 | answer chars | SQL p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, repo in report["repos"].items():
        for mode in modes:
            r = repo["results"][mode]
            lines.append(
                f"| {name} | {mode} | {r['queries']} | {r['recall@1']:.3f} | "
                f"{r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['mrr@10']:.3f} | "
                f"{r['answer_chars_mean']} | {r['search_ms_p50']} |"
            )
    for mode in modes:
        m = report["mean"][mode]
        lines.append(
            f"| **mean** | {mode} | {m['queries']} | {m['recall@1']:.3f} | "
            f"{m['recall@5']:.3f} | {m['recall@10']:.3f} | **{m['mrr@10']:.3f}** | "
            f"{round(m['answer_chars_mean'])} | |"
        )
    lines += [
        "",
        "Per query kind (mean over repositories, MRR@10 / R@1):",
        "",
        "| mode | " + " | ".join(KINDS) + " |",
        "|---|" + "---|" * len(KINDS),
    ]
    for mode in modes:
        cells = []
        for kind in KINDS:
            k = report["mean"][mode]["by_kind"].get(kind) or {}
            cells.append(f"{k.get('mrr@10', 0):.3f} / {k.get('recall@1', 0):.3f}" if k else "-")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    index = ", ".join(
        f"{n} {r['index']['chunks']} chunks {r['index']['seconds']} s"
        for n, r in report["repos"].items()
    )
    lines += ["", f"Index: {index}. Embedding cache: {report['embedding_cache']}.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]),
    )
    parser.add_argument("names", nargs="*", help="repositories (default: every role=eval one)")
    parser.add_argument("--modes", nargs="+", help=f"search modes (default: {server_modes()})")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a ServerSettings field, e.g. ef_search=200",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=10,
        help="chunks asked per query, as an agent asks (default 10)",
    )
    parser.add_argument("--database-url", help="default: start the project's postgres image")
    parser.add_argument("--embedder-url", help="Ollama-API embedder (default: in-process)")
    parser.add_argument("--model", default="all-minilm", help="with --embedder-url")
    parser.add_argument("--no-cache", action="store_true", help="embed everything again")
    parser.add_argument("--cache", type=Path, help="embedding cache file")
    parser.add_argument("--repos", type=Path, default=HERE / "repos.toml")
    parser.add_argument("--queries-dir", type=Path, default=HERE / "queries")
    parser.add_argument("--tag", default="latest", help="results/TAG.json and results/TAG.md")
    parser.add_argument("--output-dir", type=Path, default=HERE / "results")
    args = parser.parse_args()
    try:
        return run(args)
    except CodebaseMcpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code


def run(args: argparse.Namespace) -> int:
    offered = server_modes()
    modes = args.modes or offered
    unknown = [m for m in modes if m not in offered]
    if unknown:
        raise ConfigError(
            f"unknown mode(s) {', '.join(unknown)}", hint=f"the server offers {', '.join(offered)}"
        )
    overrides = parse_overrides(args.overrides)
    settings = make_settings(overrides)
    work: list[tuple[RepoPin, Path, QuerySet]] = []
    for pin in select(load_pins(args.repos), args.names, "eval"):
        root = checkout(pin)
        query_set = load_query_set(args.queries_dir / f"{pin.name}.json")
        missing = missing_answers(query_set, root)
        if missing:
            raise ConfigError(
                f"{pin.name}: answer files not in the repository: {missing[:5]}",
                hint="fix the query file's paths",
            )
        work.append((pin, root, query_set))

    started = time.perf_counter()
    with ExitStack() as stack:
        database_url = args.database_url
        if not database_url:
            import secrets

            from tests.support.postgres import start_postgres

            name = f"codebase-mcp-eval-pg-{secrets.token_hex(4)}"
            database_url = stack.enter_context(start_postgres(name=name)).dsn("postgres")
        inner: Any
        if args.embedder_url:
            inner = OllamaEmbedder(args.embedder_url, args.model)
            identity = f"ollama/{args.model}"
        else:
            inner = LocalEmbedder()
            identity = inner.vector_identity
        embedder: Any = inner
        cache_note = "off"
        store = None
        if not args.no_cache:
            store = VectorStore(args.cache or default_cache() / "embeddings.sqlite")
            embedder = CachedEmbedder(inner, store, identity)
        try:
            body = asyncio.run(evaluate(database_url, embedder, settings, work, modes, args.limit))
        finally:
            if store is not None:
                cache_note = (
                    f"{embedder.hits} hits, {embedder.misses} embedded "
                    f"({store.path}, identity {identity})"
                )
                store.close()
    report = {
        "tag": args.tag,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modes": modes,
        "limit": args.limit,
        "overrides": overrides,
        "settings": settings.model_dump(mode="json", exclude={"roots", "host", "port"}),
        "model": embedder.model,
        "embedding_cache": cache_note,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        **body,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.output_dir / f"{args.tag}.json"
    md_path = args.output_dir / f"{args.tag}.md"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    md_path.write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {json_path} and {md_path} ({report['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
