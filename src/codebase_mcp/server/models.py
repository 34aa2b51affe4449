"""What each MCP tool answers: one pydantic model per answer.

FastMCP builds a tool's ``outputSchema`` from its return annotation, so these
models *are* the published contract (``tools/list``); clients such as the MCP
SDK validate ``structuredContent`` against it. Field descriptions end up in the
schema, so they are written for the agent reading it.

Fields marked "omitted when unknown" are left out of the answer when ``None``
(``exclude_if``), so an answer carries no empty keys; they are optional in the
schema. Some of them are filled by parts of the server that are still being
built (semantic coverage, lexical fallback, lexical/semantic job progress):
until then they are simply absent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Detail = Literal["compact", "full"]
DETAILS: tuple[str, ...] = ("compact", "full")


def _is_none(value: object) -> bool:
    return value is None


def optional(description: str) -> Any:
    """A field that defaults to None and is left out of the answer when None."""
    return Field(default=None, description=description, exclude_if=_is_none)


class Answer(BaseModel):
    """Base of every answer: no alias games, nothing extra accepted."""

    model_config = ConfigDict(extra="forbid")


# --- indexing -------------------------------------------------------------------------


class IndexingStarted(Answer):
    """start_indexing_background: the job was queued."""

    job_id: str = Field(description="id to pass to get_indexing_status and cancel_indexing")
    status: str = Field(description="always 'pending' here: a worker picks the job up")
    project_id: str = Field(description="the project the repository is indexed into")
    repo_path: str = Field(
        description="the repository, as a path on your machine (a git source: its URL)"
    )
    message: str = Field(description="what to do next")
    watch: WatchState = Field(description="whether the repository is watched (watch mode)")
    source_url: str | None = optional("git sources: the URL, without credentials")
    ref: str | None = optional("git sources: the ref resolved (refs/heads/main, a tag, HEAD)")
    commit: str | None = optional(
        "git sources: the commit the job is pinned to (omitted for an abbreviated id until "
        "the fetch finds it)"
    )


class WatchState(Answer):
    """Watch mode of one repository of a project."""

    watching: bool = Field(description="true: saved files are indexed within seconds")
    state: str = Field(
        description="'watching', 'not watched', or why watching stopped (asked to, the "
        "repository no longer exists)"
    )
    repo_path: str | None = optional("the watched repository, as a path on your machine")
    since: str | None = optional("ISO 8601 time the watch last changed state")
    last_change_at: str | None = optional("ISO 8601 time of the last batch of changes seen")
    last_job_id: str | None = optional("the indexing job that batch queued")


class FileError(Answer):
    path: str = Field(description="the file, as a path on your machine")
    error: str = Field(description="why it was skipped")


class ShardWorker(Answer):
    """What one worker (of any server replica) did of a job's embedding shards."""

    worker_id: str = Field(description="the worker: host:pid:id of its server process")
    shards_done: int = Field(description="shards it finished")
    shards_running: int = Field(description="shards it holds now (0 or 1)")
    chunks_embedded: int = Field(description="chunks of those shards the embedder computed")
    chunks_reused: int = Field(description="chunks of those shards taken from the embedding cache")


class EmbedderDown(Answer):
    """An embedder endpoint that this server cannot use now (its work goes to the others)."""

    url: str = Field(description="the endpoint (CODEBASE_MCP_EMBEDDER_URLS), without credentials")
    status: str = Field(description="down (no answer), model missing or model mismatch")
    error: str | None = Field(description="the last failure, if any")


