"""``codebase-mcp index export | import``: a project's index as one deterministic file.

The file is what ``index push`` / ``index pull`` carry as an OCI artifact, so
``export`` -> ``push`` -> ``pull`` -> ``import`` moves an index between teams.
Postgres is found like the server finds it (DATABASE_URL, or DATABASE_HOST,
DATABASE_PORT, DATABASE_USER, DATABASE_NAME and DATABASE_PASSWORD[_FILE]);
``--database-url`` overrides them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from codebase_mcp import ui

database_url_option = click.option(
    "--database-url",
    metavar="DSN",
    help="postgresql://USER:PASS@HOST:PORT/DB; default: the server's DATABASE_URL or "
    "DATABASE_* settings (DATABASE_HOST, DATABASE_PORT, DATABASE_USER, DATABASE_NAME, "
    "DATABASE_PASSWORD_FILE). A password on argv is visible to other users: prefer the "
    "environment or DATABASE_PASSWORD_FILE.",
)


def _dsn(database_url: str | None) -> str:
    from pydantic import SecretStr

    from codebase_mcp.settings import DatabaseSettings

    settings = DatabaseSettings()
    if database_url:
        settings = settings.model_copy(update={"url": SecretStr(database_url)})
    return settings.dsn()


async def _embedder_digest(url: str | None, model: str | None) -> tuple[str, str | None]:
    from codebase_mcp.server.config import ServerSettings
    from codebase_mcp.server.embeddings import embedder_from_settings
    from codebase_mcp.settings import EmbedderSettings

    updates = {k: v for k, v in (("url", url), ("model", model)) if v}
    settings = EmbedderSettings().model_copy(update=updates)
    server = ServerSettings()
    if url:
        server = server.model_copy(update={"embedder_urls": ""})
    embedder = embedder_from_settings(server, settings)
    try:
        return embedder.model, await embedder.identity(fresh=True)
    finally:
        await embedder.aclose()


@click.command("export")
@click.argument("project")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the index file here (atomically; nothing is written on failure).",
)
@database_url_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export_cmd(project: str, output: Path, database_url: str | None, as_json: bool) -> None:
    """Export PROJECT's index (files, chunks, vectors, model identity) to a file.

    \b
    The same index gives the same bytes (sorted rows, no timestamps), so the
    same OCI digest after `codebase-mcp index push FILE REGISTRY/REPO:TAG`.
    The project must be fully embedded and its vectors in the embedding cache
    (they are when the embedder reports a weights digest).
    """
    from codebase_mcp.publish.run import write_atomic
    from codebase_mcp.server import indexfile, indexshare

    index = asyncio.run(indexshare.export_project(_dsn(database_url), project))
    data = indexfile.encode(index)
    write_atomic(output, data)
    result = {
        "project_id": index.project_id,
        "model_key": index.model.key,
        "files": len(index.files),
        "chunks": len(index.chunks),
        "bytes": len(data),
        "file": str(output),
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(str(output))
        ui.info(f"{result['files']} files, {result['chunks']} chunks, {len(data)} bytes")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "project_id", help="Import under this project id (default: the file's).")
@click.option(
    "--repo-root",
    metavar="PATH",
    help="Where the server sees your clone (container path, e.g. /repos/app): the files are "
    "recorded there, so indexing that clone later re-reads only files that differ.",
)
@click.option("--replace", is_flag=True, help="Replace the project if it exists already.")
@database_url_option
@click.option(
    "--embedder-url",
    metavar="URL",
    help="The server's embedder, asked for its weights digest (default: the server's "
    "CODEBASE_MCP_EMBEDDER_URLS, else EMBEDDER_URL).",
)
@click.option(
    "--embedder-model",
    metavar="NAME",
    help="The server's embedding model (default: EMBEDDER_MODEL, all-minilm).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def import_cmd(
    file: Path,
    project_id: str | None,
    repo_root: str | None,
    replace: bool,
    database_url: str | None,
    embedder_url: str | None,
    embedder_model: str | None,
    as_json: bool,
) -> None:
    """Import an index FILE (from `index export` or `index pull`) into the database.

    \b
    The whole file is verified first (gzip, member hashes, counts, each chunk's
    text hash): a truncated or damaged file is refused (exit 80) and nothing is
    written. An index made with other weights than the configured embedder's
    is refused (exit 81). Everything is written in one transaction, the
    embedding cache included. A concurrent import of the same project fails
    (exit 82); an existing project is kept unless --replace (exit 83).
    """
    from codebase_mcp.server import indexfile, indexshare

    index = indexfile.decode(file.read_bytes())
    model, digest = asyncio.run(_embedder_digest(embedder_url, embedder_model))
    indexfile.check_model(index.model, model, digest)
    index = indexshare.relocate(index, repo_root, project_id)
    result = asyncio.run(
        indexshare.import_index(_dsn(database_url), index, replace_existing=replace)
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(result.project_id)
        ui.info(f"{result.files} files, {result.chunks} chunks ({result.model_key})")
