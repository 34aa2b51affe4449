"""Search: HNSW vector search, full-text search over identifiers, and their fusion.

Vector search orders by inner product on normalised vectors (``<#>``, the
cheapest exact ordering for cosine) over a partial HNSW index per dimension;
``hnsw.iterative_scan = relaxed_order`` keeps filtered queries (one project,
one file type, one directory) from returning too few rows. Full-text search
ranks identifier words (``parse_config`` -> ``parse config``) with
``ts_rank_cd``. Hybrid mode fuses the two rankings with reciprocal rank fusion
(RRF, k = 60). Whether hybrid helps is measured in ``eval/``.

Full-text cost is the number of chunks ranked: ``ts_rank_cd`` reads each
match, and a common word (*self*, *config*, *implement*) matches a large part
of a code base. So the query is planned first (:func:`plan_text_query`): the
words are sorted by how many chunks contain them (Postgres' own statistics,
:class:`TermStats`) and only the rarest ones, up to an estimated
``max_cost`` chunks, select the rows; every word still counts in their rank.
The ranking reads ids only; content and similarity are read for the rows kept.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


def query_words(query: str) -> list[str]:
    """The query's words and identifier parts (``parseConfig`` -> parseconfig parse config)."""
    words = [w for w in identifier_words(query).split() if _WORD.match(w) and len(w) > 1]
    return list(dict.fromkeys(words))


def tsquery_text(query: str) -> str:
    """OR of the query's words and identifier parts (natural-language queries rarely
    contain every word of the code they want)."""
    return " | ".join(query_words(query))


# --- planning the full-text query ------------------------------------------------
# What reading a matching chunk of ANOTHER project costs, relative to ranking one
# of this project (a heap visit, ~2 us, vs ts_rank_cd, ~8 us, measured): the GIN
# index is over all projects, the project filter comes after.
VISIT_COST = 0.25


@dataclass(frozen=True)
class TermStats:
    """How common lexemes and projects are in ``chunks``, from ANALYZE's statistics.

    ``freqs`` is Postgres' most-common-elements list of ``tsv`` (the ~1,000
    commonest lexemes and the fraction of rows holding each); a lexeme missing
    from it is rarer than all of them and is given half the smallest listed
    frequency, as the planner does. ``shares``: the fraction of rows of each
    common project. Before the first ANALYZE there are no lists: every word
    counts as rare and the query is the plain OR of all words.
    """

    rows: float = 0.0
    freqs: Mapping[str, float] = field(default_factory=dict)
    shares: Mapping[str, float] = field(default_factory=dict)

    @functools.cached_property
    def floor(self) -> float:
        return min(self.freqs.values()) / 2 if self.freqs else 0.0

    def estimate(self, lexeme: str) -> float:
        """Estimated number of chunks (all projects) containing ``lexeme``."""
        return self.freqs.get(lexeme, self.floor) * self.rows

    def cost(self, lexeme: str, project_id: str) -> float:
        """Work to match ``lexeme`` in one project, in chunks ranked."""
        return self.estimate(lexeme) * (VISIT_COST + self.shares.get(project_id, 0.0))


