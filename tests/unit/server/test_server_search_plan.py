"""The lexical query planner (which terms select the chunks to rank), the words indexed,
the embedding order, and the
bulk-load decision of the indexer: pure functions, no database."""

from __future__ import annotations

from codebase_mcp.server.chunker import lexical_text, lexical_words
from codebase_mcp.server.indexer import BulkLoad, embed_rank, should_defer_index
from codebase_mcp.server.search import idf, plan_lexical, query_text


def test_rarest_terms_select_and_common_ones_only_add() -> None:
    # (term_id, df) in a project of 10,000 chunks; a cap of 1,000 postings.
    plan = plan_lexical([(1, 6_000), (2, 40), (3, 900), (4, 300)], 10_000, 1_000)
    assert plan is not None
    assert [t.term_id for t in plan.select] == [2, 4]  # 40 + 300 fit, + 900 does not
    assert [t.term_id for t in plan.extra] == [3, 1]
    assert plan.cost == 340
    # Rarer terms weigh more; idf is never negative, even in every chunk.
    idfs = {t.term_id: t.idf for t in plan.select + plan.extra}
    assert idfs[2] > idfs[4] > idfs[3] > idfs[1] > 0
    assert idf(10_000, 10_000) > 0


def test_the_rarest_term_always_selects_and_no_cap_takes_all() -> None:
    plan = plan_lexical([(1, 6_000), (2, 5_000)], 10_000, 1_000)
    assert plan is not None and [t.term_id for t in plan.select] == [2]
    uncapped = plan_lexical([(1, 6_000), (2, 5_000)], 10_000, 0)
    assert uncapped is not None and len(uncapped.select) == 2 and not uncapped.extra
    assert plan_lexical([], 10_000, 1_000) is None
    assert plan_lexical([(1, 0)], 10_000, 1_000) is None  # every chunk of it removed


def test_lexical_words_split_identifiers_keep_them_whole_and_drop_noise() -> None:
    assert lexical_words("def parse_config(self, HTTPServer, x, v2):") == [
        "parseconfig", "parse", "config", "httpserver", "http", "server"
    ]  # fmt: skip
    assert lexical_words("return None") == []
    text = lexical_text("src/web_app/routing.py", "Router.add_route", "x = 1")
    assert text.split() == [
        "src", "web", "app", "routing", "py", "router", "addroute", "add", "route"
    ]  # fmt: skip
    # A query goes through the same words: an identifier finds itself.
    assert query_text("where is parseConfig?") == "where is parseconfig parse config"


def test_embedding_order_puts_source_first_and_tests_last() -> None:
    assert embed_rank("src/click/core.py", "python") == 0
    assert embed_rank("docs/usage.md", "markdown") == 1
    assert embed_rank("README", None) == 1
    for path in (
        "tests/test_core.py",
        "src/test_utils.py",
        "cmd/root_test.go",
        "spec/a.spec.ts",
        "examples/demo.py",
        "pkg/testdata/x.go",
        "conftest.py",
    ):
        assert embed_rank(path, "python") == 2, path  # fmt: skip


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


def test_the_impact_index_and_the_capped_statement_use_one_expression() -> None:
    # The planner uses lexical_postings_impact only for the very expression it was
    # built on: the migration's text and the statement's must stay the same.
    import importlib.util
    from pathlib import Path

    from codebase_mcp.server import db

    path = Path(__file__).parents[3] / "migrations" / "versions" / "0010_search_speed.py"
    spec = importlib.util.spec_from_file_location("m0010", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.IMPACT == db.POSTING_IMPACT
    sql = db.bm25_capped_sql(384)
    assert f"ORDER BY {db.POSTING_IMPACT} DESC LIMIT $7" in sql
    assert "$8::vector(384)" in sql and sql.endswith("LIMIT $9")
    assert "$8::vector IS NULL" in db.bm25_capped_sql(None)
