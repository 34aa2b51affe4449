"""Phase 1's plan: which files are read first, in which batches."""

from __future__ import annotations

import pytest

from codebase_mcp.server.indexer import batch_bounds, write_order
from codebase_mcp.server.walker import FileEntry


def entry(rel: str) -> FileEntry:
    return FileEntry(rel_path=rel, abs_path=f"/repo/{rel}", size=10)


def test_source_is_written_before_docs_and_tests_in_walk_order() -> None:
    walked = [
        "README.md",
        "tests/test_core.py",
        "pkg/core.py",
        "docs/guide.md",
        "examples/demo.py",
        "pkg/util.py",
    ]
    order = [f.rel_path for f in write_order([entry(r) for r in walked])]
    assert order == [
        "pkg/core.py",
        "pkg/util.py",
        "README.md",
        "docs/guide.md",
        "tests/test_core.py",
        "examples/demo.py",
    ]


@pytest.mark.parametrize(
    ("total", "largest", "first", "expected"),
    [
        (0, 200, 16, []),
        (10, 200, 16, [(0, 10)]),
        (100, 200, 16, [(0, 16), (16, 48), (48, 100)]),
        (500, 100, 16, [(0, 16), (16, 48), (48, 112), (112, 212), (212, 312), (312, 412),
                        (412, 500)]),
        (5, 2, 16, [(0, 2), (2, 4), (4, 5)]),
    ],
)  # fmt: skip
def test_batches_start_small_then_double_up_to_the_setting(
    total: int, largest: int, first: int, expected: list[tuple[int, int]]
) -> None:
    bounds = batch_bounds(total, largest, first)
    assert bounds == expected
    covered = [i for a, b in bounds for i in range(a, b)]
    assert covered == list(range(total))
