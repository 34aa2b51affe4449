"""What the MCP tools do: one function per tool, taking the ServerState and typed
arguments and returning the tool's answer model (codebase_mcp.server.models).

The FastMCP layer (codebase_mcp.server.app) only adapts: parameters in, these
functions called, their errors turned into tool errors. The mapping from
database rows and search hits to answers is kept in pure functions below
(``job_status``, ``search_filters``, ``compact_hits``, ``full_hits``...), which
the unit tests exercise without a server.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import textwrap
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from codebase_mcp.errors import CodebaseMcpError, InvalidToolInput, NotFound
from codebase_mcp.server import db, watchstore
from codebase_mcp.server.chunker import identifier_word_list, identifier_words
from codebase_mcp.server.gitsource import parse_remote
from codebase_mcp.server.gitsource.urls import redact
from codebase_mcp.server.jobs import progress_fields
from codebase_mcp.server.models import (
    DETAILS,
    CancelAnswer,
    CompactHit,
    DeletedProject,
    EmbedderDown,
    EmbeddingCacheInfo,
    FileError,
    FullHit,
    IndexingStarted,
    JobStatus,
    ProjectInfo,
    ProjectList,
    SearchAnswer,
    ShardWorker,
    WatchState,
)
from codebase_mcp.server.paths import PathMapper
from codebase_mcp.server.search import (
    Filters,
    Hit,
    embed_query_within,
    normalise_file_type,
    search,
    validate_query,
)
from codebase_mcp.server.state import ServerState

_PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
JOB_HINT = "use the job_id that start_indexing_background returned"

# The compact snippet: a definition line and the window of lines that match the
# query best. 10 hits of it stay well under 6,000 characters (bench/answer_size.py).
SNIPPET_WINDOW = 5
SNIPPET_LINE_CHARS = 100
SNIPPET_MAX_CHARS = 420
_STOP_WORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "does", "do", "for", "from", "how",
     "in", "into", "is", "it", "of", "on", "or", "the", "this", "that", "to", "what",
     "when", "where", "which", "with"}
)  # fmt: skip

log = logging.getLogger("codebase_mcp.server.service")


# --- arguments ------------------------------------------------------------------------


def check_project_id(project_id: str) -> str:
    if not isinstance(project_id, str) or not _PROJECT_ID.match(project_id):
        raise InvalidToolInput(
            f"project_id {project_id!r} is not valid",
            hint="use letters, digits and . _ : - (at most 128 characters)",
        )
    return project_id


def parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id).strip())
    except ValueError:
        raise InvalidToolInput(f"job_id {job_id!r} is not a job id", hint=JOB_HINT) from None


def check_detail(detail: str) -> str:
    if detail not in DETAILS:
        raise InvalidToolInput(
            f"detail {detail!r} is not one of: {', '.join(DETAILS)}",
            hint="use detail='compact' (the default) or detail='full' for whole chunks",
        )
    return detail


def search_filters(file_type: str | None, directory: str | None, mapper: PathMapper) -> Filters:
    """The filters of a search: an extension or language, and a directory given as an
    absolute host path (mapped into the container) or relative to the repository."""
    kind = normalise_file_type(file_type)
    if not directory or not directory.strip():
        return Filters(file_type=kind)
    if directory.startswith("/"):
        return Filters(kind, path_prefix=mapper.to_container(directory))
    if ".." in directory.split("/"):
        raise InvalidToolInput(
            f"directory {directory!r} contains '..'",
            hint="give a directory inside the repository",
        )
    return Filters(kind, rel_prefix=directory)


# --- indexing -------------------------------------------------------------------------


def watch_state(row: db.WatchRow | None) -> WatchState:
    return WatchState(**watchstore.watch_view(row))


DEFAULT_PROJECT = "default"
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def check_source(
    repo_path: str | None, repo_url: str | None, ref: str | None, watch: bool | None
) -> None:
    """Exactly one of repo_path and repo_url; ref and watch only where they mean something."""
    has_path = bool(repo_path and repo_path.strip())
    has_url = bool(repo_url and repo_url.strip())
    if has_path and has_url:
        raise InvalidToolInput(
            "give repo_path or repo_url, not both",
            hint="repo_path indexes a directory on your machine; repo_url (with ref) a git "
            "repository the server fetches",
        )
    if not has_path and not has_url:
        raise InvalidToolInput(
            "no repository given",
            hint="pass repo_path (an absolute path on your machine) or repo_url "
            "(a git URL, with ref: a branch, tag or commit)",
        )
    if has_path and ref is not None:
        raise InvalidToolInput(
            "ref is only for repo_url (a git repository)",
            hint="leave ref out to index repo_path as it is on disk",
        )
    if has_url and watch:
        raise InvalidToolInput(
            "watch=true needs a repo_path: a git source is indexed at one commit",
            hint="call start_indexing_background(repo_url=..., ref=...) again to index a "
            "newer commit (only changed files are embedded)",
        )


def git_project_id(url: str) -> str:
    """The project id of a git source, from its URL: ``host:path:segments`` (no
    scheme, port, user or ``.git``), so https and ssh URLs of one repository agree."""
    remote = parse_remote(url)
    path = remote.path.strip("/").removesuffix(".git")
    raw = ":".join([remote.host.strip("[]"), *[p for p in path.split("/") if p]])
    slug = _SLUG_UNSAFE.sub("-", raw).strip("-:.") or "git"
    if not slug[0].isalnum():
        slug = "git-" + slug
    if len(slug) > 128:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
        slug = f"{slug[:115].rstrip('-:.')}-{digest}"
    return slug


async def start_indexing(
    state: ServerState,
    repo_path: str | None,
    project_id: str | None,
    force_reindex: bool,
    watch: bool | None = None,
    repo_url: str | None = None,
    ref: str | None = None,
) -> IndexingStarted:
    check_source(repo_path, repo_url, ref, watch)
    if repo_url:
        return await start_git_indexing(state, repo_url, ref, project_id, force_reindex)
    assert repo_path is not None
    project_id = check_project_id(project_id or DEFAULT_PROJECT)
    repo = state.mapper.resolve_repo(repo_path)
    pool = await state.pool()
    async with pool.acquire() as conn:
        await refuse_model_mix(conn, state, project_id, force_reindex)
        job_id = await db.create_job(
            conn,
            project_id=project_id,
            repo_path=repo.host_path,
            root_path=repo.container_path,
            force_reindex=force_reindex,
            embedding_model=state.embedder.model,
        )
        if watch:
            await db.set_watch(
                conn, project_id=project_id, repo_path=repo.host_path, root_path=repo.container_path
            )
        elif watch is False:
            await db.stop_watch(conn, project_id, repo.container_path, "stopped: asked to")
        watch_row = await db.get_watch(conn, project_id, repo.container_path)
    state.notify_workers()
    if watch is not None:
        state.watches.kick()
    return IndexingStarted(
        job_id=str(job_id),
        status="pending",
        project_id=project_id,
        repo_path=repo.host_path,
        message="poll get_indexing_status(job_id) until status is completed",
        watch=watch_state(watch_row),
    )


async def refuse_model_mix(
    conn: asyncpg.Connection, state: ServerState, project_id: str, force_reindex: bool
) -> None:
    """A project indexed with another model takes no job of this one, unless it is rebuilt."""
    project = await db.get_project(conn, project_id)
    if (
        project is not None
        and project.embedding_model != state.embedder.model
        and not force_reindex
    ):
        raise db.model_mismatch(project, state.embedder.model, None)


async def start_git_indexing(
    state: ServerState,
    repo_url: str,
    ref: str | None,
    project_id: str | None,
    force_reindex: bool,
) -> IndexingStarted:
    """Queue a job for the commit ``ref`` names now. The URL is checked (no I/O), then
    resolved on the remote (``git ls-remote``) before anything is written: a bad
    URL, a host not allowed, an unreachable server or a missing ref writes nothing."""
    remote, _ = state.git.check(repo_url, ref)
    project_id = check_project_id(project_id or git_project_id(remote.url))
    resolved = await asyncio.to_thread(state.git.resolve, repo_url, ref)
    source = db.GitSource(resolved.url, resolved.ref_name or resolved.ref, resolved.commit)
    pool = await state.pool()
    async with pool.acquire() as conn:
        await refuse_model_mix(conn, state, project_id, force_reindex)
        job_id = await db.create_job(
            conn,
            project_id=project_id,
            repo_path=resolved.url,
            root_path=resolved.url,  # the index root is the URL: stable from commit to commit
            force_reindex=force_reindex,
            embedding_model=state.embedder.model,
            source=source,
        )
    state.notify_workers()
    return IndexingStarted(
        job_id=str(job_id),
        status="pending",
        project_id=project_id,
        repo_path=resolved.url,
        message="poll get_indexing_status(job_id) until status is completed",
        watch=watch_state(None),
        source_url=source.url,
        ref=source.ref,
        commit=source.commit,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _fraction(value: Any) -> float | None:
    return None if value is None else round(min(max(float(value), 0.0), 1.0), 4)


def shard_fields(summary: db.ShardSummary | None) -> dict[str, Any]:
    """The shard counts of a job's status (none: no shards yet, the fields are omitted)."""
    if summary is None or not summary.total:
        return {}
    return {
        "shards_total": summary.total,
        "shards_done": summary.done,
        "shard_workers": [
            ShardWorker(
                worker_id=w.worker_id,
                shards_done=w.shards_done,
                shards_running=w.shards_running,
                chunks_embedded=w.chunks_embedded,
                chunks_reused=w.chunks_reused,
            )
            for w in summary.workers
        ],
    }


