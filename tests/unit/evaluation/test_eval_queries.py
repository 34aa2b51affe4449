"""Query files: their shape, their kinds, and (when the pinned trees are unpacked)
that every answer file exists in the repository it is about."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.errors import ConfigError
from codebase_mcp.evaluation.queries import (
    KINDS,
    load_query_set,
    missing_answers,
    parse_query_set,
)
from codebase_mcp.evaluation.repos import cached_root, load_pins

EVAL = Path(__file__).resolve().parents[3] / "eval"
PINS = load_pins(EVAL / "repos.toml")


def good() -> dict[str, Any]:
    return {"repository": "x", "queries": [{"query": "q", "files": ["a.py"], "kind": "word"}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["queries"][0].update(kind="vibes"), "kind 'vibes'"),
        (lambda d: d["queries"][0].update(files=[]), "non-empty list"),
        (lambda d: d["queries"][0].update(files=["../a.py"]), "clean relative path"),
        (lambda d: d["queries"][0].update(files=["/abs.py"]), "clean relative path"),
        (lambda d: d["queries"][0].update(files=["a.py", "a.py"]), "listed twice"),
        (lambda d: d["queries"][0].update(query="  "), "non-empty string"),
        (lambda d: d["queries"].append(dict(d["queries"][0])), "duplicate queries"),
        (lambda d: d.pop("repository"), "repository must name"),
        (lambda d: d.update(queries=[]), "has no queries"),
    ],
)
def test_bad_query_files_are_refused(change: Any, message: str) -> None:
    data = good()
    change(data)
    with pytest.raises(ConfigError, match=message):
        parse_query_set(data, "q.json")


def test_missing_answers_lists_files_not_in_the_tree(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    data = good()
    data["queries"].append({"query": "other", "files": ["a.py", "gone.py"], "kind": "paraphrase"})
    assert missing_answers(parse_query_set(data, "q"), tmp_path) == [("other", "gone.py")]


def test_every_repository_has_a_valid_query_file_in_the_mcp_eval_shape() -> None:
    total: Counter[str] = Counter()
    for pin in PINS:
        path = EVAL / "queries" / f"{pin.name}.json"
        query_set = load_query_set(path)
        assert query_set.repository == pin.name
        # The shape /work/shared/tools/mcp_eval.py reads: {"queries": [{"query", "files"}]}.
        raw = json.loads(path.read_text())
        assert all(isinstance(q["query"], str) and q["files"] for q in raw["queries"])
        if pin.role == "eval":
            total.update(q.kind for q in query_set.queries)
            answered = {f for q in query_set.queries for f in q.files}
            assert len(answered) >= 10, f"{pin.name}: answers spread over too few files"
    assert sum(total.values()) >= 100
    for kind in KINDS:  # about a third each
        assert 0.25 <= total[kind] / sum(total.values()) <= 0.42, total


@pytest.mark.parametrize("pin", PINS, ids=lambda p: p.name)
def test_every_answer_file_exists_in_the_pinned_repository(pin: Any) -> None:
    root = cached_root(pin)
    if root is None:
        pytest.skip(f"{pin.name} is not unpacked here (run eval/fetch.py)")
    query_set = load_query_set(EVAL / "queries" / f"{pin.name}.json")
    assert missing_answers(query_set, root) == []
