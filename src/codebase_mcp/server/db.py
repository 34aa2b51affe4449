"""The asyncpg pool and every SQL statement the server runs, in one place.

Every statement is scoped by ``project_id``: projects share tables (one HNSW
index per dimension serves them all) instead of a schema each, so creating a
project is an INSERT, not DDL, and one migration covers every project.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from codebase_mcp.errors import EmbeddingModelMismatch, NotFound
from codebase_mcp.server.indexfile import ChunkEntry, FileEntry

MAX_INDEXED_DIMENSION = 2000  # pgvector's HNSW limit for vector
# Client-side timeout of index builds and ANALYZE (the pool's command_timeout,
# 60 s, is for ordinary statements; None would mean that one).
LONG_STATEMENT_TIMEOUT = 6 * 3600.0


async def _init_connection(conn: asyncpg.Connection) -> None:
    from pgvector.asyncpg import register_vector

    await register_vector(conn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Where workers and the indexer get the pool: the server's is created on first
# need (Postgres may be down when a worker starts), a test's or a bench's is given.
PoolProvider = Callable[[], Awaitable[asyncpg.Pool]]


def pool_provider(pool: asyncpg.Pool | PoolProvider) -> PoolProvider:
    """``pool`` as a provider (a provider is returned as it is)."""
    if isinstance(pool, asyncpg.Pool):

        async def given() -> asyncpg.Pool:
            return pool

        return given
    return pool


@contextlib.asynccontextmanager
async def acquire(pools: PoolProvider) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the pool ``pools`` gives (created on first need)."""
    pool = await pools()
    async with pool.acquire() as conn:
        yield conn


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, command_timeout: float | None = 60
) -> asyncpg.Pool:
    """A pool whose connections know the vector type (needs ``CREATE EXTENSION vector``)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=command_timeout,
    )
    return pool


def hnsw_index_name(dimension: int) -> str:
    return f"chunks_embedding_hnsw_{int(dimension)}"


def hnsw_index_sql(dimension: int) -> str:
    """A partial HNSW index over one dimension (the column itself has none)."""
    dimension = int(dimension)
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(dimension)} ON chunks "
        f"USING hnsw ((embedding::vector({dimension})) vector_ip_ops) "
        f"WHERE embedding_dim = {dimension}"
    )


# --- the vector index of a dimension: kept live, or dropped for a bulk load ------
# Inserting a row into a live HNSW index costs ~2.5 ms here (a graph search and
# neighbour updates, ~2,000 buffer reads), ~90 % of writing a chunk; CREATE INDEX
# over the same rows is 5-6x cheaper per row. A job whose writes are the
# bottleneck may therefore drop the index of its dimension and build it again
# at the end (see Indexer). Advisory locks keyed (VECTOR_INDEX_LOCK, dimension)
# coordinate this across jobs and replicas: a bulk load holds the key SHARED on
# a connection it keeps for the duration; whoever (re)creates the index takes
# it EXCLUSIVE without waiting, so nobody rebuilds the index under a bulk load,
# and two bulk loads of one dimension share the drop. A bulk loader that dies
# releases the key with its connection; the next job (or a worker recovering
# its job) builds the index again.
VECTOR_INDEX_LOCK = 0x636D6370  # "cmcp": the advisory lock class of vector indexes


async def vector_index_exists(conn: asyncpg.Connection, dimension: int) -> bool:
    return bool(
        await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", hnsw_index_name(dimension))
    )


async def ensure_vector_index(
    conn: asyncpg.Connection, dimension: int, *, build_memory_mb: int = 0
) -> bool:
    """Create the dimension's HNSW index if it is missing and no bulk load holds it
    back. Runs in the caller's transaction (or its own). True if it built one."""
    if dimension > MAX_INDEXED_DIMENSION:
        return False
    async with conn.transaction():
        free = await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, $2)", VECTOR_INDEX_LOCK, int(dimension)
        )
        if not free or await vector_index_exists(conn, dimension):
            return False
        # No parallel workers: they need shared memory beyond a container's 64 MB
        # /dev/shm. The build is fast while the graph fits in maintenance_work_mem.
        await conn.execute("SET LOCAL max_parallel_maintenance_workers = 0")
        if build_memory_mb:
            await conn.execute(f"SET LOCAL maintenance_work_mem = '{int(build_memory_mb)}MB'")
        await conn.execute(hnsw_index_sql(dimension), timeout=LONG_STATEMENT_TIMEOUT)
        return True


async def defer_vector_index(conn: asyncpg.Connection, dimension: int) -> bool:
    """Drop the dimension's HNSW index for a bulk load; ``conn`` must be kept (it
    holds the lock) until :func:`end_vector_index_deferral`. False: not now (the
    index is being built, or queries hold it past a short lock timeout)."""
    key = (VECTOR_INDEX_LOCK, int(dimension))
    if not await conn.fetchval("SELECT pg_try_advisory_lock_shared($1, $2)", *key):
        return False
    try:
        async with conn.transaction():
            # DROP INDEX waits for running searches and blocks new ones meanwhile:
            # give up rather than stall them.
            await conn.execute("SET LOCAL lock_timeout = '2s'")
            await conn.execute(f"DROP INDEX IF EXISTS {hnsw_index_name(dimension)}")
    except asyncpg.LockNotAvailableError:
        await conn.execute("SELECT pg_advisory_unlock_shared($1, $2)", *key)
        return False
    return True


async def end_vector_index_deferral(conn: asyncpg.Connection, dimension: int) -> None:
    await conn.execute(
        "SELECT pg_advisory_unlock_shared($1, $2)", VECTOR_INDEX_LOCK, int(dimension)
    )


async def missing_vector_indexes(conn: asyncpg.Connection) -> list[int]:
    """Dimensions in use whose HNSW index is missing (a bulk load that died)."""
    rows = await conn.fetch(
        "SELECT DISTINCT embedding_dim FROM projects WHERE embedding_dim <= $1 "
        "AND to_regclass('chunks_embedding_hnsw_' || embedding_dim) IS NULL ORDER BY 1",
        MAX_INDEXED_DIMENSION,
    )
    return [int(row["embedding_dim"]) for row in rows]


async def dimension_rows(conn: asyncpg.Connection, dimension: int) -> int:
    """Chunks of this dimension with a vector, all projects: what its HNSW index holds."""
    value: int = await conn.fetchval(
        "SELECT count(*) FROM chunks WHERE embedding_dim = $1 AND embedding IS NOT NULL",
        int(dimension),
    )
    return value


# --- projects -----------------------------------------------------------------
@dataclass(frozen=True)
class Project:
    id: str
    embedding_model: str
    embedding_dim: int


async def get_project(conn: asyncpg.Connection, project_id: str) -> Project | None:
    row = await conn.fetchrow(
        "SELECT id, embedding_model, embedding_dim FROM projects WHERE id = $1", project_id
    )
    return Project(row["id"], row["embedding_model"], row["embedding_dim"]) if row else None


def model_mismatch(project: Project, model: str, dimension: int | None) -> EmbeddingModelMismatch:
    got = f"{model}" + (f" ({dimension} dimensions)" if dimension else "")
    return EmbeddingModelMismatch(
        f"project {project.id!r} was indexed with {project.embedding_model} "
        f"({project.embedding_dim} dimensions); the server now embeds with {got}",
        hint="vectors of different models cannot be compared: re-index with "
        "start_indexing_background(..., force_reindex=true), or set EMBEDDER_MODEL back",
    )


async def ensure_project(
    conn: asyncpg.Connection, project_id: str, model: str, dimension: int, *, replace: bool
) -> Project:
    """Create the project or check it matches; ``replace`` adopts the new model.

    Also creates the dimension's HNSW index when it is missing (a new dimension),
    unless a bulk load holds it back (:func:`ensure_vector_index`).
    """
    await ensure_vector_index(conn, dimension)
    await conn.execute(
        "INSERT INTO projects (id, embedding_model, embedding_dim) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO NOTHING",
        project_id,
        model,
        dimension,
    )
    await conn.execute(
        "INSERT INTO project_stats (project_id) VALUES ($1) ON CONFLICT DO NOTHING", project_id
    )
    project = await get_project(conn, project_id)
    assert project is not None
    if (project.embedding_model, project.embedding_dim) != (model, dimension):
        if not replace:
            raise model_mismatch(project, model, dimension)
        await wipe_project_index(conn, project_id)
        await conn.execute(
            "UPDATE projects SET embedding_model = $2, embedding_dim = $3, updated_at = now() "
            "WHERE id = $1",
            project_id,
            model,
            dimension,
        )
        project = Project(project_id, model, dimension)
    return project


