"""The embedding cache's pure parts: its key, text hashes and a batch's plan.

A vector depends on the model's weights and on the exact text it reads, and on
nothing else (not the project, not the path of the repository): the cache is
keyed by ``(cache_key(model, dimension, digest), sha256(text))`` and shared by
every project. A second clone of a repository, a fork, or a branch indexed as
another project gets the vectors of the texts it shares without asking the
embedder.

The model's identity is the digest the embedder reports for its weights
(``/api/tags``: the sha256 of the weights for the project's embedder, the
manifest digest for Ollama; :meth:`OllamaEmbedder.identity`). An embedder that
reports none gets no cache at all (:func:`cache_key` answers None): a model name
alone may name other weights tomorrow (``ollama pull`` of a new tag), and a
wrong vector is worse than a slow one. The SQL lives in :mod:`db`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

KEY_VERSION = "v1"  # bump if what a vector depends on changes (prefixes, normalisation)


def normalise_digest(digest: str | None) -> str | None:
    """``sha256:ABC..`` or ``abc..`` -> ``abc..``; None or blank -> None."""
    value = (digest or "").strip().removeprefix("sha256:").lower()
    return value or None


async def reported_digest(embedder: object, *, fresh: bool) -> str | None:
    """The digest of the weights ``embedder`` serves, as its ``identity()`` reports it
    (normalised; None: it has no ``identity`` or reports none). Errors propagate."""
    identity = getattr(embedder, "identity", None)
    return normalise_digest(await identity(fresh=fresh)) if identity is not None else None


def cache_key(model: str, dimension: int, digest: str | None) -> str | None:
    """The model identity entries are stored under; None: no verified digest, no cache."""
    digest = normalise_digest(digest)
    if not digest or not model:
        return None
    return f"{KEY_VERSION}|{model}|{int(dimension)}|sha256:{digest}"


def text_sha256(text: str) -> bytes:
    """The hash of the exact text the model reads (chunker.embedding_text)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class MissPlan:
    """The chunks of a batch the cache did not answer, and what to ask the embedder.

    ``texts``: each distinct missing text once; ``slots[i]``: the index in
    ``texts`` whose vector chunk ``chunk_ids[i]`` gets.
    """

    chunk_ids: list[int]
    hashes: list[bytes]
    texts: list[str]
    slots: list[int]

    def vectors_for_chunks(self, vectors: Sequence[Sequence[float]]) -> list[Sequence[float]]:
        return [vectors[slot] for slot in self.slots]

    def unique_hashes(self) -> list[bytes]:
        """The hash of each of ``texts``, in order (what goes into the cache)."""
        seen: dict[int, bytes] = {}
        for slot, digest in zip(self.slots, self.hashes, strict=True):
            seen.setdefault(slot, digest)
        return [seen[slot] for slot in range(len(self.texts))]


def plan_misses(
    chunk_ids: Sequence[int],
    hashes: Sequence[bytes],
    texts: Sequence[str],
    filled: set[int],
) -> MissPlan:
    """What is left after the cache filled the chunks in ``filled`` (pure)."""
    ids: list[int] = []
    kept_hashes: list[bytes] = []
    unique: list[str] = []
    slots: list[int] = []
    slot_of: dict[bytes, int] = {}
    for chunk_id, digest, text in zip(chunk_ids, hashes, texts, strict=True):
        if chunk_id in filled:
            continue
        slot = slot_of.get(digest)
        if slot is None:
            slot = slot_of[digest] = len(unique)
            unique.append(text)
        ids.append(chunk_id)
        kept_hashes.append(digest)
        slots.append(slot)
    return MissPlan(ids, kept_hashes, unique, slots)