@dataclass(frozen=True)
class TextPlan:
    """A full-text query: ``match`` selects the chunks, ``rank`` orders them."""

    match: str  # tsquery text
    rank: str  # tsquery text: every query word
    kind: Literal["any", "rarest", "all"]
    cost: float  # estimated, in chunks ranked


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def plan_text_query(
    lexemes: Sequence[str], stats: TermStats, project_id: str, max_cost: int
) -> TextPlan | None:
    """Choose the words that select the chunks to rank, so that about ``max_cost``
    chunks at most are ranked (reading and ranking them is what costs).

    - "any": every word fits, the OR of all of them (small projects, rare words);
    - "rarest": the OR of the rarest words that fit. A chunk holding only common
      words (*self*, *config*, *implement*) would rank low anyway; every word
      still counts in the rank of the chunks selected;
    - "all": even the rarest word is too common: chunks holding every word, if
      they are estimated to fit (independence is optimistic for words that go
      together; the time budget still bounds a bad estimate);
    - None: nothing fits, the words do not narrow the search down, and hybrid
      search uses the vector ranking alone.
    ``max_cost`` <= 0 disables the cap ("any").
    """
    unique = list(dict.fromkeys(lexemes))
    if not unique:
        return None
    ordered = sorted(unique, key=stats.estimate)  # stable: ties keep the given order
    rank = " | ".join(map(_quote, ordered))
    chosen: list[str] = []
    total = 0.0
    for lexeme in ordered:
        cost = stats.cost(lexeme, project_id)
        if max_cost > 0 and total + cost > max_cost:
            break
        chosen.append(lexeme)
        total += cost
    if len(chosen) == len(ordered):
        return TextPlan(rank, rank, "any", total)
    if chosen:
        return TextPlan(" | ".join(map(_quote, chosen)), rank, "rarest", total)
    if len(ordered) > 1:
        share = 1.0
        for lexeme in ordered:
            share *= stats.estimate(lexeme) / stats.rows
        cost = stats.rows * share * (VISIT_COST + stats.shares.get(project_id, 0.0))
        if cost <= max_cost:
            return TextPlan(" & ".join(map(_quote, ordered)), rank, "all", cost)
    return None


_TERM_STATS_SQL = """
SELECT c.reltuples::float8 AS rows,
       t.most_common_elems::text::text[] AS lexemes,
       t.most_common_elem_freqs::float8[] AS lexeme_freqs,
       p.most_common_vals::text::text[] AS projects,
       p.most_common_freqs::float8[] AS project_freqs
FROM pg_class c
LEFT JOIN pg_stats t
       ON t.schemaname = current_schema() AND t.tablename = 'chunks' AND t.attname = 'tsv'
LEFT JOIN pg_stats p
       ON p.schemaname = current_schema() AND p.tablename = 'chunks' AND p.attname = 'project_id'
WHERE c.oid = 'chunks'::regclass
"""


async def fetch_term_stats(conn: asyncpg.Connection) -> TermStats:
    row = await conn.fetchrow(_TERM_STATS_SQL)
    if row is None:
        return TermStats()
    lexemes = row["lexemes"] or []
    projects = row["projects"] or []
    # The element frequencies end with extra entries (min, max): pair by position.
    freqs = dict(zip(lexemes, (row["lexeme_freqs"] or [])[: len(lexemes)], strict=True))
    shares = dict(zip(projects, (row["project_freqs"] or [])[: len(projects)], strict=True))
    return TermStats(rows=max(float(row["rows"]), 0.0), freqs=freqs, shares=shares)


