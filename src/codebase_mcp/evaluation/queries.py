"""Query files: ``eval/queries/NAME.json``, one per repository.

Shape (a superset of what ``mcp_eval.py`` reads)::

    {"repository": "click", "queries": [
        {"query": "...", "files": ["core.py"], "kind": "paraphrase"}, ...]}

``files``: every file (relative to the indexed directory) that honestly
answers; the first one found counts. ``kind``: how the query was written:
``paraphrase`` (describes the code without its words), ``word`` (uses one
word from the code), ``identifier`` (names a function, class or type).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from codebase_mcp.errors import ConfigError

KINDS = ("paraphrase", "word", "identifier")


@dataclass(frozen=True)
class Query:
    query: str
    files: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class QuerySet:
    repository: str
    queries: tuple[Query, ...]


def _query(raw: Any, where: str) -> Query:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not an object", hint='write {"query", "files", "kind"}')
    text, files, kind = raw.get("query"), raw.get("files"), raw.get("kind")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: query must be a non-empty string", hint="write the question")
    if (
        not isinstance(files, list)
        or not files
        or not all(isinstance(f, str) and f.strip() for f in files)
    ):
        raise ConfigError(
            f"{where} ({text!r}): files must be a non-empty list of paths",
            hint="list the file(s) that answer it",
        )
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name != str(path):
            raise ConfigError(
                f"{where} ({text!r}): file {name!r} is not a clean relative path",
                hint="paths are relative to the indexed directory",
            )
    if len(set(files)) != len(files):
        raise ConfigError(f"{where} ({text!r}): a file is listed twice", hint="list each once")
    if kind not in KINDS:
        raise ConfigError(
            f"{where} ({text!r}): kind {kind!r} is not one of {', '.join(KINDS)}",
            hint="tag how the query was written",
        )
    return Query(text.strip(), tuple(files), str(kind))


def parse_query_set(data: Any, where: str) -> QuerySet:
    if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
        raise ConfigError(
            f"{where} has no queries list", hint='write {"repository": NAME, "queries": [...]}'
        )
    repository = data.get("repository")
    if not isinstance(repository, str) or not repository:
        raise ConfigError(
            f"{where}: repository must name the repository", hint="use its name in eval/repos.toml"
        )
    queries = tuple(_query(q, f"{where} query #{i + 1}") for i, q in enumerate(data["queries"]))
    if not queries:
        raise ConfigError(f"{where} has no queries", hint="add some")
    texts = [q.query for q in queries]
    dupes = sorted({t for t in texts if texts.count(t) > 1})
    if dupes:
        raise ConfigError(f"{where}: duplicate queries {dupes}", hint="each query once")
    return QuerySet(repository, queries)


def load_query_set(path: Path) -> QuerySet:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="every repository needs eval/queries/NAME.json",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", hint="fix the file") from exc
    return parse_query_set(data, str(path))


def missing_answers(query_set: QuerySet, root: Path) -> list[tuple[str, str]]:
    """(query, file) pairs whose answer file is not a file under ``root``."""
    return [
        (q.query, name)
        for q in query_set.queries
        for name in q.files
        if not (root / name).is_file()
    ]
