"""Search: HNSW vector search, full-text search over identifiers, and their fusion.

Vector search orders by inner product on normalised vectors (``<#>``, the
cheapest exact ordering for cosine) over a partial HNSW index per dimension;
``hnsw.iterative_scan = relaxed_order`` keeps filtered queries (one project,
one file type, one directory) from returning too few rows. Full-text search
ranks identifier words (``parse_config`` -> ``parse config``) with
``ts_rank_cd``. Hybrid mode fuses the two rankings with reciprocal rank fusion
(RRF, k = 60). Whether hybrid helps is measured in ``eval/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from codebase_mcp.errors import InvalidToolInput, NotFound
from codebase_mcp.server import db
from codebase_mcp.server.chunker import identifier_words

RRF_K = 60
MAX_QUERY_CHARS = 4000
_WORD = re.compile(r"^[a-z0-9]+$")


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
    similarity: float
    score: float = 0.0


def validate_query(query: str, limit: int, max_limit: int) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidToolInput(
            "query is empty", hint="describe the code you are looking for in a few words"
        )
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidToolInput(
            f"query is {len(query)} characters long (at most {MAX_QUERY_CHARS})",
            hint="shorten the query to what the code does",
        )
    if limit <= 0 or limit > max_limit:
        raise InvalidToolInput(
            f"limit must be between 1 and {max_limit}, got {limit}",
            hint="ask for a few results (10 is a good default)",
        )
    return query.strip()


def normalise_file_type(file_type: str | None) -> str | None:
    if file_type is None or not file_type.strip():
        return None
    value = file_type.strip().lower().removeprefix("*").removeprefix(".")
    if not re.fullmatch(r"[a-z0-9_+#-]{1,32}", value):
        raise InvalidToolInput(
            f"file_type {file_type!r} is not an extension or language name",
            hint='use an extension like "py" or a language like "python"',
        )
    return value


def tsquery_text(query: str) -> str:
    """OR of the query's words and identifier parts (natural-language queries rarely
    contain every word of the code they want)."""
    words = [w for w in identifier_words(query).split() if _WORD.match(w) and len(w) > 1]
    return " | ".join(dict.fromkeys(words))


def _filter_sql(filters: Filters, first_param: int) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    n = first_param
    if filters.file_type:
        clauses.append(f"(extension = ${n} OR language = ${n})")
        params.append(filters.file_type)
        n += 1
    if filters.path_prefix:
        clauses.append(f"starts_with(path, ${n})")
        params.append(filters.path_prefix.rstrip("/") + "/")
        n += 1
    if filters.rel_prefix:
        clauses.append(f"starts_with(rel_path, ${n})")
        params.append(filters.rel_prefix.strip("/") + "/")
        n += 1
    return "".join(f" AND {c}" for c in clauses), params


_COLUMNS = "id, path, rel_path, language, start_line, end_line, symbol, content"


def _hit(row: asyncpg.Record) -> Hit:
    return Hit(
        id=row["id"],
        path=row["path"],
        rel_path=row["rel_path"],
        language=row["language"],
        start_line=row["start_line"],
        end_line=row["end_line"],
        symbol=row["symbol"],
        content=row["content"],
        similarity=float(row["similarity"]),
    )


async def vector_search(
    conn: asyncpg.Connection,
    project: db.Project,
    vector: list[float],
    filters: Filters,
    limit: int,
    ef_search: int,
) -> list[Hit]:
    dim = int(project.embedding_dim)
    where, params = _filter_sql(filters, 4)
    sql = (
        f"SELECT {_COLUMNS}, -(embedding::vector({dim}) <#> $1::vector({dim})) AS similarity "  # noqa: S608
        f"FROM chunks WHERE project_id = $2 AND embedding_dim = {dim}{where} "
        f"ORDER BY embedding::vector({dim}) <#> $1::vector({dim}) LIMIT $3"
    )
    async with conn.transaction():
        if dim <= db.MAX_INDEXED_DIMENSION:
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            await conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), limit)}")
        rows = await conn.fetch(sql, vector, project.id, limit, *params)
    hits = [_hit(row) for row in rows]
    # relaxed_order may return a few rows slightly out of order: sort exactly.
    hits.sort(key=lambda h: h.similarity, reverse=True)
    return hits


async def text_search(
    conn: asyncpg.Connection,
    project: db.Project,
    query: str,
    vector: list[float],
    filters: Filters,
    limit: int,
    budget_ms: int = 0,
) -> list[Hit]:
    tsquery = tsquery_text(query)
    if not tsquery:
        return []
    dim = int(project.embedding_dim)
    where, params = _filter_sql(filters, 5)
    sql = (
        f"SELECT {_COLUMNS}, -(embedding::vector({dim}) <#> $1::vector({dim})) AS similarity "  # noqa: S608
        f"FROM chunks, to_tsquery('english', $4) q "
        f"WHERE project_id = $2 AND embedding_dim = {dim} AND tsv @@ q{where} "
        f"ORDER BY ts_rank_cd(tsv, q) DESC, id LIMIT $3"
    )
    try:
        async with conn.transaction():
            if budget_ms:
                # Common words match much of a big project and ts_rank_cd must read
                # every match: past the budget, hybrid degrades to vector-only.
                await conn.execute(f"SET LOCAL statement_timeout = {int(budget_ms)}")
            rows = await conn.fetch(sql, vector, project.id, limit, tsquery, *params)
    except asyncpg.QueryCanceledError:
        return []
    return [_hit(row) for row in rows]


def fuse(rankings: list[list[Hit]], limit: int, k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (k + rank)."""
    by_id: dict[int, Hit] = {}
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            by_id.setdefault(hit.id, hit)
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank)
    ordered = sorted(scores, key=lambda i: (-scores[i], -by_id[i].similarity))
    fused = []
    for hit_id in ordered[:limit]:
        hit = by_id[hit_id]
        hit.score = round(scores[hit_id], 6)
        fused.append(hit)
    return fused


async def search(
    conn: asyncpg.Connection,
    project_id: str,
    query: str,
    vector: list[float],
    filters: Filters,
    limit: int,
    *,
    mode: Literal["vector", "hybrid"],
    ef_search: int,
    expected_model: str,
    text_budget_ms: int = 0,
) -> list[Hit]:
    project = await db.get_project(conn, project_id)
    if project is None:
        raise NotFound(
            f"no project {project_id!r}",
            hint="index a repository first with start_indexing_background, or see list_projects()",
        )
    if project.embedding_model != expected_model or project.embedding_dim != len(vector):
        raise db.model_mismatch(project, expected_model, len(vector))
    if mode == "vector":
        hits = await vector_search(conn, project, vector, filters, limit, ef_search)
        for hit in hits:
            hit.score = round(hit.similarity, 6)
        return hits
    depth = max(limit * 3, 30)
    semantic = await vector_search(conn, project, vector, filters, depth, ef_search)
    lexical = await text_search(conn, project, query, vector, filters, depth, text_budget_ms)
    return fuse([semantic, lexical], limit)
