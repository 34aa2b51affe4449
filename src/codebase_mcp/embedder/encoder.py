"""Tokenizer + BERT + the batching plan: texts in, sentence vectors out.

The fast path is the *plan*: sort sequences by token length and cut them into
batches whose padded size (``rows * longest``) stays under a token budget.
Similar lengths waste little compute on padding, and the budget bounds the
attention matrices' memory (``rows * heads * longest**2`` floats) whatever the
caller sends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codebase_mcp.embedder.bert import BertModel, Float32Array, l2_normalise, load_weights
from codebase_mcp.embedder.model_files import ModelFiles

DEFAULT_MAX_BATCH = 64
# rows * padded length per forward pass: 16 full 256-token sequences, or 64
# typical ~100-token code chunks. Measured in bench/bench_embedder.py.
DEFAULT_MAX_BATCH_TOKENS = 8192
# Tokenising long texts by prefix: the first prefix is this many characters per
# kept token (code averages 3-4); a cut word adds at most this many tokens.
PREFIX_CHARS_PER_TOKEN = 16
MAX_WORD_TOKENS = 100


@dataclass(frozen=True)
class Tokenized:
    """Token ids of one text, with the model's special tokens, before and after truncation."""

    ids: tuple[int, ...]
    full_length: int

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.ids)


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    sort_by_length: bool = True,
) -> list[list[int]]:
    """Group sequence indices into batches (pure).

    With ``sort_by_length`` the longest sequences go first and each batch grows
    while ``rows * longest`` fits ``max_batch_tokens`` and ``rows <= max_batch``.
    Without it, inputs are cut in order into batches of ``max_batch``: the
    naive plan the benchmark compares against.
    """
    if max_batch < 1 or max_batch_tokens < 1:
        raise ValueError("max_batch and max_batch_tokens must be positive")
    if not sort_by_length:
        indices = list(range(len(lengths)))
        return [indices[i : i + max_batch] for i in range(0, len(indices), max_batch)]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        candidate_longest = max(longest, lengths[index])
        if current and (
            len(current) + 1 > max_batch
            or (len(current) + 1) * candidate_longest > max_batch_tokens
        ):
            batches.append(current)
            current, candidate_longest = [], lengths[index]
        current.append(index)
        longest = candidate_longest
    if current:
        batches.append(current)
    return batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id sequences into (ids, attention_mask) int64 arrays (pure)."""
    longest = max(len(s) for s in sequences)
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return ids, mask


class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it, on numpy."""

    def __init__(
        self,
        files: ModelFiles,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        sort_by_length: bool = True,
        blocked: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        started = time.perf_counter()
        self.files = files
        self.max_seq_length = files.max_seq_length
        self.max_batch = max_batch
        self.max_batch_tokens = max(max_batch_tokens, files.max_seq_length)
        self.sort_by_length = sort_by_length
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
        # We truncate and pad ourselves: we need the untruncated length for
        # Ollama's truncate=false, and padding per batch, not per call.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        sep = self.tokenizer.token_to_id("[SEP]")
        pad = self.tokenizer.token_to_id("[PAD]")
        self.sep_id = int(sep) if sep is not None else 102
        self.pad_id = int(pad) if pad is not None else 0
        self.weights = load_weights(files.weights_path, files.bert)
        self.model = BertModel(self.weights, files.bert, blocked=blocked)
        self.load_seconds = time.perf_counter() - started

    @property
    def dimension(self) -> int:
        return self.files.dimension

    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        """Token ids with [CLS]/[SEP], cut like HF truncation: [CLS] t1..t(max-2) [SEP].

        Long texts are tokenised by growing prefixes, never whole: a 1 MB input
        would otherwise become ~250k token objects for 256 kept ones. A prefix
        decides the first ``max - 2`` tokens exactly once it yields
        ``MAX_WORD_TOKENS`` more than that, because cutting the text can only
        change the tokens of the one word it cuts through (BERT pre-tokenises
        on whitespace and punctuation; a word over 100 characters is one [UNK]).
        ``full_length`` is then a lower bound, which is all ``truncated`` needs.
        """
        if not texts:
            return []
        limit = self.max_seq_length
        first_cut = limit * PREFIX_CHARS_PER_TOKEN
        heads = [text[:first_cut] for text in texts]
        encodings = self.tokenizer.encode_batch(heads, add_special_tokens=True)
        result = []
        for text, head, encoding in zip(texts, heads, encodings, strict=True):
            ids = encoding.ids
            cut = len(head)
            while cut < len(text) and len(ids) < limit + MAX_WORD_TOKENS:
                cut *= 4
                ids = self.tokenizer.encode(text[:cut], add_special_tokens=True).ids
            kept = (*ids[: limit - 1], self.sep_id) if len(ids) > limit else tuple(ids)
            result.append(Tokenized(ids=kept, full_length=len(ids)))
        return result

    def embed_ids(
        self, sequences: Sequence[Sequence[int]], *, normalise: bool = True
    ) -> Float32Array:
        """Vectors for already tokenized (and truncated) sequences, in input order."""
        out = np.zeros((len(sequences), self.dimension), dtype=np.float32)
        if not sequences:
            return out
        plan = plan_batches(
            [len(s) for s in sequences],
            max_batch=self.max_batch,
            max_batch_tokens=self.max_batch_tokens,
            sort_by_length=self.sort_by_length,
        )
        for batch in plan:
            ids, mask = pad_batch([sequences[i] for i in batch], self.pad_id)
            pooled = self.model.pooled(ids, mask)
            out[batch] = l2_normalise(pooled) if normalise else pooled
        return out

    def embed(self, texts: Sequence[str], *, normalise: bool = True) -> Float32Array:
        """Sentence vectors for ``texts`` (truncated to the model's max tokens), in input order."""
        return self.embed_ids([t.ids for t in self.tokenize(texts)], normalise=normalise)
