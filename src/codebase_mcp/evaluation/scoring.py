"""Scoring a ranking of files against the answer files of each query.

Search returns chunks; a query's ranking is the order in which *files* first
appear among them. recall@k: an answer file is among the first k files.
MRR@10: mean of 1 / rank of the first answer file, 0 beyond rank 10.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MRR_DEPTH = 10
RECALL_AT = (1, 5, 10)


def file_ranking(rel_paths: Iterable[str]) -> list[str]:
    """Files in the order they first appear."""
    return list(dict.fromkeys(rel_paths))


def first_rank(files: Sequence[str], answers: Iterable[str]) -> int | None:
    """1-based rank of the first answer file, None if absent."""
    wanted = set(answers)
    for rank, name in enumerate(files, start=1):
        if name in wanted:
            return rank
    return None


@dataclass(frozen=True)
class Scored:
    """One query's outcome."""

    kind: str
    rank: int | None


def metrics(outcomes: Sequence[Scored]) -> dict[str, float]:
    """recall@1/5/10 and MRR@10 (0.0 for no queries), rounded to 4 places."""
    n = len(outcomes)
    if not n:
        return {**{f"recall@{k}": 0.0 for k in RECALL_AT}, "mrr@10": 0.0, "queries": 0}
    ranks = [o.rank for o in outcomes]
    out: dict[str, float] = {
        f"recall@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 4)
        for k in RECALL_AT
    }
    out["mrr@10"] = round(sum(1 / r for r in ranks if r is not None and r <= MRR_DEPTH) / n, 4)
    out["queries"] = n
    return out


def by_kind(outcomes: Sequence[Scored]) -> dict[str, dict[str, float]]:
    kinds = sorted({o.kind for o in outcomes})
    return {k: metrics([o for o in outcomes if o.kind == k]) for k in kinds}


def mean_metrics(per_repo: Sequence[dict[str, float]]) -> dict[str, float]:
    """Macro average over repositories (each repository weighs the same)."""
    if not per_repo:
        return {}
    keys = [k for k in per_repo[0] if k != "queries"]
    out = {k: round(sum(m[k] for m in per_repo) / len(per_repo), 4) for k in keys}
    out["queries"] = sum(m.get("queries", 0) for m in per_repo)
    return out
