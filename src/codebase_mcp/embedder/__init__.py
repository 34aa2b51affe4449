"""A CPU sentence embedder (all-MiniLM-L6-v2 in numpy) behind a subset of Ollama's HTTP API.

Modules, from the bottom up:

- :mod:`.model_files`: find and describe the model directory (weights, tokenizer, configs).
- :mod:`.bert`: the BERT encoder forward pass, mean pooling and L2 normalisation in numpy.
- :mod:`.encoder`: tokenizer + model + the batching plan (length-sorted, under a token budget).
- :mod:`.batcher`: an asyncio micro-batcher in two lanes, queries before indexing
  (bounded memory under load).
- :mod:`.catalog`: the model names the embedder answers to and the Ollama-shaped model metadata.
- :mod:`.protocol`: parsing Ollama requests into typed values or Ollama-style errors (pure).
- :mod:`.app`: the Starlette application wiring the above together.

Nothing here imports torch. The package's ``__init__`` stays import-light: the
``embedder probe`` command must not pay for numpy.
"""

from __future__ import annotations
