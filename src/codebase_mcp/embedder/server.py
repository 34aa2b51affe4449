"""Start the embedder: set BLAS threads, load the model, warm it up, serve with uvicorn."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from codebase_mcp.embedder.config import ServeSettings

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("codebase_mcp.embedder")

# Thread-count variables read by the BLAS libraries numpy may be built with.
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_env(threads: int) -> dict[str, str]:
    """Environment that fixes BLAS threads before numpy loads (pure)."""
    return {name: str(threads) for name in _BLAS_ENV}


def build_app(settings: ServeSettings) -> Starlette:
    """Load the model and return the ASGI app (for tests and for :func:`serve`)."""
    # One BLAS thread by default: measured (bench/results/embedder*.json) 2.8x faster
    # than two on the 2-core hosts when other processes compete for the cores, which
    # is the normal case in the pod (Postgres and the indexer share them).
    threads = settings.threads or 1
    for name, value in blas_env(threads).items():
        os.environ.setdefault(name, value)  # effective only if numpy is not imported yet

    from codebase_mcp.embedder.app import EmbedderService, create_app
    from codebase_mcp.embedder.encoder import SentenceEncoder
    from codebase_mcp.embedder.model_files import load_model_files
    from codebase_mcp.embedder.threads import available_cpus, get_blas_threads, set_blas_threads

    set_blas_threads(threads)
    files = load_model_files(settings.model_dir)
    encoder = SentenceEncoder(
        files,
        max_batch=settings.max_batch,
        max_batch_tokens=settings.max_batch_tokens,
        sort_by_length=settings.sort_by_length,
    )
    started = time.perf_counter()
    encoder.embed(["warm up the BLAS threads and the allocator"] * 2)
    log.info(
        "model %s loaded in %.2fs (warm-up %.2fs), dimension %d, max tokens %d, BLAS threads %s",
        files.directory,
        encoder.load_seconds,
        time.perf_counter() - started,
        encoder.dimension,
        encoder.max_seq_length,
        get_blas_threads(),
    )
    service = EmbedderService(
        encoder,
        max_pending=settings.max_pending,
        max_body_bytes=settings.max_body_bytes,
        index_slice_tokens=settings.index_slice_tokens,
        index_max_pause=settings.index_max_pause,
        index_nice=settings.index_nice,
        # Two by default: a batch of queries splits over both cores (the index lane
        # pauses while queries run, so its core is free then).
        query_threads=settings.query_threads or min(2, available_cpus()),
    )
    return create_app(service)


def serve(settings: ServeSettings) -> None:
    import uvicorn

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s: %(message)s")
    app = build_app(settings)
    log.info("serving Ollama API subset on http://%s:%d", settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
        server_header=False,
    )