class JobStatus(Answer):
    """get_indexing_status: one job's state, counters and timings."""

    job_id: str = Field(description="the job")
    project_id: str = Field(description="the project it indexes into")
    repo_path: str = Field(description="the repository, as a path on your machine")
    status: str = Field(description="pending, running, completed, failed or cancelled")
    progress: float = Field(ge=0, le=1, description="files done / files total (1.0 once completed)")
    files_total: int = Field(description="files the walk found (0 until it has run)")
    files_scanned: int = Field(description="files read so far")
    files_indexed: int = Field(description="new or changed files written")
    files_unchanged: int = Field(description="files skipped because their content is unchanged")
    files_skipped: int = Field(
        description="files refused (binary, too big, unreadable, symlink); see errors"
    )
    files_deleted: int = Field(description="files removed from the index (gone from disk)")
    chunks_created: int = Field(description="chunks written")
    force_reindex: bool = Field(description="whether everything is rebuilt")
    embedding_model: str = Field(description="the model the vectors are made with")
    attempts: int = Field(description="how many times a worker has taken this job")
    cancel_requested: bool = Field(description="whether cancel_indexing was called")
    error: str | None = Field(description="why the job failed or was cancelled, if it did")
    errors: list[FileError] = Field(description="files that were skipped (the first ones)")
    timings: dict[str, float] = Field(
        description="seconds spent per phase: walk_s, read_chunk_s, embed_s, write_s, total_s..."
    )
    created_at: str | None = Field(description="ISO 8601 time the job was queued")
    started_at: str | None = Field(description="ISO 8601 time a worker started it")
    finished_at: str | None = Field(description="ISO 8601 time it ended")
    # Progressive indexing (lexical first, vectors after): omitted when unknown.
    phase: str | None = optional(
        "lexical (files being written, searchable by words), embedding, or done"
    )
    chunks_to_embed: int | None = optional("chunks that needed a vector when embedding began")
    chunks_embedded: int | None = optional(
        "chunks whose vectors the embedder computed in this job; omitted when unknown"
    )
    chunks_reused: int | None = optional(
        "chunks whose vectors came from the embedding cache (identical text, same model "
        "weights, any project or path); omitted when unknown"
    )
    lexical_progress: float | None = optional(
        "share (0..1) of the repository searchable by words; omitted when unknown"
    )
    semantic_progress: float | None = optional(
        "share (0..1) of the chunks embedded (searchable by meaning); omitted when unknown"
    )
    shards_total: int | None = optional(
        "embedding shards the job's vectors were split into (every replica's workers "
        "claim them); omitted before the embedding phase"
    )
    shards_done: int | None = optional("shards finished; omitted before the embedding phase")
    shard_workers: list[ShardWorker] | None = optional(
        "per worker: the shards it finished or holds and their chunks; omitted before "
        "the embedding phase"
    )
    embedders_down: list[EmbedderDown] | None = optional(
        "embedder endpoints this server sees failing while the job is pending or running "
        "(the healthy ones take their work); omitted when every endpoint is up"
    )
    watch: WatchState | None = optional("watch mode of the job's repository")
    source_url: str | None = optional("git sources: the URL, without credentials")
    source_ref: str | None = optional("git sources: the ref the job was given")
    source_commit: str | None = optional("git sources: the commit the job indexes")


class CancelAnswer(Answer):
    """cancel_indexing: the cancellation was recorded."""

    job_id: str = Field(description="the job")
    status: str = Field(
        description="the job's status now: cancelled if it was pending, else as it was "
        "(a running job stops after its current batch)"
    )
    cancel_requested: Literal[True] = Field(description="always true")


# --- search ---------------------------------------------------------------------------


class CompactHit(Answer):
    """One place in one file (adjacent chunks of a file are merged into one hit)."""

    relative_path: str = Field(description="the file, relative to the repository root")
    start_line: int = Field(ge=1, description="first line of the hit (1-based)")
    end_line: int = Field(ge=1, description="last line of the hit (inclusive)")
    symbol: str | None = optional("function, class or section the hit is in; omitted if none")
    score: float = Field(description="rank score (higher is better; compare within one answer)")
    snippet: str = Field(
        description="a few lines of the hit, those that match the query best, "
        "each prefixed with its line number ('12: ...'); '...' marks skipped lines. "
        "Read the file or ask with detail='full' for the whole chunk"
    )
    path: str | None = optional(
        "the file on your machine; only when the hits come from more than one repository "
        "(otherwise repo_path + '/' + relative_path)"
    )