def job_status(
    job: dict[str, Any],
    mapper: PathMapper,
    watch: db.WatchRow | None = None,
    shards: db.ShardSummary | None = None,
) -> JobStatus:
    """A job row as its answer. Columns that progressive indexing adds later
    (chunks_embedded, lexical/semantic progress) are read when the row has them;
    ``shards``: the job's embedding shards, if it has any."""
    total = job["files_total"]
    # Skipped counts both files the walk refused and files that failed to read.
    done = job["files_indexed"] + job["files_unchanged"] + job["files_skipped"]
    if job["status"] == "completed":
        progress = 1.0
    else:
        progress = round(min(done / total, 1.0), 4) if total else 0.0
    return JobStatus(
        job_id=str(job["id"]),
        project_id=job["project_id"],
        repo_path=job["repo_path"],
        status=job["status"],
        progress=progress,
        files_total=total,
        files_scanned=job["files_scanned"],
        files_indexed=job["files_indexed"],
        files_unchanged=job["files_unchanged"],
        files_skipped=job["files_skipped"],
        files_deleted=job["files_deleted"],
        chunks_created=job["chunks_created"],
        force_reindex=job["force_reindex"],
        embedding_model=job["embedding_model"],
        attempts=job["attempts"],
        cancel_requested=job["cancel_requested"],
        error=job["error"],
        errors=[
            FileError(path=mapper.to_host(f"{job['root_path']}/{e['path']}"), error=e["error"])
            for e in job["errors"] or []
        ],
        timings=job["timings"] or {},
        created_at=_iso(job["created_at"]),
        started_at=_iso(job["started_at"]),
        finished_at=_iso(job["finished_at"]),
        **progress_fields(job),
        **shard_fields(shards),
        watch=watch_state(watch),
        source_url=job.get("source_url"),
        source_ref=job.get("source_ref"),
        source_commit=job.get("source_commit"),
    )


