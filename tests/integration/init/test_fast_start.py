"""What the init imports on its usual start, against the real postgres image.

An init whose dependencies are up and whose schema is at head reads its settings and
command line with the stdlib and skips the migration without alembic: it imports none
of pydantic, click, SQLAlchemy or alembic. Its probes are asyncpg (under asyncio) and
urllib, imported by the probe that uses them, so an init that waits for nothing imports
neither. (docs/init.md, "Start-up time".)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.init.scripts import GOOD, write_scripts
from tests.integration.init.support import SUPERVISE_ONLY, events, start_init
from tests.unit.init.fake_ollama import OllamaState, fake_ollama

pytestmark = pytest.mark.integration

HEAVY = {"pydantic", "pydantic_settings", "click", "sqlalchemy", "alembic"}
PROBES = {"asyncio", "asyncpg", "urllib.request"}


def imported_modules(stderr: str) -> set[str]:
    """Every module ``-X importtime`` reports, by its full dotted name."""
    return {
        line.split("|")[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_init_at_head_imports_nothing_heavy(pg_dsn: str, tmp_path: Path) -> None:
    scripts = write_scripts(tmp_path / "good", GOOD)
    options = ["--migrations", str(scripts)]
    with fake_ollama(OllamaState(models=["all-minilm:latest"])) as ollama_url:
        env = {"DATABASE_URL": pg_dsn, "EMBEDDER_URL": ollama_url, "EMBEDDER_MODEL": "all-minilm"}
        first = start_init(options, ["true"], env)
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr  # migrates to head (the full path)

        started = tmp_path / "started"
        init = start_init(options, ["touch", str(started)], {**env, "PYTHONPROFILEIMPORTTIME": "1"})
        _, stderr = init.communicate(timeout=60)
    assert init.returncode == 0, stderr
    assert started.exists()
    modules = imported_modules(stderr)
    assert "codebase_mcp.init.waits" in modules  # the import profile is really there
    assert not packages(modules) & HEAVY
    assert modules >= PROBES  # the probes are the libraries themselves
    assert [e["event"] for e in events(stderr) if str(e["event"]).startswith("migrate.")] == [
        "migrate.skip"
    ]
    ready = [e for e in events(stderr) if e["event"] == "wait.ready"]
    assert [e["dependency"] for e in ready] == ["postgres", "embedder"]
    assert str(ready[0]["detail"]).startswith("PostgreSQL 17.")


def test_init_waiting_for_nothing_imports_no_probe(tmp_path: Path) -> None:
    started = tmp_path / "started"
    init = start_init(SUPERVISE_ONLY, ["touch", str(started)], {"PYTHONPROFILEIMPORTTIME": "1"})
    _, stderr = init.communicate(timeout=60)
    assert init.returncode == 0, stderr
    assert started.exists()
    modules = imported_modules(stderr)
    assert "codebase_mcp.init.run" in modules
    assert not packages(modules) & HEAVY
    assert not modules & PROBES
