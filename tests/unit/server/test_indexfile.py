"""The shareable index file: round trip, determinism, corruption, model checks (pure)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from codebase_mcp.errors import IndexFileCorrupt, IndexModelMismatch, IndexNotExportable
from codebase_mcp.server import db, indexfile, indexshare
from codebase_mcp.server.indexfile import ChunkEntry, FileEntry, IndexFile, ModelIdentity

DIGEST = "ab" * 32
MODEL = ModelIdentity("all-minilm", 3, DIGEST)


def chunk(path: str, rel: str, line: int, content: str, vector: tuple[float, ...]) -> ChunkEntry:
    draft = ChunkEntry(
        path, rel, ".py", "python", line, line + 1, None, content, content, 0, b"", vector
    )
    return ChunkEntry(**{**draft.__dict__, "text_sha256": indexfile.chunk_text_hash(draft)})


def sample() -> IndexFile:
    files = [
        FileEntry("/repos/a", "/repos/a/b.py", "b.py", "h2", "python", 20, 1),
        FileEntry("/repos/a", "/repos/a/a.py", "a.py", "h1", "python", 10, 2),
    ]
    chunks = [
        chunk("/repos/a/b.py", "b.py", 1, "def b(): pass", (0.5, 0.25, -1.0)),
        chunk("/repos/a/a.py", "a.py", 5, "def a2(): pass", (0.0, 1.0, 0.0)),
        chunk("/repos/a/a.py", "a.py", 1, "def a(): pass", (1.0, 0.0, 0.125)),
    ]
    return IndexFile("proj", MODEL, files, chunks)


def test_round_trip_keeps_everything_in_sorted_order() -> None:
    index = sample()
    back = indexfile.decode(indexfile.encode(index))
    assert back.project_id == "proj" and back.model == MODEL
    assert [f.path for f in back.files] == ["/repos/a/a.py", "/repos/a/b.py"]
    assert [(c.path, c.start_line) for c in back.chunks] == [
        ("/repos/a/a.py", 1),
        ("/repos/a/a.py", 5),
        ("/repos/a/b.py", 1),
    ]
    assert sorted(back.chunks, key=ChunkEntry.sort_key) == sorted(
        index.chunks, key=ChunkEntry.sort_key
    )


def test_same_index_same_bytes_whatever_the_row_order() -> None:
    index = sample()
    shuffled = IndexFile("proj", MODEL, index.files[::-1], index.chunks[::-1])
    assert indexfile.encode(index) == indexfile.encode(shuffled) == indexfile.encode(sample())


def test_manifest_carries_identity_counts_and_member_hashes() -> None:
    raw = gzip.decompress(indexfile.encode(sample()))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getnames() == list(indexfile.MEMBERS)
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["model"]["key"] == f"v1|all-minilm|3|sha256:{DIGEST}"
    assert manifest["counts"] == {"files": 2, "chunks": 3}
    assert set(manifest["members"]) == {"files.jsonl", "chunks.jsonl", "vectors.f32"}
    assert manifest["members"]["vectors.f32"]["size"] == 3 * 3 * 4


@pytest.mark.parametrize("cut", [1, 10, 100, -1, -8, -30])
def test_truncated_file_is_refused(cut: int) -> None:
    data = indexfile.encode(sample())
    with pytest.raises(IndexFileCorrupt) as err:
        indexfile.decode(data[:cut])
    assert err.value.exit_code == 80 and "nothing was written" in (err.value.hint or "")


def test_flipped_byte_is_refused() -> None:
    data = bytearray(indexfile.encode(sample()))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(IndexFileCorrupt):
        indexfile.decode(bytes(data))


def rebuilt(edit: dict[str, bytes]) -> bytes:
    """The file with members replaced, gzip and tar intact (only the hashes can tell)."""
    raw = gzip.decompress(indexfile.encode(sample()))
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for info in src.getmembers():
            data = edit.get(info.name, src.extractfile(info).read())  # type: ignore[union-attr]
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def test_member_not_matching_its_hash_is_refused() -> None:
    with pytest.raises(IndexFileCorrupt, match="vectors.f32 does not match its sha256"):
        indexfile.decode(rebuilt({"vectors.f32": b"\0" * 36}))


def test_text_hash_not_of_its_text_is_refused() -> None:
    index = sample()
    bad = index.chunks[0].__dict__ | {"text_sha256": b"\1" * 32}
    data = indexfile.encode(IndexFile("proj", MODEL, index.files, [ChunkEntry(**bad)]))
    with pytest.raises(IndexFileCorrupt, match="text_sha256 is not its text's hash"):
        indexfile.decode(data)


def test_other_version_and_not_an_index() -> None:
    with pytest.raises(IndexFileCorrupt, match="not a gzip"):
        indexfile.decode(b"hello world, not gzip")
    manifest = json.loads(gzip.decompress(indexfile.encode(sample()))[512:].split(b"\n")[0])
    manifest["version"] = 99
    with pytest.raises(IndexFileCorrupt, match="format version 99"):
        indexfile.decode(rebuilt({"manifest.json": json.dumps(manifest).encode()}))


def test_model_check() -> None:
    indexfile.check_model(MODEL, "all-minilm", f"sha256:{DIGEST}")
    with pytest.raises(IndexModelMismatch) as err:
        indexfile.check_model(MODEL, "all-minilm", "cd" * 32)
    assert err.value.exit_code == 81 and "sha256:" + "cd" * 32 in err.value.message
    assert "re-index" not in err.value.message and "index the repository" in (err.value.hint or "")
    with pytest.raises(IndexModelMismatch, match="no digest"):
        indexfile.check_model(MODEL, "all-minilm", None)
    with pytest.raises(IndexModelMismatch) as err:
        indexfile.check_model(MODEL, "nomic-embed-text", f"sha256:{DIGEST}")
    assert "EMBEDDER_MODEL=all-minilm" in (err.value.hint or "")


def test_identity_from_key() -> None:
    assert ModelIdentity.from_key(MODEL.key) == MODEL
    assert ModelIdentity.from_key("v1|m|3|nodigest") is None
    assert ModelIdentity.from_key("garbage") is None


def export(keys: dict[str, int], vector: tuple[float, ...] = ()) -> db.ProjectExport:
    project = db.Project("proj", "all-minilm", 3)
    files = [FileEntry("/r", "/r/a.py", "a.py", "h", "python", 1, 1)]
    chunks = [
        ChunkEntry("/r/a.py", "a.py", ".py", "python", 1, 2, None, "x", "x", 0, b"\1" * 32, vector)
    ]
    return db.ProjectExport(project, keys, files, chunks)


def test_plan_export_needs_one_identity_covering_every_vector() -> None:
    planned = indexshare.plan_export(export({MODEL.key: 1}, (1.0, 0.0, 0.0)))
    assert planned.model == MODEL and planned.chunks[0].vector == (1.0, 0.0, 0.0)
    with pytest.raises(IndexNotExportable, match="no single model identity"):
        indexshare.plan_export(export({}, (1.0, 0.0, 0.0)))
    with pytest.raises(IndexNotExportable, match="without a vector"):
        indexshare.plan_export(export({MODEL.key: 1}))


def test_relocate_moves_paths_under_the_new_root() -> None:
    moved = indexshare.relocate(sample(), "/repos/mine/", "mine")
    assert moved.project_id == "mine"
    assert {f.path for f in moved.files} == {"/repos/mine/a.py", "/repos/mine/b.py"}
    assert {c.path for c in moved.chunks} == {"/repos/mine/a.py", "/repos/mine/b.py"}
    assert indexfile.decode(indexfile.encode(moved)).files[0].repo_root == "/repos/mine"
