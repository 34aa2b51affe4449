"""migrate.py without a database: URLs, script location, heads read with ast."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp import migrate
from codebase_mcp.errors import ConfigError

REV = """\
revision{ann} = {rev!r}
down_revision{ann} = {down!r}
"""


def write(root: Path, revs: list[tuple[str, object]], ann: str = "") -> Path:
    (root / "versions").mkdir(parents=True)
    for rev, down in revs:
        (root / "versions" / f"{rev}.py").write_text(REV.format(rev=rev, down=down, ann=ann))
    return root


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_async_url(dsn: str, expected: str) -> None:
    assert migrate.async_url(dsn) == expected


@pytest.mark.parametrize("dsn", ["mysql://u@h/db", "not a url"])
def test_async_url_rejects_other_databases(dsn: str) -> None:
    with pytest.raises(ConfigError):
        migrate.async_url(dsn)


def test_linear_chain_has_one_head(tmp_path: Path) -> None:
    root = write(tmp_path, [("a", None), ("b", "a"), ("c", "b")])
    assert migrate.script_heads(root) == frozenset({"c"})


def test_annotated_assignments_are_read(tmp_path: Path) -> None:
    root = write(tmp_path, [("0001", None), ("0002", "0001")], ann=": str | None")
    assert migrate.script_heads(root) == frozenset({"0002"})


def test_branches_give_several_heads_and_merges_one(tmp_path: Path) -> None:
    root = write(tmp_path, [("a", None), ("b", "a"), ("c", "a")])
    assert migrate.script_heads(root) == frozenset({"b", "c"})
    (root / "versions" / "m.py").write_text(REV.format(rev="m", down=("b", "c"), ann=""))
    assert migrate.script_heads(root) == frozenset({"m"})


def test_unusual_revision_files_mean_ask_alembic(tmp_path: Path) -> None:
    root = write(tmp_path, [("a", None)])
    (root / "versions" / "b.py").write_text("revision = make_id()\ndown_revision = 'a'\n")
    assert migrate.script_heads(root) is None
    assert migrate.script_heads(tmp_path / "missing") is None


def test_source_checkout_finds_the_repo_migrations() -> None:
    location = migrate.default_script_location()
    assert (location / "env.py").is_file()
    heads = migrate.script_heads(location)
    assert heads is not None
    assert len(heads) == 1


def test_at_head_only_for_exactly_the_single_head(tmp_path: Path) -> None:
    root = write(tmp_path / "linear", [("a", None), ("b", "a")])
    assert migrate.at_head(frozenset({"b"}), root) == "b"
    assert migrate.at_head(frozenset({"a"}), root) is None
    assert migrate.at_head(frozenset(), root) is None
    branched = write(tmp_path / "branched", [("a", None), ("b", "a"), ("c", "a")])
    assert migrate.at_head(frozenset({"b", "c"}), branched) is None  # alembic decides
