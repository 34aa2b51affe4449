"""Which BM25 statement a search runs, and its parameters: pure, no database
(tests/integration/server/test_server_search_scale.py runs them on Postgres)."""

from __future__ import annotations

import re

from codebase_mcp.server import db
from codebase_mcp.server.db import Filters


def placeholders(sql: str) -> set[int]:
    return {int(n) for n in re.findall(r"\$(\d+)", sql)}


def test_an_unfiltered_search_keeps_its_statement_and_parameters() -> None:
    sql, more = db.bm25_statement(384, Filters(), 100, "p")
    assert sql == db.bm25_sql(384, "", False)
    assert more == []
    assert "JOIN chunks c ON c.id = p.chunk_id" not in sql.split("top AS")[0]
    assert max(placeholders(sql)) == 10


def test_a_filtered_search_tests_the_filter_on_a_head_of_ten_times_the_candidates() -> None:
    sql, more = db.bm25_statement(None, Filters(file_type="py", rel_prefix="/src/"), 100, "p")
    assert more == [1000, "p", "py", "src/"]  # $11 head, $12 project, the filters from $13
    assert db.postfilter_head(100) == 1000 and db.postfilter_head(0) == db.POSTFILTER_FACTOR
    # Every parameter is used, none past the ones given.
    assert placeholders(sql) == set(range(1, 11 + len(more)))
    assert "(c.extension = $13 OR c.language = $13)" in sql
    assert "starts_with(c.rel_path, $14)" in sql
    # The postings are never joined to their chunks: the filter is a lookup per
    # candidate, in score order, on the head (LIMIT $11), then on the rest.
    selecting = sql.split("head AS")[0]
    assert "lexical_postings p" in selecting and "chunks" not in selecting
    assert "LIMIT $11) a CROSS JOIN LATERAL" in sql
    assert "OFFSET $11) a CROSS JOIN LATERAL" in sql
    assert "WHERE (SELECT count(*) FROM head) < $6" in sql
    # The rest, with a file type: only the project's chunks of that type.
    rest = sql.split("rest AS")[1].split("cand AS")[0]
    assert "k.project_id = $12 AND (k.extension = $13 OR k.language = $13)" in rest


def test_a_directory_filter_alone_takes_no_project_parameter() -> None:
    sql, more = db.bm25_statement(None, Filters(rel_prefix="src"), 100, "p")
    assert more == [1000, "src/"]  # $11 head, the filter at $12
    assert placeholders(sql) == set(range(1, 13))
    assert "starts_with(c.rel_path, $12)" in sql
    assert "k.project_id" not in sql


def test_the_reference_join_statement_takes_its_filters_from_11() -> None:
    where, params = db.filter_sql(Filters(file_type="go"), 11, alias="c.")
    sql = db.bm25_sql(None, where, True)
    assert params == ["go"]
    assert "JOIN chunks c ON c.id = p.chunk_id" in sql
    assert placeholders(sql) == set(range(1, 12))
