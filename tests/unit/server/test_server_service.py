"""The service layer's mapping from rows and hits to answers (no server, no database),
and the output schemas FastMCP publishes from the answer models."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.errors import InvalidToolInput
from codebase_mcp.server import models, service
from codebase_mcp.server.config import RootMapping
from codebase_mcp.server.paths import PathMapper
from codebase_mcp.server.search import Filters, Hit

MAPPER = PathMapper([RootMapping(host="/h", container="/c")])


def job_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "j", "project_id": "p", "repo_path": "/h/r", "root_path": "/c/r",
        "status": "running", "files_total": 10, "files_scanned": 4, "files_indexed": 3,
        "files_unchanged": 1, "files_skipped": 1, "files_deleted": 0, "chunks_created": 9,
        "force_reindex": False, "embedding_model": "m", "attempts": 1,
        "cancel_requested": False, "error": None,
        "errors": [{"path": "bad.bin", "error": "binary (NUL bytes)"}], "timings": {},
        "created_at": datetime(2026, 12, 2, tzinfo=UTC), "started_at": None,
        "finished_at": None,
    }  # fmt: skip
    row.update(changes)
    return row


def hit(rel: str, start: int, end: int, content: str, score: float, **kw: Any) -> Hit:
    return Hit(
        id=start,
        path=kw.pop("path", f"/c/r/{rel}"),
        rel_path=rel,
        language=kw.pop("language", "python"),
        start_line=start,
        end_line=end,
        symbol=kw.pop("symbol", None),
        content=content,
        similarity=kw.pop("similarity", 0.5),
        score=score,
    )


def lines(start: int, end: int, word: str = "x") -> str:
    return "\n".join(f"{word}_{n} = {n}" for n in range(start, end + 1))


# --- jobs -------------------------------------------------------------------------------


def test_job_status_progress_host_paths_and_times() -> None:
    status = service.job_status(job_row(), MAPPER)
    assert status.progress == 0.5  # indexed + unchanged + skipped over total
    assert [e.model_dump() for e in status.errors] == [
        {"path": "/h/r/bad.bin", "error": "binary (NUL bytes)"}
    ]
    assert status.created_at == "2026-12-02T00:00:00+00:00" and status.started_at is None
    dumped = status.model_dump(mode="json")
    # the old keys stay, nullable ones included; progress is computed from the counters
    assert dumped["error"] is None and "finished_at" in dumped
    assert dumped["phase"] == "lexical" and dumped["lexical_progress"] == 0.5
    assert dumped["watch"] == {"watching": False, "state": "not watched"}


def test_job_status_completed_is_whole_and_empty_totals_are_zero() -> None:
    assert service.job_status(job_row(status="completed", files_total=0), MAPPER).progress == 1.0
    assert service.job_status(job_row(files_total=0), MAPPER).progress == 0.0
    assert service.job_status(job_row(files_indexed=30), MAPPER).progress == 1.0


def test_job_status_reports_lexical_and_semantic_progress_apart() -> None:
    row = job_row(files_indexed=30, chunks_to_embed=9, chunks_embedded=4)
    dumped = service.job_status(row, MAPPER).model_dump(mode="json")
    assert (dumped["phase"], dumped["lexical_progress"]) == ("embedding", 1.0)
    assert (dumped["chunks_embedded"], dumped["semantic_progress"]) == (4, 0.4444)


# --- arguments --------------------------------------------------------------------------


def test_search_filters() -> None:
    assert service.search_filters(None, None, MAPPER) == Filters()
    assert service.search_filters(".PY", "  ", MAPPER) == Filters(file_type="py")
    assert service.search_filters(None, "/h/r/src", MAPPER) == Filters(path_prefix="/c/r/src")
    assert service.search_filters("go", "cmd/x", MAPPER) == Filters("go", rel_prefix="cmd/x")
    with pytest.raises(InvalidToolInput, match="contains '..'"):
        service.search_filters(None, "src/../../etc", MAPPER)


@pytest.mark.parametrize("bad", ["", "FULL", "short", "compact "])
def test_unknown_detail_lists_the_allowed_values(bad: str) -> None:
    with pytest.raises(InvalidToolInput, match="is not one of: compact, full"):
        service.check_detail(bad)
    assert service.check_detail("full") == "full"


def test_project_and_job_ids() -> None:
    assert service.check_project_id("a.b:c-1_2") == "a.b:c-1_2"
    for bad in ["", "-x", "a b", "x" * 129]:
        with pytest.raises(InvalidToolInput, match="project_id"):
            service.check_project_id(bad)
    assert str(service.parse_job_id(" 00000000-0000-0000-0000-000000000001 ")).endswith("01")
    with pytest.raises(InvalidToolInput, match="not a job id"):
        service.parse_job_id("42")


# --- search answers ---------------------------------------------------------------------


def test_full_hits_keep_the_old_shape() -> None:
    (full,) = service.full_hits(
        [hit("a.py", 3, 4, "def f():\n    pass", 0.0321, symbol="f")], MAPPER
    )
    assert full.model_dump() == {
        "path": "/h/r/a.py", "relative_path": "a.py", "start_line": 3, "end_line": 4,
        "language": "python", "symbol": "f", "score": 0.0321, "similarity": 0.5,
        "content": "def f():\n    pass", "context_before": "", "context_after": "",
    }  # fmt: skip


def test_compact_merges_adjacent_chunks_and_keeps_the_file_order() -> None:
    hits = [
        hit("b.py", 41, 60, lines(41, 60), 0.9, symbol="second"),
        hit("a.py", 1, 20, lines(1, 20), 0.8),
        hit("b.py", 1, 40, lines(1, 40), 0.7, symbol="first"),  # touches 41-60: merged
        hit("b.py", 100, 120, lines(100, 120), 0.6),  # a gap: its own hit
        hit("a.py", 15, 30, lines(15, 30), 0.5),  # overlaps 1-20: merged
    ]
    repo, compact = service.compact_hits(hits, "x", MAPPER)
    assert repo == "/h/r"
    got = [(h.relative_path, h.start_line, h.end_line, h.score, h.symbol) for h in compact]
    assert got == [
        ("b.py", 1, 60, 0.9, "second, first"),
        ("a.py", 1, 30, 0.8, None),
        ("b.py", 100, 120, 0.6, None),
    ]
    in_order = list(dict.fromkeys(h.rel_path for h in hits))
    assert list(dict.fromkeys(h.relative_path for h in compact)) == in_order
    assert all(h.path is None for h in compact)


def test_a_chunk_bridging_two_hits_of_a_file_merges_all_three() -> None:
    hits = [
        hit("a.py", 1, 10, lines(1, 10), 0.9),
        hit("a.py", 21, 30, lines(21, 30), 0.8),
        hit("a.py", 11, 20, lines(11, 20), 0.7),
    ]
    _, compact = service.compact_hits(hits, "x", MAPPER)
    assert [(h.start_line, h.end_line) for h in compact] == [(1, 30)]


def test_hits_from_two_repositories_carry_their_own_paths() -> None:
    hits = [
        hit("a.py", 1, 2, "a\nb", 0.9, path="/c/r/a.py"),
        hit("a.py", 1, 2, "a\nb", 0.8, path="/c/other/a.py"),
    ]
    repo, compact = service.compact_hits(hits, "a", MAPPER)
    assert repo is None
    assert [h.path for h in compact] == ["/h/r/a.py", "/h/other/a.py"]  # not merged either


def test_snippet_keeps_the_definition_and_the_best_matching_lines() -> None:
    body = ["def load_settings(path):", '    """Read the settings."""']
    body += [f"    step_{n} = {n}" for n in range(20)]
    body += ["    parsed = json.loads(raw_config_text)", "    return parsed"]
    text = service.snippet(
        {10 + i: line for i, line in enumerate(body)}, service.query_terms("parse the JSON config")
    )
    out = text.split("\n")
    assert out[0] == "10: def load_settings(path):"
    assert out[1] == "..."
    assert "32:     parsed = json.loads(raw_config_text)" in out
    assert len(out) <= service.SNIPPET_WINDOW + 2


def test_snippet_without_matches_is_the_start_dedented_and_capped() -> None:
    content = dict.fromkeys(range(1, 50), "        " + "y" * 300)
    text = service.snippet(content, set())
    out = text.split("\n")
    assert out[0].startswith("1: yyy") and out[0].endswith("...")
    assert len(out[0]) <= len("1: ") + service.SNIPPET_LINE_CHARS
    assert len(text) <= service.SNIPPET_MAX_CHARS + 2 * service.SNIPPET_LINE_CHARS
    assert service.snippet({}, {"x"}) == ""


def test_query_terms_split_identifiers_and_drop_stop_words() -> None:
    assert service.query_terms("How does the parseConfig read_file work") == {
        "parseconfig", "parse", "config", "read_file", "read", "file", "work"
    }  # fmt: skip


def test_compact_answer_drops_empty_fields_and_full_keeps_them() -> None:
    hits = [hit("a.py", 1, 2, "a = 1\nb = 2", 0.9)]
    repo, compact = service.compact_hits(hits, "a", MAPPER)
    answer = models.SearchAnswer(
        detail="compact", mode="hybrid", repo_path=repo, results=compact,
        embedding_ms=1.0, search_ms=2.0,
    )  # fmt: skip
    dumped = json.loads(answer.model_dump_json())
    assert dumped == {
        "detail": "compact", "mode": "hybrid", "repo_path": "/h/r", "embedding_ms": 1.0,
        "search_ms": 2.0,
        "results": [{"relative_path": "a.py", "start_line": 1, "end_line": 2, "score": 0.9,
                     "snippet": "1: a = 1\n2: b = 2"}],
    }  # fmt: skip
    full = models.SearchAnswer(
        detail="full", mode="vector", project_id="p", query="a",
        results=service.full_hits(hits, MAPPER), embedding_ms=1.0, search_ms=2.0,
    )  # fmt: skip
    assert json.loads(full.model_dump_json())["results"][0]["symbol"] is None


def test_read_context_only_when_the_file_still_matches(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("one\ntwo\nthree\nfour\nfive\n")
    spans = [(str(path), 3, 3, "three"), (str(path), 3, 3, "changed")]
    spans += [(str(tmp_path / "gone.py"), 1, 1, "x"), (str(path), 5, 9, "five")]
    assert service.read_context(spans, 1) == [("two", "four"), ("", ""), ("", ""), ("", "")]


# --- the published schemas --------------------------------------------------------------


def test_every_tool_publishes_an_object_schema_with_described_fields() -> None:
    from codebase_mcp.server.app import ServerState, create_server
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.embeddings import OllamaEmbedder
    from codebase_mcp.settings import DatabaseSettings

    state = ServerState(
        ServerSettings(workers=0),
        DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/none"),
        OllamaEmbedder("http://127.0.0.1:1", "all-minilm"),
    )
    listed = asyncio.run(create_server(state).list_tools())
    for tool in listed:
        out = tool.output_schema
        assert out is not None and out["type"] == "object", tool.name
        assert out["additionalProperties"] is False, tool.name
        assert "x-fastmcp-wrap-result" not in out, tool.name
        for name, prop in tool.parameters["properties"].items():
            assert prop.get("description"), f"{tool.name}({name}) has no description"
    search = next(t for t in listed if t.name == "search_code")
    assert search.parameters["properties"]["detail"]["enum"] == list(models.DETAILS)
    assert search.parameters["properties"]["detail"]["default"] == "compact"
    assert search.parameters["properties"]["limit"]["minimum"] == 1


def test_snippet_leaves_blank_lines_out_without_marking_a_gap() -> None:
    content = {1: '"""Loading settings."""', 2: "", 3: "import json", 4: "", 5: "", 6: "def f():"}
    assert service.snippet(content, {"json"}) == (
        '1: """Loading settings."""\n3: import json\n6: def f():'
    )


def test_health_names_the_kind_of_database_failure_never_the_drivers_text() -> None:
    import asyncpg

    from codebase_mcp.server.service import public_database_error

    secret = 'password authentication failed for user "codebase-admin" on db-7.internal'
    cases = {
        asyncpg.InvalidPasswordError(secret): "authentication failed",
        ConnectionRefusedError(111, f"Connect call failed {secret}"): "unreachable",
        TimeoutError(secret): "timeout",
        asyncpg.UndefinedTableError(secret): "database error",
        RuntimeError(secret): "unavailable",
    }
    for exc, kind in cases.items():
        text = public_database_error(exc)
        assert text.startswith(kind), (exc, text)
        assert "codebase-admin" not in text and "db-7" not in text


def test_embedders_down_lists_the_failing_endpoints_without_credentials() -> None:
    from types import SimpleNamespace

    from codebase_mcp.server.embedpool import Endpoint
    from codebase_mcp.server.service import embedders_down

    up = Endpoint("http://a:11434", status="ok")
    unknown = Endpoint("http://b:11434")  # not probed yet: used as healthy
    down = Endpoint(
        "http://user:s3cret@c:11434",
        status="down",
        error="ConnectError at http://user:s3cret@c:11434",
    )
    embedder = SimpleNamespace(pool=SimpleNamespace(endpoints=[up, unknown, down]))
    (listed,) = embedders_down(embedder)
    assert listed.status == "down"
    assert "s3cret" not in listed.url and "s3cret" not in (listed.error or "")
    assert listed.url.endswith("@c:11434")
    assert embedders_down(SimpleNamespace(model="m")) == []  # an embedder without endpoints
