"""The search-quality evaluation's library: pinned repositories, query files,
scoring and an embedding cache. ``eval/run.py`` and ``eval/fetch.py`` are the
thin scripts on top; nothing here is imported by the server."""