class FullHit(Answer):
    """One chunk, whole (detail='full')."""

    path: str = Field(description="the file, as a path on your machine")
    relative_path: str = Field(description="the file, relative to the repository root")
    start_line: int = Field(ge=1, description="first line of the chunk (1-based)")
    end_line: int = Field(ge=1, description="last line of the chunk (inclusive)")
    language: str | None = Field(description="language of the file, if known")
    symbol: str | None = Field(description="function, class or section the chunk is, if any")
    score: float = Field(description="rank score (higher is better; compare within one answer)")
    similarity: float = Field(description="cosine similarity of the chunk to the query")
    content: str = Field(description="the chunk's text")
    context_before: str = Field(description="lines just before the chunk (may be empty)")
    context_after: str = Field(description="lines just after the chunk (may be empty)")


class SearchAnswer(Answer):
    """search_code: the best places for a query, best first."""

    detail: Detail = Field(
        description="'compact' (default: path, lines, symbol, score, snippet) or "
        "'full' (whole chunks with context)"
    )
    mode: str = Field(description="how it was ranked: hybrid, vector or lexical")
    repo_path: str | None = optional(
        "compact: the repository (on your machine) every hit is in; omitted when the hits "
        "span several repositories (each hit then has its own path)"
    )
    project_id: str | None = optional("full: the project searched")
    query: str | None = optional("full: the query as searched (trimmed)")
    lexical: str | None = optional(
        "hybrid: what the word-matching half did: ranked, or why it added nothing "
        "(no_words, too_common, over_budget); omitted in vector mode"
    )
    semantic_coverage: float | None = optional(
        "share (0..1) of the project's chunks that have vectors; below 1 while indexing "
        "runs, hits then come mostly from words; omitted when unknown"
    )
    lexical_only: bool | None = optional(
        "true when the answer is from word matching (BM25) alone; omitted when unknown"
    )
    fallback: str | None = optional(
        "why the answer is from word matching alone (embedder_timeout: ..., "
        "embedder_error: ...); omitted when the vectors were used"
    )
    results: list[CompactHit] | list[FullHit] = Field(
        description="hits, best first (compact: CompactHit; full: FullHit)"
    )
    embedding_ms: float = Field(description="time to embed the query, in ms")
    search_ms: float = Field(description="time to search the index, in ms")


# --- projects -------------------------------------------------------------------------


class ProjectInfo(Answer):
    project_id: str = Field(description="the project")
    embedding_model: str = Field(description="the model its vectors are made with")
    embedding_dim: int = Field(description="dimension of its vectors")
    files: int = Field(description="files indexed")
    chunks: int = Field(description="chunks indexed")
    repositories: list[str] = Field(description="repositories indexed, as paths on your machine")
    space_bytes: int = Field(
        description="estimated disk space of its chunks, vectors and lexical index: its share "
        "(by chunks and by indexed words) of the shared tables' size, indexes included"
    )
    created_at: str | None = Field(description="ISO 8601 time the project was created")
    updated_at: str | None = Field(description="ISO 8601 time it was last indexed")
    watches: list[WatchState] = Field(
        default_factory=list, description="its watched repositories (watch mode), stopped ones too"
    )
    source_url: str | None = optional("git sources: the URL last indexed, without credentials")
    source_ref: str | None = optional("git sources: the ref last indexed")
    source_commit: str | None = optional("git sources: the commit last indexed completely")
    source_indexed_at: str | None = optional("ISO 8601 time that commit was indexed")


class EmbeddingCacheInfo(Answer):
    entries: int = Field(description="vectors held, one per distinct text and model")
    space_bytes: int = Field(description="disk space of the cache, its index included")


class ProjectList(Answer):
    """list_projects: every project this server holds."""

    projects: list[ProjectInfo] = Field(description="the projects, by id")
    embedding_cache: EmbeddingCacheInfo = Field(
        description="the embedding cache every project shares (not in space_bytes)"
    )


class DeletedProject(Answer):
    """delete_project: what was removed."""

    project_id: str = Field(description="the project")
    deleted: Literal[True] = Field(description="always true")
    files: int = Field(description="files removed from the index")
    chunks: int = Field(description="chunks (and their vectors) removed")