async def indexing_status(state: ServerState, job_id: str) -> JobStatus:
    parsed = parse_job_id(job_id)
    pool = await state.pool()
    async with pool.acquire() as conn:
        job = await db.get_job(conn, parsed)
        watch = await db.get_watch(conn, job["project_id"], job["root_path"]) if job else None
        shards = await db.shard_summary(conn, parsed) if job else None
    if job is None:
        raise NotFound(f"no indexing job {job_id}", hint=JOB_HINT)
    status = job_status(job, state.mapper, watch, shards)
    if status.status in ("pending", "running"):
        down = embedders_down(state.embedder)
        if down:
            status.embedders_down = down
    return status


def embedders_down(embedder: object) -> list[EmbedderDown]:
    """The endpoints of ``embedder`` that failed (as this process last saw them; no probe):
    a job keeps going on the others, and its status says which ones it does without."""
    pool = getattr(embedder, "pool", None)
    endpoints = getattr(pool, "endpoints", None) or []
    return [
        EmbedderDown(url=redact(e.url), status=e.status, error=redact(e.error) if e.error else None)
        for e in endpoints
        if not e.healthy
    ]


async def cancel_indexing(state: ServerState, job_id: str) -> CancelAnswer:
    parsed = parse_job_id(job_id)
    pool = await state.pool()
    async with pool.acquire() as conn:
        status = await db.request_cancel(conn, parsed)
    if status is None:
        raise NotFound(f"no indexing job {job_id}", hint=JOB_HINT)
    return CancelAnswer(job_id=str(parsed), status=status, cancel_requested=True)