async def list_projects(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT p.id, p.embedding_model, p.embedding_dim, p.created_at, p.updated_at,
               p.source_url, p.source_ref, p.source_commit, p.source_indexed_at,
               (SELECT count(*) FROM files f WHERE f.project_id = p.id) AS files,
               coalesce(s.chunks, 0) AS chunks, coalesce(s.embedded, 0) AS embedded,
               coalesce(s.lexical_length, 0) AS lexical_length,
               (SELECT array_agg(DISTINCT f.repo_root) FROM files f
                 WHERE f.project_id = p.id) AS roots
        FROM projects p LEFT JOIN project_stats s ON s.project_id = p.id ORDER BY p.id
        """
    )
    return [dict(row) for row in rows]


async def delete_project(conn: asyncpg.Connection, project_id: str) -> dict[str, int]:
    async with conn.transaction():
        exists = await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", project_id)
        if not exists:
            raise NotFound(
                f"no project {project_id!r}",
                hint="list_projects() shows the projects this server knows",
            )
        files = await conn.fetchval("SELECT count(*) FROM files WHERE project_id = $1", project_id)
        chunks = await conn.fetchval(
            "SELECT count(*) FROM chunks WHERE project_id = $1", project_id
        )
        await delete_lexical_terms(conn, project_id)
        await touch_released_cache(conn, "project_id = $1", project_id)
        await conn.execute(
            "UPDATE jobs SET cancel_requested = true WHERE project_id = $1 "
            "AND status IN ('pending', 'running')",
            project_id,
        )
        await conn.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), "
            "error = 'project deleted' WHERE project_id = $1 AND status = 'pending'",
            project_id,
        )
        await conn.execute("DELETE FROM projects WHERE id = $1", project_id)
    return {"files": int(files), "chunks": int(chunks)}


# --- files and chunks ------------------------------------------------------------
async def file_hashes(
    conn: asyncpg.Connection, project_id: str, repo_root: str
) -> dict[str, tuple[int, str]]:
    """rel_path -> (file id, content hash) of what is indexed under this repository."""
    rows = await conn.fetch(
        "SELECT id, rel_path, content_hash FROM files WHERE project_id = $1 AND repo_root = $2",
        project_id,
        repo_root,
    )
    return {row["rel_path"]: (row["id"], row["content_hash"]) for row in rows}


async def delete_files(conn: asyncpg.Connection, project_id: str, file_ids: Sequence[int]) -> None:
    """Delete files, their chunks and their part of the project's statistics."""
    if not file_ids:
        return
    async with conn.transaction():
        await remove_chunks(conn, project_id, file_ids)
        await conn.execute("DELETE FROM files WHERE id = ANY($1::bigint[])", list(file_ids))


async def delete_repository(conn: asyncpg.Connection, project_id: str, repo_root: str) -> None:
    """Everything indexed from one repository of a project (``force_reindex``)."""
    async with conn.transaction():
        others = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM files WHERE project_id = $1 AND repo_root <> $2)",
            project_id,
            repo_root,
        )
        if not others:
            await wipe_project_index(conn, project_id)
            return
        ids = await conn.fetch(
            "SELECT id FROM files WHERE project_id = $1 AND repo_root = $2", project_id, repo_root
        )
        await delete_files(conn, project_id, [row["id"] for row in ids])


@dataclass(frozen=True)
class FileRow:
    path: str
    rel_path: str
    content_hash: str
    language: str | None
    size_bytes: int
    chunk_count: int


CHUNK_COLUMNS = (
    "project_id",
    "file_id",
    "path",
    "rel_path",
    "extension",
    "language",
    "start_line",
    "end_line",
    "symbol",
    "content",
    "search_text",
    "embedding_dim",
    "embed_rank",
    "text_sha256",  # embedcache.text_sha256(chunker.embedding_text(...)); last, so old callers fit
)


async def write_files(
    conn: asyncpg.Connection,
    project_id: str,
    repo_root: str,
    files: Sequence[FileRow],
    chunks: Sequence[tuple[int, tuple[Any, ...]]],
) -> None:
    """Replace these files and their chunks in one transaction.

    ``chunks`` are (index into ``files``, record without project_id/file_id).
    Files go in with one INSERT ... SELECT FROM unnest (one round trip), chunks
    with COPY (binary, the fastest path into Postgres).
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """
            INSERT INTO files (project_id, repo_root, path, rel_path, content_hash, language,
                               size_bytes, chunk_count, indexed_at)
            SELECT $1, $2, u.path, u.rel_path, u.content_hash, u.language, u.size_bytes,
                   u.chunk_count, now()
            FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                        $8::int[]) WITH ORDINALITY
                 AS u(path, rel_path, content_hash, language, size_bytes, chunk_count, ord)
            ORDER BY u.ord
            ON CONFLICT (project_id, path) DO UPDATE
               SET content_hash = excluded.content_hash, language = excluded.language,
                   size_bytes = excluded.size_bytes, chunk_count = excluded.chunk_count,
                   repo_root = excluded.repo_root, rel_path = excluded.rel_path,
                   indexed_at = now()
            RETURNING id, path
            """,
            project_id,
            repo_root,
            [f.path for f in files],
            [f.rel_path for f in files],
            [f.content_hash for f in files],
            [f.language for f in files],
            [f.size_bytes for f in files],
            [f.chunk_count for f in files],
        )
        ids_by_path = {row["path"]: row["id"] for row in rows}
        file_ids = [ids_by_path[f.path] for f in files]
        # Writes to chunks wait while another job builds a vector index (CREATE
        # INDEX holds a SHARE lock, a minute or more on a big table).
        await remove_chunks(conn, project_id, file_ids)
        if chunks:
            await conn.copy_records_to_table(
                "chunks",
                columns=CHUNK_COLUMNS,
                records=[(project_id, file_ids[index], *record) for index, record in chunks],
                timeout=LONG_STATEMENT_TIMEOUT,
            )
            await add_lexical(conn, project_id, file_ids, len(chunks))


# --- the lexical index (BM25) and the project's counts ---------------------------
# A chunk's terms are ``to_tsvector('english', search_text)``: search_text holds
# the identifier words (chunker.lexical_text), Postgres drops English stop-words
# and stems; a lexeme's term frequency is its number of positions. The same
# expression over the same immutable text gives the same terms again when a
# chunk is removed, so postings need no index by chunk.
_CHUNK_TERMS = """
    SELECT c.id AS chunk_id, u.lexeme,
           least(coalesce(array_length(u.positions, 1), 1), 32767) AS tf
    FROM chunks c CROSS JOIN LATERAL unnest(to_tsvector('english', c.search_text)) AS u
    WHERE c.file_id = ANY($2::bigint[])
"""

_ADD_LEXICAL_SQL = f"""
WITH lex AS MATERIALIZED ({_CHUNK_TERMS}),
lens AS (SELECT chunk_id, least(sum(tf), 32767)::int AS dl FROM lex GROUP BY chunk_id),
terms AS (
    INSERT INTO lexical_terms AS t (project_id, term, df)
    SELECT $1, lexeme, count(*) FROM lex GROUP BY lexeme
    ON CONFLICT (project_id, term) DO UPDATE SET df = t.df + excluded.df
    RETURNING t.term_id, t.term
),
postings AS (
    INSERT INTO lexical_postings (term_id, chunk_id, tf, dl)
    SELECT terms.term_id, lex.chunk_id, lex.tf, lens.dl
    FROM lex JOIN terms ON terms.term = lex.lexeme JOIN lens USING (chunk_id)
)
UPDATE project_stats SET chunks = chunks + $3,
       lexical_docs = lexical_docs + (SELECT count(*) FROM lens),
       lexical_length = lexical_length + (SELECT coalesce(sum(dl), 0) FROM lens)
