"""An on-disk embedding cache for the evaluation: re-running search modes or
fusion settings re-embeds nothing.

A vector is stored under (model identity, role, sha256 of the exact text the
model reads). The identity names everything that determines the vectors (for
the in-process encoder: the model files' digest and the encoder's code), so a
different model or a changed encoder never reads another's vectors. The store
is one SQLite file (WAL, safe for several processes at once: helpers on other
branches share it); vectors are float64, so they come back bit-identical.
"""

from __future__ import annotations

import array
import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL,
    role TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, role, text_sha256)
) WITHOUT ROWID
"""


class _Embedder(Protocol):
    model: str

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def embed_query(self, text: str) -> list[float]: ...


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pack(vector: Sequence[float]) -> bytes:
    return array.array("d", vector).tobytes()


def _unpack(blob: bytes) -> list[float]:
    values = array.array("d")
    values.frombytes(blob)
    return values.tolist()


class VectorStore:
    """The SQLite file: get and put vectors by (identity, role, text)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def get(self, identity: str, role: str, keys: Sequence[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT text_sha256, vector FROM vectors WHERE model = ? AND role = ? "  # noqa: S608
                f"AND text_sha256 IN ({marks})",
                (identity, role, *part),
            )
            found.update((key, _unpack(blob)) for key, blob in rows)
        return found

    def put(self, identity: str, role: str, items: dict[str, list[float]]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                [(identity, role, key, _pack(v)) for key, v in items.items()],
            )

    def count(self, identity: str) -> int:
        row = self._db.execute("SELECT count(*) FROM vectors WHERE model = ?", (identity,))
        return int(row.fetchone()[0])


class CachedEmbedder:
    """An Embedder that asks ``inner`` only for texts the store does not hold."""

    def __init__(self, inner: _Embedder, store: VectorStore, identity: str) -> None:
        self.inner = inner
        self.store = store
        self.vector_identity = identity
        self.model = inner.model
        self.hits = 0
        self.misses = 0

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [text_key(t) for t in texts]
        found = self.store.get(self.vector_identity, "document", keys)
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found:
                todo.setdefault(key, text)
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        if todo:
            vectors = await self.inner.embed_documents(list(todo.values()))
            fresh = dict(zip(todo, vectors, strict=True))
            self.store.put(self.vector_identity, "document", fresh)
            found.update(fresh)
        return [found[key] for key in keys]

    async def embed_query(self, text: str) -> list[float]:
        key = text_key(text)
        found = self.store.get(self.vector_identity, "query", [key])
        if key in found:
            self.hits += 1
            return found[key]
        self.misses += 1
        vector = await self.inner.embed_query(text)
        self.store.put(self.vector_identity, "query", {key: vector})
        return vector