# --- search ---------------------------------------------------------------------------


async def search_code(
    state: ServerState,
    query: str,
    project_id: str = "default",
    limit: int = 10,
    file_type: str | None = None,
    directory: str | None = None,
    detail: str = "compact",
) -> SearchAnswer:
    settings = state.settings
    text = validate_query(query, limit, settings.max_limit)
    check_project_id(project_id)
    check_detail(detail)
    filters = search_filters(file_type, directory, state.mapper)
    pool = await state.pool()
    started = time.perf_counter()
    query_vector = await embed_query_within(
        state.embedder, text, settings.query_embed_timeout, state.query_vectors
    )
    embedded = time.perf_counter()
    async with pool.acquire() as conn:
        found = await search(
            conn,
            project_id,
            text,
            query_vector.vector,
            filters,
            limit,
            mode=settings.search_mode,
            ef_search=settings.ef_search,
            expected_model=state.embedder.model,
            text_budget_ms=settings.text_search_budget_ms,
            text_max_cost=settings.text_search_max_cost,
            term_stats=state.term_stats,
            settings=settings,
            vector_unavailable=(
                f"{query_vector.reason}: {query_vector.detail}" if query_vector.reason else None
            ),
        )
        source = await db.project_source(conn, project_id) if detail == "full" else None
    searched = time.perf_counter()
    common: dict[str, Any] = {
        "mode": found.mode,
        "lexical": found.lexical,
        **found.extra_fields(),  # semantic_coverage, lexical_only, fallback
        "embedding_ms": round((embedded - started) * 1000, 2),
        "search_ms": round((searched - embedded) * 1000, 2),
    }
    if detail == "full":
        full = full_hits(found.hits, state.mapper)
        if settings.context_lines:
            spans = [
                (checkout_path(h.path, source, settings.git_cache), h.start_line, h.end_line,
                 h.content)
                for h in found.hits
            ]  # fmt: skip
            around = await asyncio.to_thread(read_context, spans, settings.context_lines)
            for hit, (before, after) in zip(full, around, strict=True):
                hit.context_before, hit.context_after = before, after
        return SearchAnswer(
            detail="full", project_id=project_id, query=text, results=full, **common
        )
    repo_path, compact = compact_hits(found.hits, text, state.mapper)
    return SearchAnswer(detail="compact", repo_path=repo_path, results=compact, **common)