WHERE project_id = $1
"""  # noqa: S608 - fixed text

_REMOVE_LEXICAL_SQL = f"""
WITH gone AS MATERIALIZED ({_CHUNK_TERMS}),
terms AS MATERIALIZED (
    SELECT t.term_id, t.term FROM lexical_terms t
    WHERE t.project_id = $1 AND t.term IN (SELECT lexeme FROM gone)
),
deleted AS (
    DELETE FROM lexical_postings p USING gone JOIN terms ON terms.term = gone.lexeme
    WHERE p.term_id = terms.term_id AND p.chunk_id = gone.chunk_id
    RETURNING p.term_id, p.chunk_id, p.dl
),
df AS (
    UPDATE lexical_terms t SET df = t.df - d.n
    FROM (SELECT term_id, count(*) AS n FROM deleted GROUP BY term_id) d
    WHERE t.term_id = d.term_id
),
docs AS (SELECT DISTINCT chunk_id, dl FROM deleted)
SELECT count(*) AS docs, coalesce(sum(dl), 0) AS length FROM docs
"""  # noqa: S608 - fixed text


async def remove_chunks(conn: asyncpg.Connection, project_id: str, file_ids: Sequence[int]) -> None:
    """Delete these files' chunks with their postings, document frequencies and counts
    (in the caller's transaction)."""
    if not file_ids:
        return
    ids = list(file_ids)
    removed = await conn.fetchrow(_REMOVE_LEXICAL_SQL, project_id, ids)
    counts = await conn.fetchrow(
        "SELECT count(*) AS chunks, count(embedding) AS embedded FROM chunks "
        "WHERE file_id = ANY($1::bigint[])",
        ids,
    )
    await touch_released_cache(conn, "file_id = ANY($1::bigint[])", ids)
    await conn.execute(
        "DELETE FROM chunks WHERE file_id = ANY($1::bigint[])",
        ids,
        timeout=LONG_STATEMENT_TIMEOUT,
    )
    await conn.execute(
        "UPDATE project_stats SET chunks = chunks - $2, embedded = embedded - $3, "
        "lexical_docs = lexical_docs - $4, lexical_length = lexical_length - $5 "
        "WHERE project_id = $1",
        project_id,
        counts["chunks"],
        counts["embedded"],
        removed["docs"],
        removed["length"],
    )


async def add_lexical(
    conn: asyncpg.Connection, project_id: str, file_ids: Sequence[int], new_chunks: int
) -> None:
    """Postings, document frequencies and counts of these files' chunks (just written)."""
    await conn.execute(
        _ADD_LEXICAL_SQL, project_id, list(file_ids), new_chunks, timeout=LONG_STATEMENT_TIMEOUT
    )


async def delete_lexical_terms(conn: asyncpg.Connection, project_id: str) -> None:
    await conn.execute(
        "DELETE FROM lexical_postings WHERE term_id IN "
        "(SELECT term_id FROM lexical_terms WHERE project_id = $1)",
        project_id,
        timeout=LONG_STATEMENT_TIMEOUT,
    )
    await conn.execute("DELETE FROM lexical_terms WHERE project_id = $1", project_id)


async def wipe_project_index(conn: asyncpg.Connection, project_id: str) -> None:
    """Every file, chunk, vector and term of a project; the project row stays."""
    async with conn.transaction():
        await delete_lexical_terms(conn, project_id)
        await touch_released_cache(conn, "project_id = $1", project_id)
        await conn.execute(
            "DELETE FROM files WHERE project_id = $1", project_id, timeout=LONG_STATEMENT_TIMEOUT
        )
        await conn.execute(
            "UPDATE project_stats SET chunks = 0, embedded = 0, lexical_docs = 0, "
            "lexical_length = 0, lexical_ready = true WHERE project_id = $1",
            project_id,
        )


async def rebuild_lexical(conn: asyncpg.Connection, project_id: str) -> int:
    """Build the lexical index of a project indexed before it existed (its chunks
    and vectors stay). Returns the chunks indexed."""
    async with conn.transaction():
        await delete_lexical_terms(conn, project_id)
        await conn.execute(
            "UPDATE project_stats SET lexical_docs = 0, lexical_length = 0 WHERE project_id = $1",
            project_id,
        )
        file_ids = [
            row["id"]
            for row in await conn.fetch("SELECT id FROM files WHERE project_id = $1", project_id)
        ]
        await add_lexical(conn, project_id, file_ids, 0)
        await conn.execute(
            "UPDATE project_stats SET lexical_ready = true WHERE project_id = $1", project_id
        )
        value: int = await conn.fetchval(
            "SELECT lexical_docs FROM project_stats WHERE project_id = $1", project_id
        )
        return value


@dataclass(frozen=True)
class ProjectStats:
    chunks: int
    embedded: int
    lexical_docs: int
    lexical_length: int
    lexical_ready: bool

    @property
    def semantic_coverage(self) -> float:
        """Share of the project's chunks that have a vector (1.0 for an empty project)."""
        return round(min(self.embedded / self.chunks, 1.0), 4) if self.chunks else 1.0

    @property
    def average_length(self) -> float:
        return self.lexical_length / self.lexical_docs if self.lexical_docs else 0.0


@dataclass(frozen=True)
class SearchTarget:
    project: Project
    stats: ProjectStats


async def search_target(conn: asyncpg.Connection, project_id: str) -> SearchTarget | None:
    """The project and its statistics in one round trip (a search's first statement)."""
    row = await conn.fetchrow(
        "SELECT p.id, p.embedding_model, p.embedding_dim, s.chunks, s.embedded, "
        "s.lexical_docs, s.lexical_length, s.lexical_ready "
        "FROM projects p LEFT JOIN project_stats s ON s.project_id = p.id WHERE p.id = $1",
        project_id,
    )
    if row is None:
        return None
    project = Project(row["id"], row["embedding_model"], row["embedding_dim"])
    if row["chunks"] is None:
        return SearchTarget(project, ProjectStats(0, 0, 0, 0, True))
    return SearchTarget(
        project,
        ProjectStats(
            int(row["chunks"]),
            int(row["embedded"]),
            int(row["lexical_docs"]),
            int(row["lexical_length"]),
            bool(row["lexical_ready"]),
        ),
    )


async def get_project_stats(conn: asyncpg.Connection, project_id: str) -> ProjectStats:
    row = await conn.fetchrow(
        "SELECT chunks, embedded, lexical_docs, lexical_length, lexical_ready "
        "FROM project_stats WHERE project_id = $1",
        project_id,
    )
    if row is None:
        return ProjectStats(0, 0, 0, 0, True)
    return ProjectStats(
        int(row["chunks"]),
        int(row["embedded"]),
        int(row["lexical_docs"]),
        int(row["lexical_length"]),
        bool(row["lexical_ready"]),
    )


# --- embedding after the lexical index -------------------------------------------
@dataclass(frozen=True)
class ChunkToEmbed:
    id: int
    rel_path: str
    symbol: str | None
    content: str


async def count_unembedded(conn: asyncpg.Connection, project_id: str) -> int:
    value: int = await conn.fetchval(
        "SELECT count(*) FROM chunks WHERE project_id = $1 AND embedding IS NULL", project_id
    )
    return value


async def next_to_embed(
    conn: asyncpg.Connection, project_id: str, limit: int
) -> list[ChunkToEmbed]:
    """The next chunks to embed, in ``embed_rank`` order (source code first)."""
    rows = await conn.fetch(
        "SELECT id, rel_path, symbol, content FROM chunks "
        "WHERE project_id = $1 AND embedding IS NULL ORDER BY embed_rank, id LIMIT $2",
        project_id,
        limit,
    )
    return [ChunkToEmbed(r["id"], r["rel_path"], r["symbol"], r["content"]) for r in rows]


async def write_embeddings(
    conn: asyncpg.Connection,
    project_id: str,
    dimension: int,
    chunk_ids: Sequence[int],
    vectors: Sequence[Sequence[float]],
    hashes: Sequence[bytes] | None = None,
    shard: Shard | None = None,
) -> int:
    """Store vectors of chunks still waiting for one; returns how many were stored
    (a chunk deleted or re-written meanwhile is skipped). ``hashes``: the chunks'
    text_sha256, set where a chunk has none yet (chunks written before 0005).
    ``shard``: only chunks of that shard, and only while its worker holds it."""
    ids = list(chunk_ids)
    shas = list(hashes) if hashes is not None else [None] * len(ids)
    async with conn.transaction():
        written: int = await conn.fetchval(
            "WITH v AS (SELECT * FROM unnest($2::bigint[], $3::text[], $5::bytea[]) "  # noqa: S608
            "AS v(id, vec, sha)), "
            "u AS (UPDATE chunks c SET embedding = v.vec::vector, "
            "text_sha256 = coalesce(c.text_sha256, v.sha) FROM v "
            "WHERE c.id = v.id AND c.project_id = $1 AND c.embedding IS NULL "
            f"AND c.embedding_dim = $4{held_shard_sql(6, shard)} RETURNING 1) "
            "SELECT count(*) FROM u",
            project_id,
            ids,
            [_vector_text(v) for v in vectors],
            int(dimension),
            shas,
            *held_shard_args(shard),
            timeout=LONG_STATEMENT_TIMEOUT,
        )
        await conn.execute(
            "UPDATE project_stats SET embedded = embedded + $2 WHERE project_id = $1",
            project_id,
            written,
        )
    return written


# --- the embedding cache (see embedcache and migration 0005) ----------------------
# Entries are keyed (text_sha256, model_key). An entry is "used" while a chunk has
# its text_sha256 (whatever the chunk's model: the collector errs on keeping).
_FILL_FROM_CACHE_SQL = """
WITH v AS (SELECT * FROM unnest($2::bigint[], $3::bytea[]) AS v(id, sha)),
hit AS MATERIALIZED (
    SELECT v.id, v.sha, e.embedding FROM v
    JOIN embedding_cache e ON e.text_sha256 = v.sha AND e.model_key = $4
    WHERE vector_dims(e.embedding) = $5
),
touched AS (
    UPDATE embedding_cache e SET last_used = now()
    FROM (SELECT DISTINCT sha FROM hit) h
    WHERE e.text_sha256 = h.sha AND e.model_key = $4
      AND e.last_used < now() - interval '1 hour'
),
u AS (
    UPDATE chunks c SET embedding = hit.embedding, text_sha256 = hit.sha FROM hit
    WHERE c.id = hit.id AND c.project_id = $1 AND c.embedding IS NULL
      AND c.embedding_dim = $5{held}
    RETURNING c.id
)
SELECT id FROM u
"""


async def fill_from_cache(
    conn: asyncpg.Connection,
    project_id: str,
    dimension: int,
    model_key: str,
    chunk_ids: Sequence[int],
    hashes: Sequence[bytes],
    shard: Shard | None = None,
) -> set[int]:
    """Give waiting chunks the cached vectors of their texts, in one statement
    (the vectors never leave the database). Returns the ids of the chunks filled.
    ``shard``: only chunks of that shard, and only while its worker holds it."""
    if not chunk_ids:
        return set()
    async with conn.transaction():
        rows = await conn.fetch(
            _FILL_FROM_CACHE_SQL.format(held=held_shard_sql(6, shard)),
            project_id,
            list(chunk_ids),
            list(hashes),
            model_key,
            int(dimension),
            *held_shard_args(shard),
            timeout=LONG_STATEMENT_TIMEOUT,
        )
        filled = {int(row["id"]) for row in rows}
        if filled:
            await conn.execute(
                "UPDATE project_stats SET embedded = embedded + $2 WHERE project_id = $1",
                project_id,
                len(filled),
            )
    return filled


async def insert_cached_embeddings(
    conn: asyncpg.Connection,
    model_key: str,
    hashes: Sequence[bytes],
    vectors: Sequence[Sequence[float]],
) -> int:
    """Add entries (an existing one is kept as it is). Returns how many were new."""
    if not hashes:
        return 0
    inserted: int = await conn.fetchval(
        "WITH i AS (INSERT INTO embedding_cache (text_sha256, model_key, embedding) "
        "SELECT u.sha, $1, u.vec::vector FROM unnest($2::bytea[], $3::text[]) AS u(sha, vec) "
        "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i",
        model_key,
        list(hashes),
        [_vector_text(v) for v in vectors],
        timeout=LONG_STATEMENT_TIMEOUT,
    )
    return inserted


async def lookup_cached_embeddings(
    conn: asyncpg.Connection, model_key: str, hashes: Sequence[bytes]
) -> dict[bytes, list[float]]:
    """The cached vectors of these texts under this model (absent ones are left out)."""
    if not hashes:
        return {}
    rows = await conn.fetch(
        "SELECT text_sha256, embedding::text AS vec FROM embedding_cache "
        "WHERE text_sha256 = ANY($2::bytea[]) AND model_key = $1",
        model_key,
        list(hashes),
    )
    return {bytes(row["text_sha256"]): _parse_vector(row["vec"]) for row in rows}


async def known_dimension(conn: asyncpg.Connection, model: str, digest: str) -> int | None:
    """The vector length these weights answered before (None: never seen)."""
    value: int | None = await conn.fetchval(
        "SELECT dimension FROM embedding_models WHERE model = $1 AND digest = $2", model, digest
    )
    return value


async def remember_dimension(
    conn: asyncpg.Connection, model: str, digest: str, dimension: int
) -> None:
    await conn.execute(
        "INSERT INTO embedding_models (model, digest, dimension) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        model,
        digest,
        int(dimension),
    )


async def touch_released_cache(conn: asyncpg.Connection, where: str, *args: Any) -> None:
    """Mark the entries of chunks about to be deleted as used now, so the collector
    keeps them for the grace period (a re-clone soon after finds them).
    ``where``: a fixed condition on chunks, never user text."""
    await conn.execute(
        "UPDATE embedding_cache SET last_used = now() WHERE text_sha256 IN "  # noqa: S608
        f"(SELECT text_sha256 FROM chunks WHERE {where} AND text_sha256 IS NOT NULL)",
        *args,
        timeout=LONG_STATEMENT_TIMEOUT,
    )


async def gc_embedding_cache(conn: asyncpg.Connection, grace_seconds: float) -> int:
    """Delete the entries no chunk uses that were not used for ``grace_seconds``
    (one statement; an anti-join on chunks' text_sha256 index). Returns the count."""
    deleted: int = await conn.fetchval(
        "WITH d AS (DELETE FROM embedding_cache e "
        "WHERE e.last_used < now() - make_interval(secs => $1) "
        "AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_sha256 = e.text_sha256) "
        "RETURNING 1) SELECT count(*) FROM d",
        float(grace_seconds),
        timeout=LONG_STATEMENT_TIMEOUT,
    )
    return deleted


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int  # the table with its index and TOAST


async def cache_stats(conn: asyncpg.Connection) -> CacheStats:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM embedding_cache) AS entries, "
        "pg_total_relation_size('embedding_cache') AS bytes"
    )
    return CacheStats(int(row["entries"]), int(row["bytes"]))


