"""Model names, the liveness probe and the ``embedder`` command group."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from codebase_mcp.cli import COMMANDS, cli
from codebase_mcp.embedder.catalog import canonical_name
from codebase_mcp.embedder.config import ServeSettings
from codebase_mcp.embedder.probe import model_listed, normalise_model_name, probe
from codebase_mcp.embedder.server import blas_env
from codebase_mcp.errors import EmbedderProbeFailed


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("all-minilm", "all-minilm:latest"),
        ("all-minilm:latest", "all-minilm:latest"),
        ("all-minilm:l6-v2", "all-minilm:l6-v2"),
        ("  All-MiniLM:Latest ", "all-minilm:latest"),
        ("registry.ollama.ai/library/all-minilm", "all-minilm:latest"),
        ("all-minilm:33m", None),
        ("nomic-embed-text", None),
        ("", None),
    ],
)
def test_canonical_name(name: str, canonical: str | None) -> None:
    assert canonical_name(name) == canonical


def test_normalise_model_name() -> None:
    assert normalise_model_name("nomic-embed-text") == "nomic-embed-text:latest"
    assert normalise_model_name("Nomic-Embed-Text:v1.5") == "nomic-embed-text:v1.5"
    assert normalise_model_name("localhost:5000/ns/model") == "localhost:5000/ns/model:latest"


def test_model_listed() -> None:
    tags = {"models": [{"name": "all-minilm:latest"}, {"name": "nomic-embed-text:v1.5"}]}
    assert model_listed(tags, "all-minilm")
    assert model_listed(tags, "nomic-embed-text:v1.5")
    assert not model_listed(tags, "nomic-embed-text")
    assert not model_listed({"models": None}, "all-minilm")
    assert not model_listed([], "all-minilm")


class _TagsHandler(BaseHTTPRequestHandler):
    body = b'{"models": [{"name": "all-minilm:latest", "model": "all-minilm:latest"}]}'

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_ollama() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TagsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_ok_and_missing_model(fake_ollama: str) -> None:
    assert probe(fake_ollama, "all-minilm").models == ["all-minilm:latest"]
    with pytest.raises(EmbedderProbeFailed, match="lacks the model 'bge-m3'"):
        probe(fake_ollama, "bge-m3")


def test_probe_nothing_listening() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TagsHandler)
    port = server.server_address[1]
    server.server_close()  # the port is now free and closed
    with pytest.raises(EmbedderProbeFailed, match="does not answer") as info:
        probe(f"http://127.0.0.1:{port}", "all-minilm", timeout=2)
    assert info.value.exit_code == 51


def test_probe_command_exit_codes(fake_ollama: str) -> None:
    from codebase_mcp.cli import main

    with pytest.raises(SystemExit) as failed:
        main(["embedder", "probe", "--url", fake_ollama, "--model", "nomic-embed-text"])
    assert failed.value.code == 51
    result = CliRunner().invoke(cli, ["embedder", "probe", "--url", fake_ollama])
    assert result.exit_code == 0, result.output
    assert "serves all-minilm" in result.output


def test_probe_command_reads_env(fake_ollama: str) -> None:
    env = {"EMBEDDER_URL": fake_ollama, "EMBEDDER_MODEL": "all-minilm:latest"}
    result = CliRunner().invoke(cli, ["embedder", "probe"], env=env)
    assert result.exit_code == 0, result.output


def test_command_registered_and_probe_imports_stay_light() -> None:
    assert COMMANDS["embedder"] == "codebase_mcp.cli.embedder:embedder"
    code = (
        "import sys, codebase_mcp.cli.embedder, codebase_mcp.embedder.probe;"
        "heavy = {'numpy', 'starlette', 'uvicorn', 'tokenizers', 'safetensors', 'httpx'};"
        "print(json.dumps(sorted(heavy & set(sys.modules))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_serve_help_lists_options() -> None:
    result = CliRunner().invoke(cli, ["embedder", "serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--model-dir", "--threads"):
        assert option in result.output


def test_serve_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDER_PORT", "12345")
    monkeypatch.setenv("EMBEDDER_MODEL_DIR", "/models/minilm")
    settings = ServeSettings(host="0.0.0.0")  # the command line wins over the environment
    assert (settings.host, settings.port, str(settings.model_dir)) == (
        "0.0.0.0",
        12345,
        "/models/minilm",
    )
    assert ServeSettings().port == 12345
    assert blas_env(3)["OPENBLAS_NUM_THREADS"] == "3"
