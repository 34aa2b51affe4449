"""The full-text query planner (which words select the chunks to rank) and the
bulk-load decision of the indexer: pure functions, no database."""

from __future__ import annotations

import pytest

from codebase_mcp.server.indexer import BulkLoad, should_defer_index
from codebase_mcp.server.search import VISIT_COST, TermStats, plan_text_query, query_words

# 100k chunks in the table; project "big" holds 90 % of them, "small" 10 %.
STATS = TermStats(
    rows=100_000,
    freqs={"self": 0.60, "implement": 0.06, "config": 0.04, "pars": 0.01, "json": 0.02},
    shares={"big": 0.9, "small": 0.1},
)


def test_query_words_split_identifiers_and_drop_noise() -> None:
    assert query_words("where is parseConfig?") == ["where", "is", "parseconfig", "parse", "config"]
    assert query_words("a ! _") == []


def test_estimates_come_from_the_statistics_and_unknown_words_are_rare() -> None:
    assert STATS.estimate("json") == pytest.approx(2_000)
    # Not in the most-common list: half the smallest listed frequency.
    assert STATS.estimate("presort") == pytest.approx(500)
    # Ranking a chunk of this project costs 1; visiting another project's chunk less.
    assert STATS.cost("json", "big") == pytest.approx(2_000 * (VISIT_COST + 0.9))
    assert STATS.cost("json", "tiny") == pytest.approx(2_000 * VISIT_COST)


def test_every_word_when_they_fit() -> None:
    plan = plan_text_query(["pars", "json"], STATS, "small", 2_000)
    assert plan is not None and plan.kind == "any"
    assert plan.match == plan.rank == "'pars' | 'json'"  # rarest first


def test_common_words_only_rank_the_rare_words_matches() -> None:
    plan = plan_text_query(["self", "implement", "presort", "pars"], STATS, "big", 2_000)
    assert plan is not None and plan.kind == "rarest"
    assert plan.match == "'presort' | 'pars'"
    assert plan.rank == "'presort' | 'pars' | 'implement' | 'self'"
    assert plan.cost <= 2_000


def test_a_small_project_in_a_big_table_may_rank_more_words() -> None:
    words = ["implement", "pars", "json"]
    big = plan_text_query(words, STATS, "big", 2_000)
    small = plan_text_query(words, STATS, "small", 2_000)
    assert big is not None and big.match == "'pars'"
    assert small is not None and small.match == "'pars' | 'json'"


def test_only_common_words_need_all_of_them_or_nothing() -> None:
    plan = plan_text_query(["implement", "config"], STATS, "big", 2_000)
    assert plan is not None and plan.kind == "all"
    assert plan.match == "'config' & 'implement'"
    # 100k * 0.6 * 0.06 = 3,600 chunks hold both: nothing narrows the search down.
    assert plan_text_query(["self", "implement"], STATS, "big", 2_000) is None
    assert plan_text_query(["self"], STATS, "big", 2_000) is None


def test_no_cap_or_no_statistics_is_the_plain_or() -> None:
    words = ["self", "implement", "pars"]
    uncapped = plan_text_query(words, STATS, "big", 0)
    assert uncapped is not None and uncapped.kind == "any"
    assert uncapped.match == "'pars' | 'implement' | 'self'"
    never_analysed = plan_text_query(words, TermStats(), "big", 2_000)
    assert never_analysed is not None and never_analysed.match == "'self' | 'implement' | 'pars'"
    assert plan_text_query([], STATS, "big", 2_000) is None


def test_lexemes_are_quoted_for_tsquery() -> None:
    plan = plan_text_query(["it's", "a\\b"], TermStats(), "p", 0)
    assert plan is not None and plan.match == "'it''s' | 'a\\\\b'"


def test_remaining_chunks_extrapolate_from_the_bytes_per_chunk_seen() -> None:
    bulk = BulkLoad(first_index=True, total_bytes=1_000_000, bytes_prepared=100_000)
    assert bulk.remaining_chunks(written=0) == 0  # nothing chunked yet: no guess
    bulk.chunks_prepared = 125  # 800 bytes per chunk
    # 900 kB unread -> 1,125 chunks, plus the 25 prepared but not written yet.
    assert bulk.remaining_chunks(written=100) == 1_150


def decide(**overrides: object) -> bool:
    args: dict[str, object] = {
        "min_chunks": 5_000,
        "first_index": True,
        "remaining_chunks": 20_000,
        "other_rows": 0,
        "embed_s_per_chunk": 0.0002,
        "write_s_per_chunk": 0.0025,
    }
    args.update(overrides)
    return should_defer_index(**args)  # type: ignore[arg-type]


def test_defer_the_index_only_for_a_big_write_bound_first_index() -> None:
    assert decide()
    assert not decide(min_chunks=0)  # switched off
    assert not decide(first_index=False)  # an update: the index stays live
    assert not decide(remaining_chunks=4_000)  # small: live inserts take seconds
    # A CPU embedder (4 chunks/s): writes are not the bottleneck.
    assert not decide(embed_s_per_chunk=0.25)
    # Other projects' rows: deferring only when this load is at least as big.
    assert decide(other_rows=20_000)
    assert not decide(other_rows=20_001)
