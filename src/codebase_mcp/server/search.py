"""Search: HNSW vector search, BM25 over identifier words, and their fusion.

Vector search orders by inner product on normalised vectors (``<#>``, the
cheapest exact ordering for cosine) over a partial HNSW index per dimension;
``hnsw.iterative_scan = relaxed_order`` keeps filtered queries (one project,
one file type, one directory) from returning too few rows. Only chunks that
already have a vector take part: a project is searchable while it embeds.

Lexical search is BM25 computed in SQL from the statistics the indexer keeps
per project (``lexical_terms``: document frequency per term; ``project_stats``:
N and the total length; ``lexical_postings``: term frequency and chunk length
per term and chunk, one index range scan per term). A query term's postings
are read only if the rarest terms so far fit ``max_cost`` postings; the
commoner terms (low idf) still add their part to the candidates those select,
by point lookups. Hybrid mode fuses the two rankings (:func:`fuse`): weighted
reciprocal rank fusion by default, chosen on the eval (``eval/``).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from codebase_mcp.errors import CodebaseMcpError, InvalidToolInput, NotFound
from codebase_mcp.server import db
from codebase_mcp.server.chunker import lexical_text
from codebase_mcp.server.db import Filters, Hit
from codebase_mcp.server.embeddings import Embedder

__all__ = ["Filters", "Hit"]  # defined in db (its rows), used from here

SEARCH_MODES = ("vector", "lexical", "hybrid")
SearchMode = Literal["vector", "lexical", "hybrid"]
RRF_K = 60
MAX_QUERY_CHARS = 4000


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


def query_text(query: str) -> str:
    """The query as the lexical index sees a chunk (identifier words and parts)."""
    return lexical_text("", None, query)


class TermStatsCache:
    """Kept for callers that pass one; BM25 reads exact per-project statistics
    from ``lexical_terms`` and ``project_stats`` with each query (one indexed
    lookup), so there is nothing to cache any more."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl


@dataclass(frozen=True)
class Bm25:
    k1: float = 1.2
    b: float = 0.4


@dataclass(frozen=True)
class QueryTerm:
    term_id: int
    df: int
    idf: float


@dataclass(frozen=True)
class LexicalPlan:
    """Which terms select the candidates (their postings are read) and which only
    add to the candidates' scores (point lookups)."""

    select: list[QueryTerm]
    extra: list[QueryTerm]

    @property
    def cost(self) -> int:
        return sum(t.df for t in self.select)


def idf(docs: int, df: int) -> float:
    """BM25's idf (the Lucene form, never negative)."""
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


def plan_lexical(terms: Sequence[tuple[int, int]], docs: int, max_cost: int) -> LexicalPlan | None:
    """``terms``: (term_id, df) of the query's terms found in the project. The
    rarest terms whose postings add up to at most ``max_cost`` select (always at
    least the rarest one); the others only add to the candidates' scores.
    ``max_cost`` <= 0: every term selects."""
    ordered = sorted(
        (QueryTerm(tid, df, idf(docs, df)) for tid, df in terms if df > 0),
        key=lambda t: (t.df, t.term_id),
    )
    if not ordered:
        return None
    chosen: list[QueryTerm] = []
    total = 0
    for term in ordered:
        if chosen and max_cost > 0 and total + term.df > max_cost:
            break
        chosen.append(term)
        total += term.df
    return LexicalPlan(chosen, ordered[len(chosen) :])


async def vector_search(
    conn: asyncpg.Connection,
    project: db.Project,
    vector: list[float],
    filters: Filters,
    limit: int,
    ef_search: int,
) -> list[Hit]:
    hits = await db.vector_hits(conn, project, vector, filters, limit, ef_search)
    # relaxed_order may return a few rows slightly out of order: sort exactly.
    hits.sort(key=lambda h: h.similarity, reverse=True)
    return hits


LexicalStatus = Literal["ranked", "no_words", "no_match", "over_budget", "not_indexed"]


@dataclass
class TextResult:
    hits: list[Hit]
    status: LexicalStatus
    plan: LexicalPlan | None = None


