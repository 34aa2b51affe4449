"""Fixtures for the server's integration tests: a migrated database, a fake embedder,
a small repository, and a server state wired to them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from codebase_mcp.server.app import ServerState
from codebase_mcp.server.config import ServerSettings
from codebase_mcp.server.embeddings import OllamaEmbedder
from codebase_mcp.settings import DatabaseSettings
from tests.integration.server.fake_embedder import FakeEmbedder, running_fake_embedder

SAMPLE_FILES: dict[str, str] = {
    "src/config_loader.py": '''"""Loading settings."""

import json


def parse_config_file(path):
    """Read a JSON configuration file and return it as a dict."""
    with open(path) as handle:
        return json.load(handle)


class RetryPolicy:
    """Exponential backoff for flaky network calls."""

    def __init__(self, attempts=3):
        self.attempts = attempts

    def backoff_delay(self, attempt):
        return 0.1 * 2 ** attempt
''',
    "src/web/server.js": """const http = require('http');

function startHttpServer(port) {
  return http.createServer((req, res) => res.end('hello')).listen(port);
}

class RequestRouter {
  route(path) { return path.split('/'); }
}

module.exports = { startHttpServer, RequestRouter };
""",
    "cmd/main.go": """package main

import "fmt"

// computeChecksum adds up the bytes of a message.
func computeChecksum(data []byte) int {
\tsum := 0
\tfor _, b := range data {
\t\tsum += int(b)
\t}
\treturn sum
}

func main() {
\tfmt.Println(computeChecksum([]byte("abc")))
}
""",
    "lib/tokenizer.rs": """pub fn split_whitespace_tokens(input: &str) -> Vec<&str> {
    input.split_whitespace().collect()
}

pub struct TokenCounter { count: usize }

impl TokenCounter {
    pub fn increment_count(&mut self) { self.count += 1; }
}
""",
    "README.md": "# Sample\n\nA tiny repository: config parsing, http server, checksums.\n",
    "build/generated.py": "def generated_output():\n    return 1\n",
    "logs/debug.log": "log line about parse_config_file\n",
    "keep/important.log": "negated ignore rule keeps this log\n",
    ".gitignore": "*.log\n!keep/important.log\n/secret/\n",
    "secret/token.py": "API_TOKEN = 'never index me'\n",
    "nested/secret/ok.py": "def nested_secret_is_not_root_anchored():\n    return True\n",
}


def write_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "data.txt").write_bytes(b"text with a NUL\x00 byte inside")
    return root


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo", SAMPLE_FILES)


@pytest.fixture
def fake_embedder() -> Iterator[FakeEmbedder]:
    with running_fake_embedder() as fake:
        yield fake


@pytest.fixture
def migrated_dsn(pg_dsn: str) -> str:
    from codebase_mcp.migrate import upgrade_head

    asyncio.run(upgrade_head(pg_dsn))
    return pg_dsn


def make_state(dsn: str, fake: FakeEmbedder, **settings: object) -> ServerState:
    options: dict[str, object] = {
        "poll_interval": 0.2,
        "heartbeat_interval": 0.5,
        "embed_batch_size": 16,
        "write_batch_files": 20,
        "pool_max_size": 6,
        # Results must not depend on the machine's load: no time budget for the
        # lexical half (its fallback is tested on its own).
        "text_search_budget_ms": 0,
    }
    options.update(settings)
    server_settings = ServerSettings(**options)  # type: ignore[arg-type]
    embedder = OllamaEmbedder(fake.url, fake.model, batch_size=server_settings.embed_batch_size)
    return ServerState(server_settings, DatabaseSettings(url=dsn), embedder)


@pytest.fixture
async def state(migrated_dsn: str, fake_embedder: FakeEmbedder) -> AsyncIterator[ServerState]:
    st = make_state(migrated_dsn, fake_embedder)
    yield st
    await st.stop()