@dataclass(frozen=True)
class TableSizes:
    """What the tables every project shares take, and the totals to split them by."""

    chunk_bytes: int  # chunks (vectors in them) and files, with their indexes
    lexical_bytes: int  # lexical_postings and lexical_terms, with their indexes
    all_chunks: int
    all_lexical_length: int


async def table_sizes(conn: asyncpg.Connection) -> TableSizes:
    row = await conn.fetchrow(
        "SELECT pg_total_relation_size('chunks') + pg_total_relation_size('files') AS chunk_bytes,"
        " pg_total_relation_size('lexical_postings') + pg_total_relation_size('lexical_terms')"
        " AS lexical_bytes,"
        " (SELECT coalesce(sum(chunks), 0) FROM project_stats) AS all_chunks,"
        " (SELECT coalesce(sum(lexical_length), 0) FROM project_stats) AS all_length"
    )
    return TableSizes(
        int(row["chunk_bytes"]),
        int(row["lexical_bytes"]),
        int(row["all_chunks"]),
        int(row["all_length"]),
    )


def _parse_vector(text: str) -> list[float]:
    return [float(x) for x in text.strip("[]").split(",")] if text.strip("[]") else []


def _vector_text(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


# --- jobs -----------------------------------------------------------------------
JOB_COUNTERS = (
    "files_total",
    "files_scanned",
    "files_indexed",
    "files_unchanged",
    "files_skipped",
    "files_deleted",
    "chunks_created",
    "chunks_to_embed",
    "chunks_embedded",
    "chunks_reused",
)


async def create_job(
    conn: asyncpg.Connection,
    *,
    project_id: str,
    repo_path: str,
    root_path: str,
    force_reindex: bool,
    embedding_model: str,
    source: GitSource | None = None,
) -> uuid.UUID:
    """Queue a job; ``source``: the git URL, ref and commit it is pinned to (git jobs)."""
    job_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO jobs (id, project_id, repo_path, root_path, force_reindex, embedding_model, "
        "source_url, source_ref, source_commit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        job_id,
        project_id,
        repo_path,
        root_path,
        force_reindex,
        embedding_model,
        source.url if source else None,
        source.ref if source else None,
        source.commit if source else None,
    )
    return job_id


@dataclass(frozen=True)
class GitSource:
    """A git source as stored: canonical credential-free URL, ref, commit."""

    url: str
    ref: str | None
    commit: str | None


def job_source(job: dict[str, Any]) -> GitSource | None:
    """The git source of a job row (None: a path job)."""
    url = job.get("source_url")
    return GitSource(url, job.get("source_ref"), job.get("source_commit")) if url else None


async def project_source(conn: asyncpg.Connection, project_id: str) -> GitSource | None:
    """The git source a project last indexed completely, if any."""
    row = await conn.fetchrow(
        "SELECT source_url, source_ref, source_commit FROM projects WHERE id = $1", project_id
    )
    if row is None or row["source_url"] is None:
        return None
    return GitSource(row["source_url"], row["source_ref"], row["source_commit"])


async def record_source(
    conn: asyncpg.Connection, job_id: uuid.UUID, project_id: str, source: GitSource
) -> None:
    """A git job indexed ``source.commit``: the job and its project say so."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE jobs SET source_commit = $2 WHERE id = $1", job_id, source.commit
        )
        await conn.execute(
            "UPDATE projects SET source_url = $2, source_ref = $3, source_commit = $4, "
            "source_indexed_at = now() WHERE id = $1",
            project_id,
            source.url,
            source.ref,
            source.commit,
        )


async def get_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    return dict(row) if row else None


async def claim_job(conn: asyncpg.Connection, worker_id: str) -> dict[str, Any] | None:
    """Take the oldest pending job whose project has no running job.

    SKIP LOCKED lets replicas claim different jobs at once; the transaction-level
    advisory lock makes the "no running job for this project" check and the
    claim one atomic step across replicas (claims are rare, so it costs nothing).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('codebase-mcp:claim'))")
        row = await conn.fetchrow(
            """
            UPDATE jobs SET status = 'running', worker_id = $1, attempts = attempts + 1,
                            started_at = coalesce(started_at, now()), heartbeat_at = now()
            WHERE id = (
                SELECT j.id FROM jobs j
                WHERE j.status = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.status = 'running'
                                  AND r.project_id = j.project_id)
                ORDER BY j.created_at
                FOR UPDATE SKIP LOCKED
                LIMIT 1
            )
            RETURNING *
            """,
            worker_id,
        )
    return dict(row) if row else None


async def recover_stale_jobs(
    conn: asyncpg.Connection, *, stale_after: float, max_attempts: int
) -> list[dict[str, Any]]:
    """Jobs whose worker stopped heart-beating: back to pending, or failed after N tries."""
    rows = await conn.fetch(
        """
        UPDATE jobs SET
            status = CASE WHEN attempts >= $2 OR cancel_requested THEN
                          (CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END)
                     ELSE 'pending' END,
            finished_at = CASE WHEN attempts >= $2 OR cancel_requested THEN now() END,
            error = CASE WHEN attempts >= $2 AND NOT cancel_requested THEN
                        'worker ' || coalesce(worker_id, '?') || ' stopped responding '
                        || attempts || ' time(s); giving up'
                    ELSE error END,
            worker_id = NULL
        WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
        RETURNING id, status, attempts
        """,
        stale_after,
        max_attempts,
    )
    return [dict(row) for row in rows]


async def heartbeat(conn: asyncpg.Connection, job_id: uuid.UUID, worker_id: str) -> bool | None:
    """Refresh our claim. None: we lost the job; True: a cancel was requested."""
    value: bool | None = await conn.fetchval(
        "UPDATE jobs SET heartbeat_at = now() WHERE id = $1 AND worker_id = $2 "
        "AND status = 'running' RETURNING cancel_requested",
        job_id,
        worker_id,
    )
    return value


async def update_progress(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    worker_id: str,
    counters: dict[str, int],
    errors: list[dict[str, str]],
    timings: dict[str, float],
) -> bool | None:
    """Write counters after each batch (also a heartbeat). Same answer as :func:`heartbeat`."""
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(JOB_COUNTERS, start=3))
    value: bool | None = await conn.fetchval(
        f"UPDATE jobs SET {sets}, errors = ${len(JOB_COUNTERS) + 3}, "  # noqa: S608 - fixed names
        f"timings = ${len(JOB_COUNTERS) + 4}, heartbeat_at = now() "
        "WHERE id = $1 AND worker_id = $2 AND status = 'running' RETURNING cancel_requested",
        job_id,
        worker_id,
        *(int(counters.get(name, 0)) for name in JOB_COUNTERS),
        errors,
        timings,
    )
    return value


async def finish_job(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    worker_id: str,
    status: str,
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE jobs SET status = $3, error = $4, finished_at = now(), heartbeat_at = now() "
        "WHERE id = $1 AND worker_id = $2 AND status = 'running'",
        job_id,
        worker_id,
        status,
        error,
    )


async def release_job(conn: asyncpg.Connection, job_id: uuid.UUID, worker_id: str) -> None:
    """Give a running job back to the queue (graceful shutdown)."""
    await conn.execute(
        "UPDATE jobs SET status = 'pending', worker_id = NULL WHERE id = $1 AND worker_id = $2 "
        "AND status = 'running'",
        job_id,
        worker_id,
    )


async def request_cancel(conn: asyncpg.Connection, job_id: uuid.UUID) -> str | None:
    """Cancel a pending job at once, ask a running one to stop. Returns the new status."""
    status: str | None = await conn.fetchval(
        """
        UPDATE jobs SET
            cancel_requested = CASE WHEN status IN ('pending', 'running') THEN true
                                    ELSE cancel_requested END,
            status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
            finished_at = CASE WHEN status = 'pending' THEN now() ELSE finished_at END
        WHERE id = $1 RETURNING status
        """,
        job_id,
    )
    return status