def full_hits(hits: Sequence[Hit], mapper: PathMapper) -> list[FullHit]:
    """Whole chunks, one per hit, with host paths (context is added by the caller)."""
    return [
        FullHit(
            path=mapper.to_host(hit.path),
            relative_path=hit.rel_path,
            start_line=hit.start_line,
            end_line=hit.end_line,
            language=hit.language,
            symbol=hit.symbol,
            score=hit.score,
            similarity=round(hit.similarity, 6),
            content=hit.content,
            context_before="",
            context_after="",
        )
        for hit in hits
    ]


def checkout_path(path: str, source: db.GitSource | None, cache: Path) -> str:
    """Where a stored path can be read: a git source's files (stored as ``URL/rel``)
    are in the checkout of the commit the project last indexed; others where they are."""
    if source is None or source.commit is None or not path.startswith(source.url + "/"):
        return path
    return str(cache / "checkouts" / source.commit / path[len(source.url) + 1 :])


def read_context(spans: Sequence[tuple[str, int, int, str]], lines: int) -> list[tuple[str, str]]:
    """(before, after): a few lines around each (container path, start, end, content),
    if the file on disk still matches the index; ("", "") otherwise."""
    cache: dict[str, list[str] | None] = {}
    out: list[tuple[str, str]] = []
    for path, start, end, content in spans:
        if path not in cache:
            try:
                with open(path, encoding="utf-8") as handle:
                    cache[path] = handle.read().splitlines()
            except (OSError, UnicodeDecodeError):
                cache[path] = None
        text = cache[path]
        if text is None or end > len(text) or text[start - 1].strip() not in content:
            out.append(("", ""))
            continue
        before = "\n".join(text[max(0, start - 1 - lines) : start - 1])
        out.append((before, "\n".join(text[end : end + lines])))
    return out


@dataclass
class _Span:
    """Hits of one file merged while their line ranges touch."""

    host_path: str
    rel_path: str
    start: int
    end: int
    score: float
    symbols: list[str] = field(default_factory=list)
    lines: dict[int, str] = field(default_factory=dict)

    def add(self, hit: Hit) -> None:
        self.start, self.end = min(self.start, hit.start_line), max(self.end, hit.end_line)
        self.score = max(self.score, hit.score)
        if hit.symbol and hit.symbol not in self.symbols:
            self.symbols.append(hit.symbol)
        for offset, line in enumerate(hit.content.split("\n")):
            self.lines.setdefault(hit.start_line + offset, line)

    def touches(self, start: int, end: int) -> bool:
        return start <= self.end + 1 and end >= self.start - 1


def merge_adjacent(hits: Sequence[Hit], mapper: PathMapper) -> list[_Span]:
    """Hits in rank order, chunks of one file whose lines overlap or touch merged into
    the best-ranked of them. Files keep the order of their first hit."""
    spans: list[_Span] = []
    for hit in hits:
        host = mapper.to_host(hit.path)
        same = [s for s in spans if s.host_path == host and s.touches(hit.start_line, hit.end_line)]
        if not same:
            span = _Span(host, hit.rel_path, hit.start_line, hit.end_line, hit.score)
            span.add(hit)
            spans.append(span)
            continue
        keep = same[0]
        keep.add(hit)
        for other in same[1:]:  # the new hit bridged two spans of the file
            keep.start, keep.end = min(keep.start, other.start), max(keep.end, other.end)
            keep.score = max(keep.score, other.score)
            keep.symbols += [s for s in other.symbols if s not in keep.symbols]
            for number, line in other.lines.items():
                keep.lines.setdefault(number, line)
            spans.remove(other)
    return spans


def query_terms(query: str) -> set[str]:
    return {w for w in identifier_words(query).split() if len(w) > 1} - _STOP_WORDS


