"""The MCP server: semantic code search over PostgreSQL + pgvector.

Modules, from the bottom up:

- :mod:`.config`: server settings (``CODEBASE_MCP_*``) and the host/container root mapping.
- :mod:`.paths`: map host paths to container paths and refuse anything outside the roots.
- :mod:`.walker`: walk a repository with gitignore semantics, skipping binaries and vendored trees.
- :mod:`.chunker`: split source along syntax boundaries (tree-sitter) or line windows.
- :mod:`.embeddings`: the Ollama-API embedding client (batching, prefixes, split on 400).
- :mod:`.db`: the asyncpg pool and every SQL statement the server runs.
- :mod:`.indexer`: one indexing run (walk, diff by hash, chunk, embed, write, count).
- :mod:`.jobs`: the job worker (claim with SKIP LOCKED, heartbeat, recover stale jobs).
- :mod:`.search`: vector search, full-text search and their reciprocal-rank fusion.
- :mod:`.app`: the FastMCP application: tools, lifespan, ``/health``.
"""
