"""One order for the entries of a layer, whatever storage driver computed it.

buildah commits each step as the diff its storage driver computes, and the
drivers list the same entries in different orders. overlay with native diff
(root on most kernels) walks the layer's directory: a directory, then its
children, siblings sorted by name. vfs and fuse-overlayfs (rootless), and
overlay where the kernel rules out native diff, sort the changed paths as
strings, so ``pkg-1.0.dist-info/…`` comes before ``pkg/__init__.py`` ('-' sorts
before '/'). The records themselves (headers and contents) are the same bytes.

:func:`canonical_layer` puts the records of a layer in walk order, moving whole
records (extended headers included) without re-encoding any: a layer already in
that order is left untouched, so root builds on overlay keep buildah's bytes and
rootless builds end up with exactly those bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.builder.store import file_sha256
from codebase_mcp.errors import BuildError
from codebase_mcp.proc import Runner

BLOCK = 512


@dataclass(frozen=True)
class Record:
    """One member of a tar file: where its bytes are, and what decides its place."""

    name: str
    start: int  # first byte, extended (PAX / GNU long name) headers included
    end: int  # one past its last data block
    hardlink_to: str | None = None


def walk_key(name: str) -> tuple[bytes, ...]:
    """Walk order as a sort key: compare path components, not whole strings."""
    clean = name.removeprefix("./").rstrip("/")
    return tuple(clean.encode("utf-8", "surrogateescape").split(b"/"))


def read_records(path: Path) -> tuple[list[Record], int, int]:
    """The records of an uncompressed tar, where they start, and where they end."""
    records = []
    with tarfile.open(path, mode="r:") as tar:
        if tar.pax_headers:
            raise BuildError(f"{path}: a layer with global PAX headers cannot be reordered")
        for member in tar:
            if member.issparse():
                raise BuildError(f"{path}: sparse file {member.name} in a layer")
            data_blocks = (member.size + BLOCK - 1) // BLOCK if member.isreg() else 0
            records.append(
                Record(
                    name=member.name,
                    start=member.offset,
                    end=member.offset_data + data_blocks * BLOCK,
                    hardlink_to=member.linkname if member.islnk() else None,
                )
            )
    if not records:
        return [], 0, 0
    for before, after in itertools.pairwise(records):
        if before.end != after.start:
            raise BuildError(f"{path}: unexpected bytes between {before.name} and {after.name}")
    return records, records[0].start, records[-1].end


def canonical_order(records: list[Record]) -> list[Record]:
    ordered = sorted(records, key=lambda r: walk_key(r.name))
    seen: set[tuple[bytes, ...]] = set()
    for record in ordered:
        # A hard link must follow the file it names; reordering cannot swap
        # which of the two carries the data.
        if record.hardlink_to is not None and walk_key(record.hardlink_to) not in seen:
            raise BuildError(
                f"layer entry {record.name} is a hard link to {record.hardlink_to}, which "
                "the canonical order puts after it",
                hint="avoid hard links in the files a COPY step adds",
            )
        seen.add(walk_key(record.name))
    return ordered


def canonical_layer(path: Path, out: Path) -> bool:
    """Write ``path`` with its records in walk order to ``out``; False (nothing
    written) when it already is in that order."""
    records, first, last = read_records(path)
    ordered = canonical_order(records)
    if ordered == records:
        return False
    with path.open("rb") as src, out.open("wb") as dst:
        dst.write(src.read(first))  # nothing before the first record, in practice
        for record in ordered:
            src.seek(record.start)
            remaining = record.end - record.start
            while remaining:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    raise BuildError(f"{path}: truncated at {record.name}")
                dst.write(chunk)
                remaining -= len(chunk)
        src.seek(last)
        shutil.copyfileobj(src, dst)  # the end-of-archive blocks, as written
    return True


# --- the image -------------------------------------------------------------------
UNCOMPRESSED = "application/vnd.oci.image.layer.v1.tar"


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Swap digests in a manifest or config, leaving every other byte as it was."""
    for old, new in replacements.items():
        if old not in text:
            raise BuildError(f"digest {old[:12]} is not where the image says it is")
        text = text.replace(old, new)
    return text


def rewrite_exported(export: Path) -> bool:
    """Put every layer of an image exported with ``podman push … dir:`` in walk order.

    Layer digests change, so do the config's diff_ids and the manifest: both are
    edited by swapping digest strings (same length), byte for byte otherwise, so
    the result is what buildah would have written for layers in that order.
    """
    manifest_path = export / "manifest.json"
    manifest_text = manifest_path.read_text()
    manifest = json.loads(manifest_text)
    replacements: dict[str, str] = {}
    for layer in manifest["layers"]:
        if layer["mediaType"] != UNCOMPRESSED:
            raise BuildError(f"layer {layer['digest']} is {layer['mediaType']}, not a plain tar")
        old = str(layer["digest"]).removeprefix("sha256:")
        reordered = export / f"{old}.reordered"
        if canonical_layer(export / old, reordered):
            new = file_sha256(reordered)
            reordered.replace(export / new)
            (export / old).unlink()
            replacements[old] = new
    if not replacements:
        return False
    old_config = str(manifest["config"]["digest"]).removeprefix("sha256:")
    config = substitute((export / old_config).read_text(), replacements).encode()
    new_config = hashlib.sha256(config).hexdigest()
    (export / new_config).write_bytes(config)
    (export / old_config).unlink()
    manifest_path.write_text(substitute(manifest_text, {**replacements, old_config: new_config}))
    return True


def canonicalise_image(
    runner: Runner, storage_args: tuple[str, ...], ref: str, work: Path
) -> str | None:
    """Re-tag ``ref`` as the same image with its layers in walk order.

    Returns the new image ID, or None when the layers already were in that order
    (overlay with native diff: nothing to do).
    """
    podman = ["podman", *storage_args]
    export = work / "image"
    runner.run([*podman, "push", "--quiet", ref, f"dir:{export}"])
    try:
        if not rewrite_exported(export):
            return None
        before = runner.run([*podman, "image", "inspect", "--format", "{{.Id}}", ref])
        pulled = runner.run([*podman, "pull", "--quiet", f"dir:{export}"]).stdout.split()
        image_id = pulled[-1].removeprefix("sha256:")
        runner.run([*podman, "tag", image_id, ref])
        # The image in driver order is of no further use; its cached steps stay.
        runner.run([*podman, "image", "rm", before.stdout.strip()], check=False)
        return image_id
    finally:
        shutil.rmtree(export, ignore_errors=True)