@functools.lru_cache(maxsize=256)
def _any_term(terms: frozenset[str]) -> re.Pattern[str] | None:
    """One pattern finding any of ``terms`` as a substring (None: no terms): a
    single scan of each line instead of one per term."""
    if not terms:
        return None
    return re.compile("|".join(re.escape(t) for t in sorted(terms, key=lambda t: (-len(t), t))))


def snippet(lines: dict[int, str], terms: set[str]) -> str:
    """The lines of a hit an agent needs to judge it: its first line (usually the
    definition) and the window of lines with the most query words, dedented, each
    prefixed with its number; '...' where lines are skipped. Blank lines are left
    out (the numbers show where they were)."""
    numbered = sorted((n, line.rstrip()) for n, line in lines.items() if line.strip())
    if not numbered:
        return ""

    anywhere = _any_term(frozenset(terms))

    def hits_in(line: str) -> int:
        # identifier_words gives lower-cased substrings of the line: a line in which
        # no term occurs as a substring has none of them (most lines; splitting every
        # line cost ~9 ms of the event loop per search, bench/results/search-load.json).
        if anywhere is None or anywhere.search(line.lower()) is None:
            return 0
        return len(terms.intersection(identifier_word_list(line)))

    scores = [hits_in(line) for _, line in numbered]
    width = min(SNIPPET_WINDOW, len(numbered))
    best, best_score = 0, -1
    for first in range(len(numbered) - width + 1):
        total = sum(scores[first : first + width])
        if total > best_score:
            best, best_score = first, total
    chosen = sorted({0, *range(best, best + width)})
    body = textwrap.dedent("\n".join(numbered[i][1] for i in chosen)).split("\n")
    out: list[str] = []
    used = 0
    previous = None
    for index, text in zip(chosen, body, strict=True):
        if previous is not None and index != previous + 1:
            out.append("...")
        cut = text if len(text) <= SNIPPET_LINE_CHARS else text[: SNIPPET_LINE_CHARS - 3] + "..."
        line = f"{numbered[index][0]}: {cut}"
        if out and used + len(line) > SNIPPET_MAX_CHARS:
            out.append("...")
            break
        out.append(line)
        used += len(line) + 1
        previous = index
    return "\n".join(out)


def _root(host_path: str, rel_path: str) -> str:
    suffix = "/" + rel_path
    return host_path[: -len(suffix)] if host_path.endswith(suffix) else host_path


def compact_hits(
    hits: Sequence[Hit], query: str, mapper: PathMapper
) -> tuple[str | None, list[CompactHit]]:
    """(repo_path, hits): the compact answer. Adjacent chunks of one file are merged,
    the files stay in the order of the full answer, and the host path is given once
    (repo_path) when every hit is in one repository."""
    spans = merge_adjacent(hits, mapper)
    roots = {_root(s.host_path, s.rel_path) for s in spans}
    one_root = roots.pop() if len(roots) == 1 else None
    terms = query_terms(query)
    return one_root, [
        CompactHit(
            relative_path=s.rel_path,
            start_line=s.start,
            end_line=s.end,
            symbol=", ".join(s.symbols[:3]) or None,
            score=round(s.score, 4),
            snippet=snippet(s.lines, terms),
            path=None if one_root is not None else s.host_path,
        )
        for s in spans
    ]


# --- projects -------------------------------------------------------------------------


def project_space(chunks: int, lexical_length: int, sizes: db.TableSizes) -> int:
    """A project's estimated bytes: its share of the chunk tables by chunk count,
    plus its share of the lexical tables by indexed words (pure). An estimate,
    not a scan: exact sums (pg_column_size per row) would read every chunk on each
    list_projects; the shares include indexes, TOAST and free space."""
    space = 0.0
    if sizes.all_chunks > 0:
        space += sizes.chunk_bytes * min(chunks / sizes.all_chunks, 1.0)
    if sizes.all_lexical_length > 0:
        space += sizes.lexical_bytes * min(lexical_length / sizes.all_lexical_length, 1.0)
    return int(space)