async def text_search(
    conn: asyncpg.Connection,
    project: db.Project,
    query: str,
    vector: list[float] | None,
    filters: Filters,
    limit: int,
    budget_ms: int = 0,
    *,
    max_cost: int = 0,
    term_stats: TermStatsCache | None = None,
    bm25: Bm25 | None = None,
    per_term: int = 0,
) -> TextResult:
    """BM25 over the project's lexical index (see the module's docstring).

    ``per_term`` > 0 and no filter: each query term's ``per_term`` best postings
    (impact order) give the candidates, rescored exactly over every term; otherwise
    the rarest terms within ``max_cost`` postings select, the others add."""
    words = query_text(query)
    if not words:
        return TextResult([], "no_words")
    params = bm25 or Bm25()
    try:
        async with conn.transaction():
            # A plan made for these arrays, and the budget, past which hybrid
            # answers from vectors alone.
            stats = await db.lexical_stats(conn, project.id, words, budget_ms=budget_ms)
            if stats is None or not stats.ready:
                return TextResult([], "not_indexed")
            docs, length = stats.docs, stats.length
            capped = per_term > 0 and filters == Filters()
            found = [(t.term_id, t.df) for t in stats.terms]
            plan = plan_lexical(found, docs, 0 if capped else max_cost)
            if plan is None or not docs:
                return TextResult([], "no_match")
            if capped:
                hits = await db.bm25_hits_capped(
                    conn,
                    terms=[db.WeightedTerm(t.term_id, t.idf) for t in plan.select],
                    per_term=per_term,
                    k1=params.k1,
                    b=params.b,
                    avgdl=max(length / docs, 1.0),
                    candidates=max(limit * 3, 100),
                    vector=vector,
                    dim=int(project.embedding_dim) if vector is not None else None,
                    limit=limit,
                )
                return TextResult(hits, "ranked", plan)
            hits = await db.bm25_hits(
                conn,
                project_id=project.id,
                select=[db.WeightedTerm(t.term_id, t.idf) for t in plan.select],
                extra=[db.WeightedTerm(t.term_id, t.idf) for t in plan.extra],
                k1=params.k1,
                b=params.b,
                avgdl=max(length / docs, 1.0),
                candidates=max(limit * 3, 100),
                vector=vector,
                dim=int(project.embedding_dim) if vector is not None else None,
                filters=filters,
                limit=limit,
            )
    except asyncpg.QueryCanceledError:
        return TextResult([], "over_budget")
    return TextResult(hits, "ranked", plan)


# --- fusion ----------------------------------------------------------------------
@dataclass(frozen=True)
class Fusion:
    """How hybrid search merges its halves. ``rrf``: sum of weight / (k + rank)
    (semantic weight ``weight``, lexical ``1 - weight``); ``convex``: ``weight`` x
    cosine + (1 - weight) x BM25 normalised by the query's best BM25."""

    method: Literal["rrf", "convex"] = "rrf"
    k: int = 30
    weight: float = 0.7


