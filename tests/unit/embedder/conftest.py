"""Fixtures for the embedder's unit tests: the real model (0.3 s to load), loaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.embedder.encoder import SentenceEncoder
from codebase_mcp.embedder.model_files import ModelFiles, load_model_files

REFERENCE = Path(__file__).resolve().parents[2] / "data/embedder/reference_embeddings.json"


@pytest.fixture(scope="session")
def model_files() -> ModelFiles:
    return load_model_files()


@pytest.fixture(scope="session")
def encoder(model_files: ModelFiles) -> SentenceEncoder:
    return SentenceEncoder(model_files)


@pytest.fixture(scope="session")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data
