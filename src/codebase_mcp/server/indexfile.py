"""The shareable index file (``index export`` / ``index import``): pure bytes in, bytes out.

A gzip'd tar (stdlib only, so ``tar tzf FILE`` lists it) of four members, in this order:

- ``manifest.json``: format and version, the model's identity (name, dimension,
  weights digest and the embedding cache's ``model_key``), the project id, the
  counts, and the sha256 and size of every other member;
- ``files.jsonl``: one file a line, sorted by path;
- ``chunks.jsonl``: one chunk a line, sorted by (path, start line, end line,
  symbol, text hash): where it is, its code, its lexical text and the sha256 of
  the text the model read (``text_sha256``);
- ``vectors.f32``: the chunks' vectors in the same order, little-endian float32
  (what pgvector stores: exact, no text round trip).

Deterministic: canonical JSON, sorted rows, tar members with mtime 0, uid/gid 0
and no names, gzip with mtime 0, no file name and a fixed level. The same index
gives the same bytes, hence the same OCI digest (``index push``).

The lexical index (BM25 postings) is not in the file: it is rebuilt on import
from each chunk's ``search_text`` with the importing server's own SQL
(``db.add_lexical``). Term ids are local to a database, postings are a pure
function of the text, and this keeps one definition of the terms.

:func:`decode` checks everything before anything is written: gzip CRC and
length (truncation), the member list, each member's sha256, counts, the
vector length, and that each chunk's ``text_sha256`` is the hash of its text.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from codebase_mcp.errors import IndexFileCorrupt, IndexModelMismatch
from codebase_mcp.server.chunker import Chunk, embedding_text
from codebase_mcp.server.embedcache import cache_key, normalise_digest, text_sha256

FORMAT = "codebase-mcp-index"
VERSION = 1
MEMBERS = ("manifest.json", "files.jsonl", "chunks.jsonl", "vectors.f32")
GZIP_LEVEL = 6


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    dimension: int
    digest: str  # hex sha256 of the weights (as the embedder reports it)

    @property
    def key(self) -> str:
        key = cache_key(self.name, self.dimension, self.digest)
        assert key is not None
        return key

    @classmethod
    def from_key(cls, key: str) -> ModelIdentity | None:
        """``v1|MODEL|DIM|sha256:DIGEST`` -> identity (None: not such a key)."""
        parts = key.split("|")
        if len(parts) != 4 or not parts[2].isdigit() or not parts[3].startswith("sha256:"):
            return None
        digest = normalise_digest(parts[3])
        if not digest or not parts[1]:
            return None
        return cls(parts[1], int(parts[2]), digest)


@dataclass(frozen=True)
class FileEntry:
    repo_root: str
    path: str
    rel_path: str
    content_hash: str
    language: str | None
    size_bytes: int
    chunk_count: int


@dataclass(frozen=True)
class ChunkEntry:
    path: str  # the file's path (FileEntry.path)
    rel_path: str
    extension: str
    language: str | None
    start_line: int
    end_line: int
    symbol: str | None
    content: str
    search_text: str
    embed_rank: int
    text_sha256: bytes
    vector: tuple[float, ...]

    def sort_key(self) -> tuple[str, int, int, str, bytes]:
        return (self.path, self.start_line, self.end_line, self.symbol or "", self.text_sha256)


@dataclass(frozen=True)
class IndexFile:
    project_id: str
    model: ModelIdentity
    files: list[FileEntry]
    chunks: list[ChunkEntry]


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _jsonl(rows: Sequence[dict[str, object]]) -> bytes:
    return b"".join(_canonical(row) + b"\n" for row in rows)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunk_text_hash(chunk: ChunkEntry) -> bytes:
    """The hash the indexer stores for this chunk (chunker.embedding_text)."""
    text = embedding_text(
        chunk.rel_path, Chunk(chunk.start_line, chunk.end_line, chunk.content, chunk.symbol)
    )
    return text_sha256(text)


def encode(index: IndexFile) -> bytes:
    """The file's bytes: the same index (in any row order) gives the same bytes."""
    files = sorted(index.files, key=lambda f: f.path)
    chunks = sorted(index.chunks, key=ChunkEntry.sort_key)
    dim = index.model.dimension
    files_data = _jsonl([asdict(f) for f in files])
    chunk_rows: list[dict[str, object]] = []
    vectors = bytearray()
    for c in chunks:
        if len(c.vector) != dim:
            raise ValueError(f"chunk {c.path}:{c.start_line} has {len(c.vector)} dimensions")
        row = asdict(c)
        row.pop("vector")
        row["text_sha256"] = c.text_sha256.hex()
        chunk_rows.append(row)
        vectors += struct.pack(f"<{dim}f", *c.vector)
    payload = {
        "files.jsonl": files_data,
        "chunks.jsonl": _jsonl(chunk_rows),
        "vectors.f32": bytes(vectors),
    }
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "project_id": index.project_id,
        "model": {
            "name": index.model.name,
            "dimension": dim,
            "digest": f"sha256:{index.model.digest}",
            "key": index.model.key,
        },
        "counts": {"files": len(files), "chunks": len(chunks)},
        "members": {
            name: {"sha256": _sha(data), "size": len(data)} for name, data in payload.items()
        },
    }
    members = {"manifest.json": _canonical(manifest) + b"\n", **payload}
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in MEMBERS:
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=out, mtime=0, compresslevel=GZIP_LEVEL
    ) as gz:
        gz.write(tar_buffer.getvalue())
    return out.getvalue()