def fuse(
    rankings: list[list[Hit]],
    limit: int,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = sum over rankings of w / (k + rank)."""
    by_id: dict[int, Hit] = {}
    scores: dict[int, float] = {}
    for index, ranking in enumerate(rankings):
        w = weights[index] if weights else 1.0
        for rank, hit in enumerate(ranking, start=1):
            kept = by_id.setdefault(hit.id, hit)
            if hit.bm25 is not None:
                kept.bm25 = hit.bm25
            scores[hit.id] = scores.get(hit.id, 0.0) + w / (k + rank)
    return _ordered(by_id, scores, limit)


def fuse_convex(semantic: list[Hit], lexical: list[Hit], limit: int, weight: float) -> list[Hit]:
    """weight x cosine + (1 - weight) x BM25 / best BM25 (a hit the lexical half did
    not return counts 0 there; one without a vector counts 0 on the other side)."""
    by_id: dict[int, Hit] = {}
    for hit in semantic:
        by_id.setdefault(hit.id, hit)
    for hit in lexical:
        kept = by_id.setdefault(hit.id, hit)
        kept.bm25 = hit.bm25
    best = max((h.bm25 or 0.0 for h in lexical), default=0.0) or 1.0
    scores = {
        i: weight * (h.similarity if h.embedded else 0.0) + (1 - weight) * (h.bm25 or 0.0) / best
        for i, h in by_id.items()
    }
    return _ordered(by_id, scores, limit)


def _ordered(by_id: dict[int, Hit], scores: dict[int, float], limit: int) -> list[Hit]:
    ordered = sorted(scores, key=lambda i: (-scores[i], -by_id[i].similarity, i))
    fused = []
    for hit_id in ordered[:limit]:
        hit = by_id[hit_id]
        hit.score = round(scores[hit_id], 6)
        fused.append(hit)
    return fused


def fuse_hybrid(semantic: list[Hit], lexical: list[Hit], limit: int, fusion: Fusion) -> list[Hit]:
    if fusion.method == "convex":
        return fuse_convex(semantic, lexical, limit, fusion.weight)
    return fuse([semantic, lexical], limit, fusion.k, (fusion.weight, 1.0 - fusion.weight))


# --- the query's vector, within a time limit ----------------------------------------
@dataclass(frozen=True)
class QueryVector:
    vector: list[float] | None
    # Why there is none: "embedder_timeout" or "embedder_error" (with ``detail``).
    reason: str | None = None
    detail: str | None = None
    ms: float = 0.0


class QueryVectors:
    """The vectors of the last ``size`` query texts (least recently used out).

    An agent asks the same thing again (a retry, a sub-agent, the same question
    after an edit); the query's vector is the costliest part of a search on a
    small machine (~12 core-ms of the embedder's CPU, bench/results/
    search-load-cpu.json), and the same text under the same model always gives
    the same vector. Kept per process, as float64 arrays (3 kB per 384-dimension
    vector); ``size`` 0 keeps none.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], array[float]] = OrderedDict()

    def get(self, model: str, text: str) -> list[float] | None:
        key = (model, text)
        found = self._vectors.get(key)
        if found is None:
            return None
        self._vectors.move_to_end(key)
        return found.tolist()

    def put(self, model: str, text: str, vector: Sequence[float]) -> None:
        if self.size <= 0:
            return
        self._vectors[(model, text)] = array("d", vector)
        self._vectors.move_to_end((model, text))
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)


async def embed_query_within(
    embedder: Embedder, text: str, timeout: float, cache: QueryVectors | None = None
) -> QueryVector:
    """Embed the query, giving up after ``timeout`` seconds (0: wait as long as it
    takes) or when the embedder fails: the search then answers from the lexical
    index and says why. A text in ``cache`` is not embedded again."""
    started = time.perf_counter()
    if cache is not None and (known := cache.get(embedder.model, text)) is not None:
        return QueryVector(known, ms=round((time.perf_counter() - started) * 1000, 2))
    try:
        if timeout > 0:
            vector = await asyncio.wait_for(embedder.embed_query(text), timeout)
        else:
            vector = await embedder.embed_query(text)
    except TimeoutError:
        return QueryVector(
            None,
            "embedder_timeout",
            f"the embedder did not answer within {timeout:g} s",
            round((time.perf_counter() - started) * 1000, 2),
        )
    except CodebaseMcpError as exc:
        return QueryVector(
            None, "embedder_error", exc.message, round((time.perf_counter() - started) * 1000, 2)
        )
    if cache is not None:
        cache.put(embedder.model, text, vector)
    return QueryVector(vector, ms=round((time.perf_counter() - started) * 1000, 2))


