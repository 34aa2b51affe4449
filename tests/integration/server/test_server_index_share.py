"""Shareable indexes (issue 15): ``index export`` -> ``index import`` into a fresh
database through the real CLI entry point (exit codes from errors.py), with real
Postgres and the Ollama-API stand-in reporting a weights digest.

After a teammate imports and indexes their own clone (one file edited), the real
indexer embeds only that file's chunks and reuses the others.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastmcp import Client

from codebase_mcp.cli import main
from codebase_mcp.errors import IndexImportBusy, IndexProjectExists
from codebase_mcp.server import indexfile, indexshare
from codebase_mcp.server.app import create_server
from tests.integration.server.conftest import make_state
from tests.integration.server.fake_embedder import FakeEmbedder, running_fake_embedder
from tests.integration.server.test_server_mcp_memory import call, index
from tests.support.postgres import PgServer, scratch_database

pytestmark = pytest.mark.integration

DIGEST_A = "a1" * 32


@pytest.fixture
def weights_a() -> Iterator[FakeEmbedder]:
    with running_fake_embedder(digest=DIGEST_A) as fake:
        yield fake


@pytest.fixture
def fresh_dsn(pg_server: PgServer) -> Iterator[str]:
    """A second, migrated, empty database (the teammate's)."""
    with scratch_database(pg_server, prefix="share", migrate=True) as dsn:
        yield dsn


def cli(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def scalar(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def index_and_search(dsn: str, fake: FakeEmbedder, repo: Path, **opts: Any) -> Any:
    state = make_state(dsn, fake)
    try:
        async with Client(create_server(state)) as client:
            job = await index(client, repo, **opts)
            found = await call(
                client, "search_code", query="exponential backoff", project_id=opts["project_id"]
            )
            return job, found
    finally:
        await state.stop()


async def search(dsn: str, fake: FakeEmbedder, project_id: str) -> Any:
    state = make_state(dsn, fake)
    try:
        async with Client(create_server(state)) as client:
            return await call(
                client, "search_code", query="exponential backoff", project_id=project_id
            )
    finally:
        await state.stop()


def embedder_args(fake: FakeEmbedder) -> list[str]:
    return ["--embedder-url", fake.url, "--embedder-model", fake.model]


def test_export_import_search_and_teammate_clone_embeds_only_what_differs(
    migrated_dsn: str, fresh_dsn: str, weights_a: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    first, found_before = asyncio.run(
        index_and_search(migrated_dsn, weights_a, sample_repo, project_id="team")
    )
    assert first["status"] == "completed" and first["chunks_embedded"] > 5, first

    out1, out2 = tmp_path / "team1.cmi", tmp_path / "team2.cmi"
    assert cli("index", "export", "team", "-o", str(out1), "--database-url", migrated_dsn) == 0
    assert cli("index", "export", "team", "-o", str(out2), "--database-url", migrated_dsn) == 0
    assert out1.read_bytes() == out2.read_bytes()  # deterministic
    decoded = indexfile.decode(out1.read_bytes())
    assert decoded.model.key == f"v1|{weights_a.model}|{decoded.model.dimension}|sha256:{DIGEST_A}"
    assert len(decoded.chunks) == first["chunks_created"]

    # The teammate's clone, one file edited, mounted elsewhere.
    clone = tmp_path / "teammate"
    shutil.copytree(sample_repo, clone, symlinks=True)
    edited = clone / "src" / "config_loader.py"
    edited.write_text(edited.read_text() + "\n\ndef teammate_helper(value):\n    return value\n")

    weights_a.reset()
    code = cli(
        "index", "import", str(out1), "--repo-root", str(clone),
        "--database-url", fresh_dsn, *embedder_args(weights_a),
    )  # fmt: skip
    assert code == 0
    assert weights_a.requests == 0  # importing embeds nothing
    found_after = asyncio.run(search(fresh_dsn, weights_a, "team"))
    assert found_after["semantic_coverage"] == 1.0
    before = [r["relative_path"] for r in found_before["results"]]
    after = [r["relative_path"] for r in found_after["results"]]
    # Same files found, the best first (ties further down may order by chunk id).
    assert after[0] == before[0] == "src/config_loader.py"
    assert sorted(after) == sorted(before)
    cached = asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM embedding_cache"))
    assert cached == len({c.text_sha256 for c in decoded.chunks})

    # Indexing the clone: unchanged files are skipped, the edited one reuses what it can.
    weights_a.reset()
    job, _ = asyncio.run(index_and_search(fresh_dsn, weights_a, clone, project_id="team"))
    assert job["status"] == "completed", job
    assert job["files_indexed"] == 1, job
    assert job["files_unchanged"] == len(decoded.files) - 1, job
    documents = [t for t in weights_a.inputs if t != "exponential backoff"]  # not the query
    assert job["chunks_embedded"] >= 1 and len(documents) == job["chunks_embedded"]
    assert any("teammate_helper" in text for text in documents)
    assert job["chunks_embedded"] + job["chunks_reused"] == job["chunks_created"]
    assert all(text.startswith("src/config_loader.py") for text in documents)

    # Another project (another path) of the same clone: only the edited texts are new.
    weights_a.reset()
    other, _ = asyncio.run(index_and_search(fresh_dsn, weights_a, clone, project_id="mine"))
    assert other["chunks_embedded"] == 0 and other["chunks_reused"] == other["chunks_created"]


def test_bad_files_other_weights_and_existing_project_write_nothing(
    migrated_dsn: str, fresh_dsn: str, weights_a: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    job, _ = asyncio.run(index_and_search(migrated_dsn, weights_a, sample_repo, project_id="p"))
    assert job["status"] == "completed"
    out = tmp_path / "p.cmi"
    assert cli("index", "export", "p", "-o", str(out), "--database-url", migrated_dsn) == 0
    assert cli("index", "export", "nope", "-o", str(tmp_path / "x"), "--database-url",
               migrated_dsn) == 84  # fmt: skip
    assert not (tmp_path / "x").exists()

    data = out.read_bytes()
    truncated = tmp_path / "truncated.cmi"
    truncated.write_bytes(data[: len(data) // 2])
    base = ["--database-url", fresh_dsn, *embedder_args(weights_a)]
    assert cli("index", "import", str(truncated), *base) == 80
    damaged = tmp_path / "damaged.cmi"
    damaged.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    assert cli("index", "import", str(damaged), *base) == 80
    assert asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM projects")) == 0

    with running_fake_embedder(digest="b2" * 32) as other_weights:
        code = cli("index", "import", str(out), "--database-url", fresh_dsn,
                   *embedder_args(other_weights))  # fmt: skip
    assert code == 81
    assert asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM projects")) == 0
    assert asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM embedding_cache")) == 0

    assert cli("index", "import", str(out), *base) == 0
    chunks = asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM chunks"))
    assert cli("index", "import", str(out), *base) == 83
    assert cli("index", "import", str(out), "--replace", *base) == 0
    assert asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM chunks")) == chunks


def test_two_imports_of_one_project_at_once_one_wins(
    migrated_dsn: str, fresh_dsn: str, weights_a: FakeEmbedder, sample_repo: Path, tmp_path: Path
) -> None:
    job, _ = asyncio.run(index_and_search(migrated_dsn, weights_a, sample_repo, project_id="p"))
    assert job["status"] == "completed"
    index_file = asyncio.run(indexshare.export_project(migrated_dsn, "p"))
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            outcomes.append(
                asyncio.run(indexshare.import_index(fresh_dsn, index_file, replace_existing=False))
            )
        except (IndexImportBusy, IndexProjectExists) as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wins = [o for o in outcomes if isinstance(o, indexshare.ImportResult)]
    losses = [o for o in outcomes if not isinstance(o, indexshare.ImportResult)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    assert "nothing was written" in str(losses[0]) + str(getattr(losses[0], "hint", ""))
    chunks = asyncio.run(scalar(fresh_dsn, "SELECT count(*) FROM chunks"))
    assert chunks == len(index_file.chunks)
