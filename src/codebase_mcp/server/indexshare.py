"""``index export`` / ``index import``: the thin I/O layer between Postgres and indexfile.

Export reads one snapshot of a project (``db.read_project_export``), finds its
model identity in the embedding cache (the key whose vectors equal the
chunks'), and encodes it. Import decodes and verifies the whole file first,
checks the model against the configured embedder's, then writes everything in
one transaction (``db.import_project``), the embedding cache included: a
teammate who imports and then indexes their own clone embeds only what differs.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, replace

import asyncpg

from codebase_mcp.errors import IndexNotExportable, UsageError
from codebase_mcp.server import db
from codebase_mcp.server.indexfile import IndexFile, ModelIdentity


def plan_export(export: db.ProjectExport) -> IndexFile:
    """The file's content from what the database holds (pure); refuses a partial index."""
    project = export.project
    waiting = sum(1 for c in export.chunks if not c.vector or not c.text_sha256)
    if waiting:
        raise IndexNotExportable(
            f"project {project.id!r} has {waiting} chunk(s) without a vector yet",
            hint="wait until get_indexing_status shows semantic_progress 1.0, then export",
        )
    total = len(export.chunks)
    full = sorted(key for key, n in export.model_keys.items() if n >= total)
    model = ModelIdentity.from_key(full[0]) if len(full) == 1 else None
    if model is None:
        raise IndexNotExportable(
            f"project {project.id!r}: no single model identity (weights digest) covers its "
            f"vectors in the embedding cache (candidates: {sorted(export.model_keys) or 'none'})",
            hint="an export names the exact weights; re-index the project with the embedding "
            "cache on (CODEBASE_MCP_EMBEDDING_CACHE=true) and an embedder that reports a digest",
        )
    return IndexFile(project.id, model, export.files, export.chunks)


def relocate(index: IndexFile, repo_root: str | None, project_id: str | None) -> IndexFile:
    """The index under another project id and/or repository root (pure): the root is
    where the importing server sees the repository, so indexing that clone afterwards
    re-reads only the files whose content differs."""
    if project_id is not None and not project_id.strip():
        raise UsageError("--project must not be empty")
    root = posixpath.normpath(repo_root) if repo_root else None
    if root is not None and not root.startswith("/"):
        raise UsageError(f"--repo-root {repo_root!r} must be an absolute path")
    if root is None:
        return replace(index, project_id=project_id or index.project_id)
    new_path = {f.path: posixpath.join(root, f.rel_path) for f in index.files}
    return IndexFile(
        project_id or index.project_id,
        index.model,
        [replace(f, repo_root=root, path=new_path[f.path]) for f in index.files],
        [replace(c, path=new_path[c.path]) for c in index.chunks],
    )


@dataclass(frozen=True)
class ImportResult:
    project_id: str
    model_key: str
    files: int
    chunks: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def _connect(dsn: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await db._init_connection(conn)
    return conn


async def export_project(dsn: str, project_id: str) -> IndexFile:
    conn = await _connect(dsn)
    try:
        export = await db.read_project_export(conn, project_id)
    finally:
        await conn.close()
    if export is None:
        raise IndexNotExportable(
            f"no project {project_id!r} in this database",
            hint="list_projects() shows the projects (and check DATABASE_URL)",
        )
    return plan_export(export)


async def import_index(dsn: str, index: IndexFile, *, replace_existing: bool) -> ImportResult:
    conn = await _connect(dsn)
    try:
        await db.import_project(
            conn,
            index.project_id,
            index.model.name,
            index.model.dimension,
            index.model.key,
            index.files,
            index.chunks,
            replace=replace_existing,
        )
    finally:
        await conn.close()
    return ImportResult(index.project_id, index.model.key, len(index.files), len(index.chunks))