# --- embedding shards (migration 0011_job_shards; see shards.py) ------------------
# A job's embedding work, cut into shards any worker of any replica claims. Every
# vector write of a shard carries held_shard_sql: the chunk must be in the shard
# and the shard held (running) by the writer, checked in the same statement as
# ``embedding IS NULL``, so a worker that lost its shard (stale, reclaimed)
# writes nothing, and no chunk is written twice.
@dataclass(frozen=True)
class Shard:
    """A shard as claimed by ``worker_id``."""

    job_id: uuid.UUID
    shard_no: int
    worker_id: str
    project_id: str
    dimension: int
    chunk_ids: list[int]
    attempts: int


def held_shard_sql(first_param: int, shard: Shard | None) -> str:
    """`` AND ...``: chunk ``c`` is in the shard its writer still holds (none: '')."""
    if shard is None:
        return ""
    n = first_param
    return (
        f" AND EXISTS (SELECT 1 FROM job_shards s WHERE s.job_id = ${n}::uuid "  # noqa: S608
        f"AND s.shard_no = ${n + 1}::int AND s.worker_id = ${n + 2}::text "
        "AND s.status = 'running' AND c.id = ANY(s.chunk_ids))"
    )


def held_shard_args(shard: Shard | None) -> list[Any]:
    return [] if shard is None else [shard.job_id, shard.shard_no, shard.worker_id]


def _shard(row: asyncpg.Record) -> Shard:
    return Shard(
        row["job_id"],
        int(row["shard_no"]),
        row["worker_id"],
        row["project_id"],
        int(row["dimension"]),
        [int(i) for i in row["chunk_ids"]],
        int(row["attempts"]),
    )


async def unembedded_chunk_ids(conn: asyncpg.Connection, project_id: str) -> list[int]:
    """Ids of the project's chunks without a vector, in embedding order."""
    rows = await conn.fetch(
        "SELECT id FROM chunks WHERE project_id = $1 AND embedding IS NULL ORDER BY embed_rank, id",
        project_id,
        timeout=LONG_STATEMENT_TIMEOUT,
    )
    return [int(row["id"]) for row in rows]


@dataclass(frozen=True)
class OpenShards:
    chunk_ids: set[int]  # chunks in shards not done yet (pending, running, failed)
    next_no: int  # the shard number a new shard gets


async def open_shards(conn: asyncpg.Connection, job_id: uuid.UUID) -> OpenShards:
    rows = await conn.fetch(
        "SELECT shard_no, status, chunk_ids FROM job_shards WHERE job_id = $1", job_id
    )
    ids: set[int] = set()
    for row in rows:
        if row["status"] != "done":
            ids.update(int(i) for i in row["chunk_ids"])
    return OpenShards(ids, max((int(r["shard_no"]) for r in rows), default=-1) + 1)


async def retry_failed_shards(conn: asyncpg.Connection, job_id: uuid.UUID) -> int:
    """A re-run of the job gives its failed shards their attempts again."""
    status = await conn.execute(
        "UPDATE job_shards SET status = 'pending', attempts = 0 "
        "WHERE job_id = $1 AND status = 'failed'",
        job_id,
    )
    return int(status.split()[-1])


async def add_shards(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    project_id: str,
    dimension: int,
    pieces: Sequence[Sequence[int]],
    first_no: int,
    model_digest: str | None = None,
) -> None:
    """Write pending shards ``first_no``, ``first_no + 1``... of these chunk ids;
    ``model_digest``: the weights they are to be embedded with (None: not known)."""
    await conn.executemany(
        "INSERT INTO job_shards (job_id, shard_no, project_id, dimension, chunk_ids, "
        "model_digest) VALUES ($1, $2, $3, $4, $5::bigint[], $6)",
        [
            (job_id, first_no + n, project_id, int(dimension), list(piece), model_digest)
            for n, piece in enumerate(pieces)
        ],
    )


async def has_pending_shards(conn: asyncpg.Connection, model: str) -> bool:
    """Whether a running job embedded with ``model`` has a shard waiting for a worker."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM job_shards s JOIN jobs j ON j.id = s.job_id "
            "WHERE s.status = 'pending' AND j.status = 'running' AND j.embedding_model = $1)",
            model,
        )
    )


async def claim_shard(
    conn: asyncpg.Connection,
    worker_id: str,
    model: str,
    job_id: uuid.UUID | None = None,
    model_digest: str | None = None,
) -> Shard | None:
    """Take a pending shard of a running job embedded with ``model`` (``job_id``:
    of that job only), the oldest job's first; SKIP LOCKED lets replicas claim
    different shards at once. A shard whose owner knew its weights' digest is
    taken only with the same ``model_digest`` (None: only shards without one)."""
    row = await conn.fetchrow(
        """
        WITH next AS (
            SELECT s.job_id, s.shard_no FROM job_shards s JOIN jobs j ON j.id = s.job_id
            WHERE s.status = 'pending' AND j.status = 'running' AND NOT j.cancel_requested
              AND j.embedding_model = $2 AND ($3::uuid IS NULL OR s.job_id = $3::uuid)
              AND (s.model_digest IS NULL OR s.model_digest = $4::text)
            ORDER BY j.created_at, s.job_id, s.shard_no
            LIMIT 1
            FOR UPDATE OF s SKIP LOCKED
        )
        UPDATE job_shards s SET status = 'running', worker_id = $1, attempts = s.attempts + 1,
                                heartbeat_at = now(), started_at = coalesce(s.started_at, now())
        FROM next WHERE s.job_id = next.job_id AND s.shard_no = next.shard_no
        RETURNING s.*
        """,
        worker_id,
        model,
        job_id,
        model_digest,
    )
    return _shard(row) if row else None


async def shard_chunks(
    conn: asyncpg.Connection, shard: Shard, ids: Sequence[int]
) -> list[ChunkToEmbed]:
    """Those of ``ids`` (chunks of the shard) that still have no vector, in embedding order."""
    rows = await conn.fetch(
        "SELECT id, rel_path, symbol, content FROM chunks "
        "WHERE id = ANY($2::bigint[]) AND project_id = $1 AND embedding IS NULL "
        "ORDER BY embed_rank, id",
        shard.project_id,
        list(ids),
    )
    return [ChunkToEmbed(r["id"], r["rel_path"], r["symbol"], r["content"]) for r in rows]


async def beat_shard(conn: asyncpg.Connection, shard: Shard) -> bool | None:
    """Heartbeat of a held shard. None: the shard is no longer ours; True: its job
    stopped (cancelled, finished, failed)."""
    value: bool | None = await conn.fetchval(
        "UPDATE job_shards s SET heartbeat_at = now() "
        "FROM jobs j WHERE s.job_id = $1 AND s.shard_no = $2 AND s.worker_id = $3 "
        "AND s.status = 'running' AND j.id = s.job_id "
        "RETURNING j.status <> 'running' OR j.cancel_requested",
        shard.job_id,
        shard.shard_no,
        shard.worker_id,
    )
    return value


async def count_shard_vectors(
    conn: asyncpg.Connection, shard: Shard, embedded: int, reused: int
) -> None:
    """Add vectors just written to the shard's counters (in the write's transaction,
    so the counters are exact whenever a worker dies)."""
    if not (embedded or reused):
        return
    await conn.execute(
        "UPDATE job_shards SET chunks_embedded = chunks_embedded + $4, "
        "chunks_reused = chunks_reused + $5 WHERE job_id = $1 AND shard_no = $2 "
        "AND worker_id = $3",
        shard.job_id,
        shard.shard_no,
        shard.worker_id,
        int(embedded),
        int(reused),
    )


async def finish_shard(conn: asyncpg.Connection, shard: Shard) -> bool:
    """Mark a held shard done. False: it was no longer ours."""
    status = await conn.execute(
        "UPDATE job_shards SET status = 'done', finished_at = now(), heartbeat_at = now() "
        "WHERE job_id = $1 AND shard_no = $2 AND worker_id = $3 AND status = 'running'",
        shard.job_id,
        shard.shard_no,
        shard.worker_id,
    )
    return bool(status.endswith(" 1"))


async def release_shard(conn: asyncpg.Connection, shard: Shard, max_attempts: int | None) -> None:
    """Give a held shard back: pending, or (``max_attempts`` given: its worker
    failed) failed after that many claims."""
    await conn.execute(
        "UPDATE job_shards SET status = CASE WHEN $4::int IS NOT NULL AND attempts >= $4 "
        "THEN 'failed' ELSE 'pending' END, heartbeat_at = now() "
        "WHERE job_id = $1 AND shard_no = $2 AND worker_id = $3 AND status = 'running'",
        shard.job_id,
        shard.shard_no,
        shard.worker_id,
        max_attempts,
    )


async def recover_stale_shards(
    conn: asyncpg.Connection, *, stale_after: float, max_attempts: int
) -> int:
    """Shards whose worker stopped heart-beating: back to pending (failed after
    ``max_attempts`` claims). The worker id stays until the next claim (the status
    shows who died). Returns how many."""
    value: int = await conn.fetchval(
        "WITH r AS (UPDATE job_shards SET status = CASE WHEN attempts >= $2 THEN 'failed' "
        "ELSE 'pending' END WHERE status = 'running' "
        "AND heartbeat_at < now() - make_interval(secs => $1) RETURNING 1) "
        "SELECT count(*) FROM r",
        float(stale_after),
        int(max_attempts),
    )
    return value


@dataclass(frozen=True)
class ShardWorkerRow:
    worker_id: str
    shards_done: int
    shards_running: int
    chunks_embedded: int
    chunks_reused: int


@dataclass(frozen=True)
class ShardSummary:
    total: int
    pending: int
    running: int
    done: int
    failed: int
    chunks: int  # in all the job's shards
    chunks_embedded: int
    chunks_reused: int
    workers: list[ShardWorkerRow]

    @property
    def open(self) -> int:
        """Shards someone may still work on."""
        return self.pending + self.running


async def shard_summary(conn: asyncpg.Connection, job_id: uuid.UUID) -> ShardSummary:
    """Counts of a job's shards by status, and by the worker that holds or finished them."""
    rows = await conn.fetch(
        "SELECT worker_id, status, count(*) AS shards, sum(cardinality(chunk_ids)) AS chunks, "
        "sum(chunks_embedded) AS embedded, sum(chunks_reused) AS reused "
        "FROM job_shards WHERE job_id = $1 GROUP BY worker_id, status ORDER BY worker_id",
        job_id,
    )
    by_status = dict.fromkeys(("pending", "running", "done", "failed"), 0)
    workers: dict[str, list[int]] = {}
    for row in rows:
        by_status[row["status"]] += int(row["shards"])
        if row["worker_id"] is None or row["status"] not in ("running", "done"):
            continue
        split = workers.setdefault(row["worker_id"], [0, 0, 0, 0])
        split[0 if row["status"] == "done" else 1] += int(row["shards"])
        split[2] += int(row["embedded"])
        split[3] += int(row["reused"])
    return ShardSummary(
        total=sum(by_status.values()),
        pending=by_status["pending"],
        running=by_status["running"],
        done=by_status["done"],
        failed=by_status["failed"],
        chunks=sum(int(r["chunks"]) for r in rows),
        chunks_embedded=sum(int(r["embedded"]) for r in rows),
        chunks_reused=sum(int(r["reused"]) for r in rows),
        workers=[ShardWorkerRow(w, *split) for w, split in workers.items()],
    )