# --- one search --------------------------------------------------------------------
@dataclass
class SearchResult:
    hits: list[Hit]
    # Hybrid and lexical modes: what the lexical half did ("ranked", or why it
    # added nothing). None in vector mode.
    lexical: LexicalStatus | None = None
    semantic_coverage: float = 1.0  # chunks of the project with a vector / all chunks
    mode: str = "hybrid"  # what actually ran
    # Why the answer comes from the lexical index alone (None: it does not), e.g.
    # "embedder_timeout: the embedder did not answer within 2 s".
    fallback: str | None = None

    @property
    def lexical_only(self) -> bool:
        return self.mode == "lexical"

    def extra_fields(self) -> dict[str, Any]:
        """What a tool answer should add to the hits."""
        out: dict[str, Any] = {
            "semantic_coverage": self.semantic_coverage,
            "lexical_only": self.lexical_only,
        }
        if self.fallback:
            out["fallback"] = self.fallback
        return out


async def search(
    conn: asyncpg.Connection,
    project_id: str,
    query: str,
    vector: list[float] | None,
    filters: Filters,
    limit: int,
    *,
    mode: SearchMode,
    ef_search: int,
    expected_model: str,
    text_budget_ms: int = 0,
    text_max_cost: int = 0,
    term_stats: TermStatsCache | None = None,
    settings: Any = None,
    vector_unavailable: str | None = None,
) -> SearchResult:
    """Vector, lexical or hybrid search.

    ``vector`` None (the embedder was too slow or down, ``vector_unavailable``
    says why): lexical search alone, and the answer says so. A project still
    embedding (``semantic_coverage`` < 1) is searched in hybrid mode even when
    vector mode is configured, so its chunks without a vector can be found.
    ``settings`` (ServerSettings) gives the fusion and BM25 parameters.
    """
    target = await db.search_target(conn, project_id)
    if target is None:
        raise NotFound(
            f"no project {project_id!r}",
            hint="index a repository first with start_indexing_background, or see list_projects()",
        )
    project, stats = target.project, target.stats
    if project.embedding_model != expected_model or (
        vector is not None and project.embedding_dim != len(vector)
    ):
        raise db.model_mismatch(project, expected_model, len(vector) if vector else None)
    coverage = stats.semantic_coverage
    fusion = fusion_from(settings)
    bm25 = bm25_from(settings)
    fallback = None
    if vector is None:
        mode, fallback = "lexical", vector_unavailable or "no query vector"
    elif mode == "vector" and coverage < 1.0:
        mode = "hybrid"
    if mode == "vector":
        assert vector is not None
        hits = await vector_search(conn, project, vector, filters, limit, ef_search)
        for hit in hits:
            hit.score = round(hit.similarity, 6)
        return SearchResult(hits, None, coverage, "vector")
    depth = max(limit * 3, 30)
    # The budget (past it: vectors alone) only while vectors cover the project:
    # otherwise the lexical half is the only way to the chunks without one.
    budget = text_budget_ms if mode == "hybrid" and coverage >= 1.0 else 0
    lexical = await text_search(
        conn,
        project,
        query,
        vector,
        filters,
        depth if mode == "hybrid" else limit,
        budget,
        max_cost=text_max_cost,
        term_stats=term_stats,
        bm25=bm25,
        per_term=int(getattr(settings, "text_search_per_term", 0)) if settings else 0,
    )
    if mode == "lexical":
        for hit in lexical.hits:
            hit.score = round(hit.bm25 or 0.0, 6)
        return SearchResult(lexical.hits[:limit], lexical.status, coverage, "lexical", fallback)
    assert vector is not None
    semantic = (
        await vector_search(conn, project, vector, filters, depth, ef_search)
        if stats.embedded
        else []
    )
    hits = fuse_hybrid(semantic, lexical.hits, limit, fusion)
    return SearchResult(hits, lexical.status, coverage, "hybrid")


def fusion_from(settings: Any) -> Fusion:
    if settings is None:
        return Fusion()
    return Fusion(
        method=getattr(settings, "fusion", "rrf"),
        k=int(getattr(settings, "rrf_k", 30)),
        weight=float(getattr(settings, "fusion_weight", 0.7)),
    )


def bm25_from(settings: Any) -> Bm25:
    if settings is None:
        return Bm25()
    return Bm25(
        k1=float(getattr(settings, "bm25_k1", 1.2)), b=float(getattr(settings, "bm25_b", 0.4))
    )