class TermStatsCache:
    """Statistics fetched at most every ``ttl`` seconds (they change with ANALYZE).

    Reading them costs a few milliseconds (1,000 lexemes through ``pg_stats``):
    too much to pay on every query of a 50 ms budget. ``ttl`` 0 reads every time.
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._stats: TermStats | None = None
        self._fetched = 0.0

    async def get(self, conn: asyncpg.Connection) -> TermStats:
        now = time.monotonic()
        if self._stats is None or self.ttl <= 0 or now - self._fetched > self.ttl:
            self._stats = await fetch_term_stats(conn)
            self._fetched = now
        return self._stats


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
            # Both settings in one round trip (SET LOCAL = set_config(..., true)).
            await conn.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', $1, true)",
                str(max(int(ef_search), limit)),
            )
        rows = await conn.fetch(sql, vector, project.id, limit, *params)
    hits = [_hit(row) for row in rows]
    # relaxed_order may return a few rows slightly out of order: sort exactly.
    hits.sort(key=lambda h: h.similarity, reverse=True)
    return hits


LexicalStatus = Literal["ranked", "no_words", "too_common", "over_budget"]


@dataclass
class TextResult:
    hits: list[Hit]
    status: LexicalStatus
    plan: TextPlan | None = None


async def text_search(
    conn: asyncpg.Connection,
    project: db.Project,
    query: str,
    vector: list[float],
    filters: Filters,
    limit: int,
    budget_ms: int = 0,
    *,
    max_cost: int = 0,
    term_stats: TermStatsCache | None = None,
) -> TextResult:
    words = query_words(query)
    if not words:
        return TextResult([], "no_words")
    dim = int(project.embedding_dim)
    try:
        async with conn.transaction():
            # The query's lexemes (stemmed as the index is) and, in the same round
            # trip, settings for the ranking statement (SET LOCAL = set_config(...,
            # true)): its budget, past which hybrid degrades to vector-only; and a
            # plan made for its words. The generic plan a prepared statement
            # falls back to ANDs the GIN matches with a bitmap of every row of
            # the project (100k rows: p50 26 -> 18 ms, measured).
            budget = ", set_config('statement_timeout', $2, true)" if budget_ms else ""
            lexemes: list[str] = await conn.fetchval(
                "SELECT coalesce(array_agg(lexeme), '{}'), "  # noqa: S608 - fixed text
                f"set_config('plan_cache_mode', 'force_custom_plan', true){budget} "
                "FROM unnest(to_tsvector('english', $1))",
                " ".join(words),
                *([str(int(budget_ms))] if budget_ms else []),
            )
            stats = await (term_stats or TermStatsCache(ttl=0)).get(conn) if max_cost > 0 else None
            plan = plan_text_query(lexemes, stats or TermStats(), project.id, max_cost)
            if plan is None:
                return TextResult([], "too_common" if lexemes else "no_words")
            where, params = _filter_sql(filters, 6)
            # Rank ids only (narrow rows), then read content and similarity for
            # the few rows kept: computing similarity for every match meant
            # reading every match's vector out of TOAST.
            sql = (
                "WITH top AS ("  # noqa: S608 - only the integer dimension is interpolated
                "SELECT id, ts_rank_cd(tsv, $5::text::tsquery) AS rank FROM chunks "
                f"WHERE project_id = $2 AND embedding_dim = {dim} "
                f"AND tsv @@ $4::text::tsquery{where} "
                "ORDER BY rank DESC, id LIMIT $3) "
                f"SELECT {_COLUMNS}, -(embedding::vector({dim}) <#> $1::vector({dim})) "
                "AS similarity FROM top JOIN chunks USING (id) ORDER BY top.rank DESC, id"
            )
            rows = await conn.fetch(sql, vector, project.id, limit, plan.match, plan.rank, *params)
    except asyncpg.QueryCanceledError:
        return TextResult([], "over_budget")
    return TextResult([_hit(row) for row in rows], "ranked", plan)


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


@dataclass
class SearchResult:
    hits: list[Hit]
    # Hybrid mode: what the full-text half did ("ranked", or why it added
    # nothing: "no_words", "too_common", "over_budget"). None in vector mode.
    lexical: LexicalStatus | None = None


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
    text_max_cost: int = 0,
    term_stats: TermStatsCache | None = None,
) -> SearchResult:
    """Vector or hybrid search.

    The two halves of hybrid search run one after the other on one connection.
    Running them at once on two was measured: no faster at 100k chunks on the
    2-core test VM (p50 36 vs 39 ms, p95 66 vs 67 ms, load ~4.5), slower on a
    small project next to a CPU-bound embedder (388 chunks: p50 17.5 vs 15.5 ms,
    p90 31 vs 23 ms).
    """
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
        return SearchResult(hits)
    depth = max(limit * 3, 30)
    semantic = await vector_search(conn, project, vector, filters, depth, ef_search)
    lexical = await text_search(
        conn,
        project,
        query,
        vector,
        filters,
        depth,
        text_budget_ms,
        max_cost=text_max_cost,
        term_stats=term_stats,
    )
    return SearchResult(fuse([semantic, lexical.hits], limit), lexical.status)