# --- shareable indexes (index export / import; see indexfile) ---------------------
@dataclass(frozen=True)
class ProjectExport:
    project: Project
    model_keys: dict[str, int]  # cache keys whose vectors equal the chunks' -> chunks matched
    files: list[FileEntry]
    # A chunk not embedded yet has an empty ``vector`` (and ``text_sha256`` if it has none).
    chunks: list[ChunkEntry]


async def read_project_export(conn: asyncpg.Connection, project_id: str) -> ProjectExport | None:
    """A project's files, chunks and vectors in one snapshot (None: no such project).

    ``model_keys``: which cache entries hold exactly these vectors for these
    texts, by model key; the one that covers every chunk is the model's identity."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        project = await get_project(conn, project_id)
        if project is None:
            return None
        keys = await conn.fetch(
            "SELECT e.model_key, count(*) AS n FROM chunks c JOIN embedding_cache e "
            "ON e.text_sha256 = c.text_sha256 AND e.embedding = c.embedding "
            "WHERE c.project_id = $1 AND e.model_key LIKE $2 GROUP BY e.model_key",
            project_id,
            f"%|{project.embedding_model}|{project.embedding_dim}|%",
        )
        files = await conn.fetch(
            "SELECT repo_root, path, rel_path, content_hash, language, size_bytes, chunk_count "
            "FROM files WHERE project_id = $1 ORDER BY path",
            project_id,
        )
        chunks = await conn.fetch(
            "SELECT path, rel_path, extension, language, start_line, end_line, symbol, content, "
            "search_text, embed_rank, text_sha256, embedding::text AS vec FROM chunks "
            "WHERE project_id = $1 ORDER BY path, start_line, end_line, id",
            project_id,
            timeout=LONG_STATEMENT_TIMEOUT,
        )
    return ProjectExport(
        project,
        {row["model_key"]: int(row["n"]) for row in keys},
        [FileEntry(**dict(row)) for row in files],
        [
            ChunkEntry(
                row["path"],
                row["rel_path"],
                row["extension"],
                row["language"],
                row["start_line"],
                row["end_line"],
                row["symbol"],
                row["content"],
                row["search_text"],
                row["embed_rank"],
                bytes(row["text_sha256"]) if row["text_sha256"] is not None else b"",
                tuple(_parse_vector(row["vec"])) if row["vec"] is not None else (),
            )
            for row in chunks
        ],
    )


IMPORT_LOCK_NAMESPACE = "codebase-mcp import "


async def import_project(
    conn: asyncpg.Connection,
    project_id: str,
    model: str,
    dimension: int,
    model_key: str,
    files: Sequence[FileEntry],
    chunks: Sequence[ChunkEntry],
    *,
    replace: bool,
) -> None:
    """Write an imported index in ONE transaction: files, chunks with their vectors,
    the lexical index (rebuilt from search_text), counts, and the embedding cache.

    A transaction-scoped advisory lock per project id: a second import of the
    same project at the same time fails at once (IndexImportBusy) instead of
    waiting; an existing project is refused unless ``replace``."""
    from codebase_mcp.errors import IndexImportBusy, IndexProjectExists

    async with conn.transaction():
        locked = await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
            IMPORT_LOCK_NAMESPACE + project_id,
        )
        if not locked:
            raise IndexImportBusy(
                f"another import of project {project_id!r} is running",
                hint="nothing was written; wait for it to finish, then list_projects()",
            )
        existing = await get_project(conn, project_id)
        if existing is not None:
            if not replace:
                raise IndexProjectExists(
                    f"project {project_id!r} exists already; nothing was written",
                    hint="import under another id (--project NEW_ID), or replace it (--replace)",
                )
            await wipe_project_index(conn, project_id)
        await ensure_project(conn, project_id, model, dimension, replace=True)
        rows = await conn.fetch(
            """
            INSERT INTO files (project_id, repo_root, path, rel_path, content_hash, language,
                               size_bytes, chunk_count, indexed_at)
            SELECT $1, u.repo_root, u.path, u.rel_path, u.content_hash, u.language,
                   u.size_bytes, u.chunk_count, now()
            FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::bigint[], $8::int[])
                 AS u(repo_root, path, rel_path, content_hash, language, size_bytes, chunk_count)
            RETURNING id, path
            """,
            project_id,
            [f.repo_root for f in files],
            [f.path for f in files],
            [f.rel_path for f in files],
            [f.content_hash for f in files],
            [f.language for f in files],
            [f.size_bytes for f in files],
            [f.chunk_count for f in files],
        )
        ids = {row["path"]: row["id"] for row in rows}
        if chunks:
            await conn.copy_records_to_table(
                "chunks",
                columns=(*CHUNK_COLUMNS, "embedding"),
                records=[
                    (
                        project_id,
                        ids[c.path],
                        c.path,
                        c.rel_path,
                        c.extension,
                        c.language,
                        c.start_line,
                        c.end_line,
                        c.symbol,
                        c.content,
                        c.search_text,
                        dimension,
                        c.embed_rank,
                        c.text_sha256,
                        list(c.vector),
                    )
                    for c in chunks
                ],
                timeout=LONG_STATEMENT_TIMEOUT,
            )
            await add_lexical(conn, project_id, list(ids.values()), len(chunks))
            await conn.execute(
                "UPDATE project_stats SET embedded = embedded + $2 WHERE project_id = $1",
                project_id,
                sum(1 for c in chunks if c.vector),
            )
            unique: dict[bytes, list[float]] = {}
            for c in chunks:
                if c.text_sha256 and c.vector:
                    unique.setdefault(c.text_sha256, list(c.vector))
            await insert_cached_embeddings(conn, model_key, list(unique), list(unique.values()))


async def analyze_after_index(conn: asyncpg.Connection) -> None:
    """Fresh planner statistics after a large write: ANALYZE chunks, VACUUM (ANALYZE)
    the lexical tables (not chunks: its vacuum walks the whole HNSW graph of every
    project)."""
    await conn.execute("ANALYZE chunks", timeout=LONG_STATEMENT_TIMEOUT)
    await conn.execute(
        "VACUUM (ANALYZE) lexical_postings, lexical_terms", timeout=LONG_STATEMENT_TIMEOUT
    )


async def is_migrated(conn: asyncpg.Connection) -> bool:
    """Whether the schema is there (the ``chunks`` table exists): /health."""
    return bool(await conn.fetchval("SELECT to_regclass('public.chunks') IS NOT NULL"))


# --- watches (watch mode) -------------------------------------------------------------
# Advisory lock class that serialises "is a sync job already pending?" per project
# (the second key hashes project and root), so two replicas that see one save
# queue one job between them.
WATCH_LOCK = 0x63776174  # "cwat"
WATCHING = "watching"


@dataclass(frozen=True)
class WatchRow:
    project_id: str
    root_path: str
    repo_path: str
    enabled: bool
    state: str
    created_at: datetime
    updated_at: datetime
    last_change_at: datetime | None
    last_job_id: uuid.UUID | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> WatchRow:
        # SELECT * / RETURNING *: the table's columns are exactly these fields.
        return cls(**dict(row))


async def set_watch(
    conn: asyncpg.Connection, *, project_id: str, repo_path: str, root_path: str
) -> WatchRow:
    """Watch a project's repository from now on (again, if it was stopped)."""
    row = await conn.fetchrow(
        "INSERT INTO watches (project_id, repo_path, root_path) VALUES ($1, $2, $3) "
        "ON CONFLICT (project_id, root_path) DO UPDATE SET repo_path = EXCLUDED.repo_path, "
        "enabled = true, state = 'watching', "
        "updated_at = now() RETURNING *",
        project_id,
        repo_path,
        root_path,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return WatchRow.from_record(row)


async def stop_watch(
    conn: asyncpg.Connection, project_id: str, root_path: str, reason: str
) -> bool:
    """Stop watching; the row stays, so status can say why. False: it was not watched."""
    status = await conn.execute(
        "UPDATE watches SET enabled = false, state = $3, updated_at = now() "
        "WHERE project_id = $1 AND root_path = $2 AND enabled",
        project_id,
        root_path,
        reason,
    )
    return bool(status.endswith(" 1"))


async def delete_watch(conn: asyncpg.Connection, project_id: str) -> None:
    await conn.execute("DELETE FROM watches WHERE project_id = $1", project_id)


async def get_watch(conn: asyncpg.Connection, project_id: str, root_path: str) -> WatchRow | None:
    row = await conn.fetchrow(
        "SELECT * FROM watches WHERE project_id = $1 AND root_path = $2", project_id, root_path
    )
    return WatchRow.from_record(row) if row else None


async def all_watches(conn: asyncpg.Connection) -> dict[str, list[WatchRow]]:
    """project id -> its watches (stopped ones too: status says why they stopped)."""
    out: dict[str, list[WatchRow]] = {}
    for row in await conn.fetch("SELECT * FROM watches ORDER BY project_id, root_path"):
        out.setdefault(row["project_id"], []).append(WatchRow.from_record(row))
    return out


async def enabled_watches(conn: asyncpg.Connection) -> list[WatchRow]:
    rows = await conn.fetch("SELECT * FROM watches WHERE enabled ORDER BY project_id, root_path")
    return [WatchRow.from_record(row) for row in rows]


async def queue_sync_job(
    conn: asyncpg.Connection, watch: WatchRow, embedding_model: str
) -> uuid.UUID | None:
    """Queue an incremental index of the watched repository, unless one is pending.

    A pending job has not walked the tree yet, so it will see this change too; a
    running one may already be past the changed file, so it does not count.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2 || ' ' || $3))",
            WATCH_LOCK,
            watch.project_id,
            watch.root_path,
        )
        pending = await conn.fetchval(
            "SELECT 1 FROM jobs WHERE project_id = $1 AND root_path = $2 "
            "AND status = 'pending' LIMIT 1",
            watch.project_id,
            watch.root_path,
        )
        if pending:
            await conn.execute(
                "UPDATE watches SET last_change_at = now() WHERE project_id = $1 "
                "AND root_path = $2",
                watch.project_id,
                watch.root_path,
            )
            return None
        job_id = await create_job(
            conn,
            project_id=watch.project_id,
            repo_path=watch.repo_path,
            root_path=watch.root_path,
            force_reindex=False,
            embedding_model=embedding_model,
        )
        await conn.execute(
            "UPDATE watches SET last_change_at = now(), last_job_id = $3 "
            "WHERE project_id = $1 AND root_path = $2",
            watch.project_id,
            watch.root_path,
            job_id,
        )
    return job_id


# --- search ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    file_type: str | None = None  # extension ("py") or language ("python")
    path_prefix: str | None = None  # container path prefix (absolute directory filter)
    rel_prefix: str | None = None  # relative directory filter


@dataclass
class Hit:
    id: int
    path: str
    rel_path: str
    language: str | None
    start_line: int
    end_line: int
    symbol: str | None
    content: str
    similarity: float  # cosine with the query; 0.0 when the chunk has no vector yet
    score: float = 0.0
    bm25: float | None = None  # lexical score, when the lexical half found it
    embedded: bool = True


def filter_sql(filters: Filters, first_param: int, alias: str = "") -> tuple[str, list[Any]]:
    """`` AND ...`` clauses of ``filters`` (parameters from ``$first_param``) and their values."""
    clauses: list[str] = []
    params: list[Any] = []
    n = first_param
    a = alias
    if filters.file_type:
        clauses.append(f"({a}extension = ${n} OR {a}language = ${n})")
        params.append(filters.file_type)
        n += 1
    if filters.path_prefix:
        clauses.append(f"starts_with({a}path, ${n})")
        params.append(filters.path_prefix.rstrip("/") + "/")
        n += 1
    if filters.rel_prefix:
        clauses.append(f"starts_with({a}rel_path, ${n})")
        params.append(filters.rel_prefix.strip("/") + "/")
        n += 1
    return "".join(f" AND {c}" for c in clauses), params


HIT_COLUMNS = "id, path, rel_path, language, start_line, end_line, symbol, content"


def _hit(row: asyncpg.Record) -> Hit:
    similarity = row["similarity"]
    bm25 = row.get("bm25")
    return Hit(
        id=row["id"],
        path=row["path"],
        rel_path=row["rel_path"],
        language=row["language"],
        start_line=row["start_line"],
        end_line=row["end_line"],
        symbol=row["symbol"],
        content=row["content"],
        similarity=float(similarity) if similarity is not None else 0.0,
        bm25=float(bm25) if bm25 is not None else None,
        embedded=similarity is not None,
    )


def vector_search_sql(dim: int, where: str) -> str:
    """Nearest chunks by inner product ($1 vector, $2 project, $3 limit, filters from $4)."""
    dim = int(dim)
    return (
        f"SELECT {HIT_COLUMNS}, -(embedding::vector({dim}) <#> $1::vector({dim})) AS similarity "  # noqa: S608
        f"FROM chunks WHERE project_id = $2 AND embedding_dim = {dim} "
        f"AND embedding IS NOT NULL{where} "
        f"ORDER BY embedding::vector({dim}) <#> $1::vector({dim}) LIMIT $3"
    )


async def vector_hits(
    conn: asyncpg.Connection,
    project: Project,
    vector: Sequence[float],
    filters: Filters,
    limit: int,
    ef_search: int,
) -> list[Hit]:
    """The project's chunks nearest ``vector`` (HNSW with ``relaxed_order``: the caller
    sorts exactly)."""
    dim = int(project.embedding_dim)
    where, params = filter_sql(filters, 4)
    sql = vector_search_sql(dim, where)
    if dim <= MAX_INDEXED_DIMENSION:
        # Both settings in one round trip, for the session (no BEGIN/COMMIT: two
        # round trips fewer, which under 16 concurrent searches on a busy event
        # loop is most of a search's time). Every vector search sets them again,
        # and the pool's RESET ALL clears them when the connection is released.
        await conn.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false), "
            "set_config('hnsw.ef_search', $1, false)",
            str(max(int(ef_search), limit)),
        )
    rows = await conn.fetch(sql, vector, project.id, limit, *params)
    return [_hit(row) for row in rows]


@dataclass(frozen=True)
class TermDf:
    term_id: int
    df: int


@dataclass(frozen=True)
class LexicalStats:
    """A project's BM25 statistics and the document frequency of a query's terms."""

    docs: int  # N: chunks with at least one term
    length: int  # their total length (terms)
    ready: bool  # false until the project's lexical index is built
    terms: list[TermDf]  # the query's terms found in the project


_TERMS_SQL = """
SELECT t.term_id, t.df, s.lexical_docs, s.lexical_length, s.lexical_ready
FROM project_stats s LEFT JOIN lexical_terms t
     ON t.project_id = s.project_id AND t.df > 0
    AND t.term IN (SELECT lexeme FROM unnest(to_tsvector('english', $2)))