def _corrupt(what: str) -> IndexFileCorrupt:
    return IndexFileCorrupt(
        f"the index file is not usable: {what}",
        hint="nothing was written; export it again (codebase-mcp index export) or pull it "
        "again by digest (codebase-mcp index pull REGISTRY/REPO@sha256:...)",
    )


def _members(data: bytes) -> dict[str, bytes]:
    try:
        raw = gzip.decompress(data)
    except EOFError as exc:
        raise _corrupt("it is truncated (the gzip stream ends early)") from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise _corrupt(f"it is not a gzip file or is damaged ({exc})") from exc
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if not info.isfile() or info.name not in MEMBERS or info.name in members:
                    raise _corrupt(f"unexpected member {info.name!r}")
                extracted = tar.extractfile(info)
                assert extracted is not None
                members[info.name] = extracted.read()
    except tarfile.TarError as exc:
        raise _corrupt(f"the tar inside is damaged ({exc})") from exc
    missing = [name for name in MEMBERS if name not in members]
    if missing:
        raise _corrupt(f"member(s) missing: {', '.join(missing)}")
    return members


def _manifest(raw: bytes) -> dict[str, object]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise _corrupt(f"manifest.json is not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _corrupt("manifest.json does not describe a codebase-mcp index")
    if manifest.get("version") != VERSION:
        raise IndexFileCorrupt(
            f"the index file has format version {manifest.get('version')!r}; "
            f"this codebase-mcp reads version {VERSION}",
            hint="export it with the same codebase-mcp version as the importing server",
        )
    return manifest


def decode(data: bytes) -> IndexFile:
    """Read and verify the whole file; any defect raises IndexFileCorrupt (exit 80)."""
    members = _members(data)
    manifest = _manifest(members["manifest.json"])
    try:
        declared = manifest["members"]
        if not isinstance(declared, dict):
            raise TypeError("members is not an object")
        for name in MEMBERS[1:]:
            entry = declared[name]
            if entry["size"] != len(members[name]) or entry["sha256"] != _sha(members[name]):
                raise _corrupt(f"{name} does not match its sha256 in manifest.json")
        model_info = manifest["model"]
        if not isinstance(model_info, dict):
            raise TypeError("model is not an object")
        model = ModelIdentity.from_key(str(model_info["key"]))
        if model is None or (model.name, model.dimension, f"sha256:{model.digest}") != (
            model_info["name"],
            model_info["dimension"],
            model_info["digest"],
        ):
            raise _corrupt("the model identity in manifest.json is inconsistent")
        project_id = manifest["project_id"]
        counts = manifest["counts"]
        if not isinstance(project_id, str) or not project_id or not isinstance(counts, dict):
            raise TypeError("project_id or counts missing")
        files = [FileEntry(**json.loads(line)) for line in members["files.jsonl"].splitlines()]
        rows = [json.loads(line) for line in members["chunks.jsonl"].splitlines()]
    except IndexFileCorrupt:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(f"manifest or rows malformed ({type(exc).__name__}: {exc})") from exc
    if counts.get("files") != len(files) or counts.get("chunks") != len(rows):
        raise _corrupt("the row counts do not match manifest.json")
    dim = model.dimension
    vectors = members["vectors.f32"]
    if len(vectors) != len(rows) * dim * 4:
        raise _corrupt(f"vectors.f32 holds {len(vectors)} bytes, not {len(rows)} x {dim} float32")
    paths = {f.path for f in files}
    chunks: list[ChunkEntry] = []
    for i, row in enumerate(rows):
        try:
            sha = bytes.fromhex(row.pop("text_sha256"))
            vector = struct.unpack_from(f"<{dim}f", vectors, i * dim * 4)
            chunk = ChunkEntry(**row, text_sha256=sha, vector=vector)
        except (KeyError, TypeError, ValueError) as exc:
            raise _corrupt(f"chunk {i + 1} is malformed ({exc})") from exc
        if chunk.path not in paths:
            raise _corrupt(f"chunk {i + 1} belongs to no file of the index ({chunk.path})")
        if chunk.text_sha256 != chunk_text_hash(chunk):
            raise _corrupt(f"chunk {i + 1} ({chunk.rel_path}): text_sha256 is not its text's hash")
        chunks.append(chunk)
    return IndexFile(project_id, model, files, chunks)


def check_model(index_model: ModelIdentity, server_model: str, digest: str | None) -> None:
    """Refuse an index made with other weights than the server's embedder (pure)."""
    ours = normalise_digest(digest)
    if (index_model.name, index_model.digest) == (server_model, ours):
        return
    got = f"{server_model} (weights sha256:{ours})" if ours else f"{server_model} (no digest)"
    raise IndexModelMismatch(
        f"the index was made with {index_model.name} (weights sha256:{index_model.digest}, "
        f"{index_model.dimension} dimensions); the configured embedder serves {got}",
        hint=f"vectors of other weights cannot be compared: configure EMBEDDER_MODEL="
        f"{index_model.name} with those weights, or index the repository yourself "
        "(start_indexing_background) instead of importing",
    )