def project_info(
    row: dict[str, Any],
    mapper: PathMapper,
    watches: Sequence[db.WatchRow] = (),
    sizes: db.TableSizes | None = None,
) -> ProjectInfo:
    space = (
        project_space(int(row["chunks"]), int(row.get("lexical_length") or 0), sizes)
        if sizes is not None
        else 0
    )
    return ProjectInfo(
        project_id=row["id"],
        embedding_model=row["embedding_model"],
        embedding_dim=row["embedding_dim"],
        files=row["files"],
        chunks=row["chunks"],
        repositories=[mapper.to_host(r) for r in (row["roots"] or [])],
        space_bytes=space,
        created_at=_iso(row["created_at"]),
        updated_at=_iso(row["updated_at"]),
        watches=[watch_state(w) for w in watches],
        source_url=row.get("source_url"),
        source_ref=row.get("source_ref"),
        source_commit=row.get("source_commit"),
        source_indexed_at=_iso(row.get("source_indexed_at")),
    )


async def list_projects(state: ServerState) -> ProjectList:
    pool = await state.pool()
    async with pool.acquire() as conn:
        rows = await db.list_projects(conn)
        watches = await db.all_watches(conn)
        sizes = await db.table_sizes(conn)
        cache = await db.cache_stats(conn)
    return ProjectList(
        projects=[
            project_info(row, state.mapper, watches.get(row["id"], []), sizes) for row in rows
        ],
        embedding_cache=EmbeddingCacheInfo(entries=cache.entries, space_bytes=cache.bytes),
    )


async def delete_project(state: ServerState, project_id: str) -> DeletedProject:
    check_project_id(project_id)
    pool = await state.pool()
    async with pool.acquire() as conn:
        counts = await db.delete_project(conn, project_id)
        await db.delete_watch(conn, project_id)
        # Its vectors stay in the embedding cache for the grace period (a re-clone
        # finds them); what is older and unused goes now.
        await db.gc_embedding_cache(conn, state.settings.embedding_cache_grace)
    state.watches.kick()
    return DeletedProject(
        project_id=project_id, deleted=True, files=counts["files"], chunks=counts["chunks"]
    )


# --- health ---------------------------------------------------------------------------


def public_database_error(exc: BaseException) -> str:
    """What /health may say about a failed database check: the kind of failure,
    never the driver's text (it can name users, hosts, databases)."""
    if isinstance(exc, TimeoutError):
        return "timeout: the database did not answer within 5 s"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return "authentication failed: check the database secret (details in the server log)"
    if isinstance(exc, OSError):
        return "unreachable: cannot connect to the database (details in the server log)"
    if isinstance(exc, asyncpg.PostgresError):
        return f"database error {exc.sqlstate or ''}".rstrip() + " (details in the server log)"
    return "unavailable (details in the server log)"


async def health_report(state: ServerState) -> dict[str, Any]:
    """/health: the database (reachable, migrated) and the embedder (serves the model)."""
    database: dict[str, Any]
    started = time.perf_counter()
    try:
        pool = await asyncio.wait_for(state.pool(), 5)
        async with pool.acquire(timeout=3) as conn:
            migrated = await db.is_migrated(conn)
        database = {
            "status": "ok" if migrated else "not migrated",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    except (CodebaseMcpError, OSError, asyncpg.PostgresError, TimeoutError) as exc:
        # /health answers anyone who can reach the port (the kubelet's probe skips the
        # host check): a class of failure there, the full message in the server's log.
        log.warning("health: database check failed: %s", exc)
        database = {"status": "down", "error": public_database_error(exc)}
    probe = getattr(state.embedder, "probe", None)
    embedder: dict[str, Any] = (
        await probe() if probe else {"status": "ok", "model": state.embedder.model}
    )
    ok = database["status"] == "ok" and embedder.get("status") == "ok"
    return {"status": "ok" if ok else "degraded", "database": database, "embedder": embedder}