WHERE s.project_id = $1
"""
# The same, setting (for the rest of the transaction, i.e. the BM25 statement) a
# plan made for the query's arrays (a generic plan guesses their sizes) and the
# time budget ($3, milliseconds as text; '0': none): one round trip fewer.
_TERMS_SETTING_SQL = """
SELECT t.term_id, t.df, s.lexical_docs, s.lexical_length, s.lexical_ready
FROM (SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
             CASE WHEN $3 <> '0' THEN set_config('statement_timeout', $3, true) END) cfg,
     project_stats s LEFT JOIN lexical_terms t
     ON t.project_id = s.project_id AND t.df > 0
    AND t.term IN (SELECT lexeme FROM unnest(to_tsvector('english', $2)))
WHERE s.project_id = $1
"""


async def set_lexical_settings(conn: asyncpg.Connection, budget_ms: int) -> None:
    """In the current transaction: a plan made for the query's arrays (a generic plan
    guesses their sizes) and, if ``budget_ms``, a statement timeout."""
    budget = ", set_config('statement_timeout', $1, true)" if budget_ms else ""
    await conn.execute(
        "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)" + budget,
        *([str(int(budget_ms))] if budget_ms else []),
    )


async def lexical_stats(
    conn: asyncpg.Connection, project_id: str, words: str, *, budget_ms: int | None = None
) -> LexicalStats | None:
    """N, total length and the query words' (``words``: lexical text) document
    frequencies; None if the project has no statistics row. ``budget_ms`` not
    None (inside a transaction): also what :func:`set_lexical_settings` sets, in
    the same statement."""
    if budget_ms is None:
        rows = await conn.fetch(_TERMS_SQL, project_id, words)
    else:
        rows = await conn.fetch(_TERMS_SETTING_SQL, project_id, words, str(int(budget_ms)))
    if not rows:
        return None
    first = rows[0]
    return LexicalStats(
        docs=int(first["lexical_docs"]),
        length=int(first["lexical_length"]),
        ready=bool(first["lexical_ready"]),
        terms=[TermDf(r["term_id"], r["df"]) for r in rows if r["term_id"] is not None],
    )


@dataclass(frozen=True)
class WeightedTerm:
    term_id: int
    idf: float


# BM25 of the selecting terms over their postings (one index range scan each),
# top $6 candidates; then the other terms' part for those candidates only (point
# lookups of (term, chunk)); then content and similarity of the rows kept.
# The parameters are cast: Postgres would otherwise type them from the integer
# columns they meet (k1 = 1.2 sent as a smallint).
_BM25_PART = (
    "q.idf * p.tf * ($3::float8 + 1) / "
    "(p.tf + $3::float8 * (1 - $4::float8 + $4::float8 * p.dl / $5::float8))"
)


def _similarity_sql(dim: int | None, param: int) -> str:
    """Cosine of chunk ``c`` with the query vector ``$param`` (NULL without one)."""
    if dim:
        return (
            f"CASE WHEN c.embedding IS NULL THEN NULL "
            f"ELSE -(c.embedding::vector({dim}) <#> ${param}::vector({dim})) END"
        )
    return f"CASE WHEN ${param}::vector IS NULL THEN NULL::float8 END"


def bm25_sql(dim: int | None, where: str, filtered: bool) -> str:
    """The BM25 statement of :func:`bm25_hits` without a filter (``filtered``: each
    posting joined to its chunk to test the filter, filters from ``$11``: the
    reference :func:`bm25_postfilter_sql` is exact against, and what it replaced)."""
    similarity = _similarity_sql(dim, 9)
    join = "JOIN chunks c ON c.id = p.chunk_id " if filtered else ""
    return (
        "WITH q AS (SELECT * FROM unnest($1::int[], $2::float8[]) AS q(term_id, idf)), "  # noqa: S608
        "x AS (SELECT * FROM unnest($7::int[], $8::float8[]) AS x(term_id, idf)), "
        f"cand AS (SELECT p.chunk_id, sum({_BM25_PART}) AS score "
        f"FROM q JOIN lexical_postings p ON p.term_id = q.term_id {join}"
        f"WHERE true{where} "
        "GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT $6), "
        + _bm25_rescore_sql(similarity)
    )


def _bm25_rescore_sql(similarity: str) -> str:
    """The end of the BM25 statements of :func:`bm25_hits`: the other terms' part of
    each candidate (``cand``), then content and similarity of the best ``$10``."""
    return (
        # A subquery per candidate, point lookups of (term, chunk), as in
        # bm25_capped_sql (a join read and hashed all their postings).
        "top AS (SELECT cand.chunk_id AS id, cand.score + coalesce((SELECT "  # noqa: S608
        f"sum({_BM25_PART.replace('q.', 'x.')}) FROM x JOIN lexical_postings p "
        "ON p.term_id = x.term_id AND p.chunk_id = cand.chunk_id), 0) AS bm25 FROM cand) "
        f"SELECT c.id, c.path, c.rel_path, c.language, c.start_line, c.end_line, c.symbol, "
        f"c.content, top.bm25, {similarity} AS similarity "
        "FROM top JOIN chunks c ON c.id = top.id ORDER BY top.bm25 DESC, c.id LIMIT $10"
    )


# How many of the best unfiltered candidates a filtered search tests first, per
# candidate it needs: a top-N sort of 10 x 100 costs about what one of 100 does
# (bench: 12.2 vs 12.0 ms p50 at 100k), and a filter passing at least a tenth
# of the candidates then never needs the rest.
POSTFILTER_FACTOR = 10


def postfilter_head(candidates: int) -> int:
    """The unfiltered candidates a filtered BM25 search tests first (``$11``)."""
    return max(int(candidates), 1) * POSTFILTER_FACTOR


def bm25_postfilter_sql(dim: int | None, where: str, by_file_type: bool) -> str:
    """The filtered BM25 statement of :func:`bm25_hits` (``$11``: the head's size;
    ``by_file_type``: ``$12`` the project, ``$13`` the file type, the filters from
    ``$13``; otherwise the filters from ``$12``): exactly the candidates of the join
    in :func:`bm25_sql`, testing the filter on candidates instead of on every posting.

    ``agg``: every chunk's score over the selecting terms (their postings, no
    join). ``head``: the best ``$11`` of those, tested one by one in score order
    (a lateral lookup of the chunk) until ``$6`` pass. ``rest``: only if fewer
    passed, the chunks after the head, tested in order the same way (with a
    file type, only those among the project's chunks of that type: a hash of
    their ids, read from the indexes of migration 0012, so that a type few
    chunks have costs no lookup per candidate). Exact: a
    chunk that passes outside the head ranks below every chunk of the head, so
    the head's survivors, then the rest's, in (score DESC, chunk_id) order, are
    the first ``$6`` the join would keep. Each chunk's terms are added in the
    order of ``q``, as the unfiltered statement adds them; the join's plan may
    add them in another order (a hash join), which can move the last bit of a
    sum and so swap chunks of identical text (the benchmark's copies)."""
    probe = (
        # LATERAL with LIMIT: a lookup per candidate, in the order they come,
        # which the planner can neither flatten into a join nor reorder.
        f"CROSS JOIN LATERAL (SELECT 1 FROM chunks c WHERE c.id = a.chunk_id{where} LIMIT 1) f "  # noqa: S608
    )
    of_type = (
        "AND a.chunk_id IN (SELECT k.id FROM chunks k WHERE k.project_id = $12 "
        "AND (k.extension = $13 OR k.language = $13)) "
        if by_file_type
        else ""
    )
    return (
        "WITH q AS (SELECT * FROM unnest($1::int[], $2::float8[]) AS q(term_id, idf)), "  # noqa: S608
        "x AS (SELECT * FROM unnest($7::int[], $8::float8[]) AS x(term_id, idf)), "
        f"agg AS MATERIALIZED (SELECT p.chunk_id, sum({_BM25_PART}) AS score "
        "FROM q JOIN lexical_postings p ON p.term_id = q.term_id GROUP BY p.chunk_id), "
        "head AS MATERIALIZED (SELECT a.chunk_id, a.score FROM (SELECT * FROM agg "
        f"ORDER BY score DESC, chunk_id LIMIT $11) a {probe}"
        "ORDER BY a.score DESC, a.chunk_id LIMIT $6), "
        # The one-time filter skips the sort of the rest when the head had enough.
        "rest AS (SELECT a.chunk_id, a.score FROM (SELECT * FROM agg "
        f"ORDER BY score DESC, chunk_id OFFSET $11) a {probe}"
        f"WHERE (SELECT count(*) FROM head) < $6 {of_type}"
        "ORDER BY a.score DESC, a.chunk_id LIMIT $6), "
        "cand AS (SELECT * FROM (SELECT * FROM head UNION ALL SELECT * FROM rest) u "
        "ORDER BY score DESC, chunk_id LIMIT $6), " + _bm25_rescore_sql(_similarity_sql(dim, 9))
    )


def bm25_statement(
    dim: int | None, filters: Filters, candidates: int, project_id: str
) -> tuple[str, list[Any]]:
    """The statement of :func:`bm25_hits` and its parameters after ``$10``."""
    by_file_type = bool(filters.file_type)
    project = [project_id] if by_file_type else []
    # filter_sql numbers the file type first: $13 after the project.
    where, fparams = filter_sql(filters, 12 + len(project), alias="c.")
    if not where:
        return bm25_sql(dim, "", False), []
    sql = bm25_postfilter_sql(dim, where, by_file_type)
    return sql, [postfilter_head(candidates), *project, *fparams]


async def bm25_hits(
    conn: asyncpg.Connection,
    *,
    project_id: str,
    select: Sequence[WeightedTerm],
    extra: Sequence[WeightedTerm],
    k1: float,
    b: float,
    avgdl: float,
    candidates: int,
    vector: Sequence[float] | None,
    dim: int | None,
    filters: Filters,
    limit: int,
) -> list[Hit]:
    """The best ``limit`` chunks by BM25: ``select`` terms choose the ``candidates``
    (their postings are read), ``extra`` terms only add to the candidates' scores.
    With ``vector`` (and its ``dim``), each hit's similarity too."""
    sql, more = bm25_statement(dim if vector is not None else None, filters, candidates, project_id)
    rows = await conn.fetch(
        sql,
        [t.term_id for t in select],
        [t.idf for t in select],
        k1,
        b,
        avgdl,
        candidates,
        [t.term_id for t in extra],
        [t.idf for t in extra],
        vector,
        limit,
        *more,
    )
    return [_hit(row) for row in rows]


# A posting's BM25 term-frequency part with k1 = 1.2, b = 0.4 and avgdl = 80: the
# order of the index lexical_postings_impact (migration 0010_search_speed, the
# same text: the planner matches it). Only the order; scores are exact.
POSTING_IMPACT = "(tf::float4 / (tf::float4 + 0.72 + 0.006 * dl::float4))"


def bm25_capped_sql(dim: int | None) -> str:
    """The statement of :func:`bm25_hits_capped`: each term's best ``$7`` postings
    (impact order, index-only), summed per chunk; the ``$6`` best chunks rescored
    exactly over every term (point lookups); content and similarity of the best ``$9``."""
    return (
        "WITH q AS (SELECT * FROM unnest($1::int[], $2::float8[]) AS q(term_id, idf)), "  # noqa: S608
        f"cand AS (SELECT p.chunk_id, sum({_BM25_PART}) AS score FROM q CROSS JOIN LATERAL "
        "(SELECT lp.chunk_id, lp.tf, lp.dl FROM lexical_postings lp "
        f"WHERE lp.term_id = q.term_id ORDER BY {POSTING_IMPACT} DESC LIMIT $7) p "
        "GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT $6), "
        # A subquery per candidate: point lookups of (term, chunk). As a join the
        # planner read every posting of every term and hashed them (21k rows for
        # 100 candidates at 100k chunks, bench/results/search-explain-100k.txt).
        f"top AS (SELECT cand.chunk_id AS id, (SELECT sum({_BM25_PART}) FROM q "
        "JOIN lexical_postings p ON p.term_id = q.term_id AND p.chunk_id = cand.chunk_id) "
        "AS bm25 FROM cand) "
        "SELECT c.id, c.path, c.rel_path, c.language, c.start_line, c.end_line, c.symbol, "
        f"c.content, top.bm25, {_similarity_sql(dim, 8)} AS similarity "
        "FROM top JOIN chunks c ON c.id = top.id ORDER BY top.bm25 DESC, c.id LIMIT $9"
    )


async def bm25_hits_capped(
    conn: asyncpg.Connection,
    *,
    terms: Sequence[WeightedTerm],
    per_term: int,
    k1: float,
    b: float,
    avgdl: float,
    candidates: int,
    vector: Sequence[float] | None,
    dim: int | None,
    limit: int,
) -> list[Hit]:
    """The best ``limit`` chunks by BM25 among the candidates that each term's best
    ``per_term`` postings give (no filters: a filter would drop candidates after
    the cap). Every term whose document frequency is at most ``per_term`` is read
    whole; the scores of the hits are exact."""
    rows = await conn.fetch(
        bm25_capped_sql(dim if vector is not None else None),
        [t.term_id for t in terms],
        [t.idf for t in terms],
        k1,
        b,
        avgdl,
        candidates,
        per_term,
        vector,
        limit,
    )
    return [_hit(row) for row in rows]
