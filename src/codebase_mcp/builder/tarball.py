"""Canonical layer tarballs, written by the builder itself (no storage driver in between).

A layer is a plain (uncompressed) tar in one canonical form, so that the same
files give the same bytes whoever writes them, root or a plain user:

- entries in walk order: a directory, then its children, siblings sorted by name
  (bytes); no entry for the root directory itself;
- names relative, without ``./``; PAX format (long names, xattrs), nothing else
  in extended headers (no atime/ctime, no user or group names);
- ownership numeric; files made by the builder itself are owned by root;
- mtimes clamped to ``SOURCE_DATE_EPOCH``;
- a hard link follows the first name of its file in walk order (the first name
  carries the data), whichever name the source had carry it.

:func:`tree_tar` writes a directory this way, :func:`canonical_tar` rewrites an
existing tar (mmdebstrap's root filesystem) into this form.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from codebase_mcp.errors import BuildError

CHUNK = 1 << 20
# Extended headers kept from a source tar: extended attributes (file capabilities).
KEPT_PAX_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")


def clean_name(name: str) -> str:
    """A member name without ``./``, empty components or slashes at either end."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def walk_key(name: str) -> tuple[bytes, ...]:
    """Walk order as a sort key: compare path components, not whole strings."""
    return tuple(clean_name(name).encode("utf-8", "surrogateescape").split(b"/"))


@dataclass(frozen=True)
class Entry:
    """One member to write: its header fields and where its data comes from."""

    info: tarfile.TarInfo
    source: Path | None = None  # a file on disk, for tree_tar
    offset: int = -1  # data offset in the source tar, for canonical_tar


@dataclass(frozen=True)
class Meta:
    """What a header says about a file besides its name and type."""

    mode: int
    uid: int
    gid: int
    mtime: int
    pax: tuple[tuple[str, str], ...] = ()


def _header(
    name: str, kind: bytes, meta: Meta, *, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = meta.mode & 0o7777
    info.uid, info.gid = meta.uid, meta.gid
    info.uname = info.gname = ""
    info.mtime = meta.mtime
    info.size = size if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.pax_headers = dict(sorted(meta.pax))
    return info


def _write(entries: list[Entry], out: BinaryIO, src_tar: BinaryIO | None = None) -> None:
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = entry.info
            if info.type != tarfile.REGTYPE or info.size == 0:
                tar.addfile(info)
            elif entry.source is not None:
                with entry.source.open("rb") as fh:
                    if os.fstat(fh.fileno()).st_size != info.size:
                        raise BuildError(f"{entry.source} changed while it was being archived")
                    tar.addfile(info, fh)
            else:
                assert src_tar is not None
                src_tar.seek(entry.offset)
                tar.addfile(info, _Window(src_tar, info.size))


class _Window:
    """``size`` bytes of a file from its current position, as a readable object."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh, self.left = fh, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.fh.read(n)
        if len(data) < n:
            raise BuildError("a source tar is truncated")
        self.left -= len(data)
        return data


# --- a directory -------------------------------------------------------------------
def walk(root: Path) -> Iterator[tuple[str, os.stat_result, Path]]:
    """(relative name, lstat, path) of everything under ``root``, in walk order."""

    def visit(directory: Path, prefix: str) -> Iterator[tuple[str, os.stat_result, Path]]:
        names = sorted(os.listdir(directory), key=os.fsencode)
        for name in names:
            path = directory / name
            rel = f"{prefix}{name}"
            st = path.lstat()
            yield rel, st, path
            if stat.S_ISDIR(st.st_mode):
                yield from visit(path, f"{rel}/")

    yield from visit(root, "")


def tree_entries(root: Path, epoch: int) -> list[Entry]:
    """The entries of a canonical tar of ``root``'s contents (owned by root, mtime epoch)."""
    entries: list[Entry] = []
    first_name: dict[tuple[int, int], str] = {}
    for rel, st, path in walk(root):
        common = Meta(st.st_mode, 0, 0, epoch)
        if stat.S_ISDIR(st.st_mode):
            entries.append(Entry(_header(rel, tarfile.DIRTYPE, common)))
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            entries.append(Entry(_header(rel, tarfile.SYMTYPE, common, linkname=target)))
        elif stat.S_ISREG(st.st_mode):
            inode = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and inode in first_name:
                link = _header(rel, tarfile.LNKTYPE, common, linkname=first_name[inode])
                entries.append(Entry(link))
                continue
            first_name[inode] = rel
            info = _header(rel, tarfile.REGTYPE, common, size=st.st_size)
            entries.append(Entry(info, source=path))
        else:
            raise BuildError(
                f"{path}: only files, directories and symbolic links can go into a layer"
            )
    return entries


def tree_tar(root: Path, out: BinaryIO, epoch: int) -> None:
    """Write the contents of ``root`` as a canonical layer to ``out``."""
    _write(tree_entries(root, epoch), out)


# --- an existing tar -----------------------------------------------------------------
def source_entries(src: BinaryIO, epoch: int, label: str) -> list[Entry]:
    """The members of a tar as canonical entries (walk order, hard links re-pointed)."""
    members: list[tarfile.TarInfo] = []
    with tarfile.open(fileobj=src, mode="r:") as tar:
        for member in tar:
            if member.issparse():
                raise BuildError(f"{label}: sparse file {member.name}")
            if member.ischr() or member.isblk():
                # mmdebstrap adds /dev/null & co.; a plain user cannot create device
                # nodes, and the runtime mounts its own /dev: layers have none.
                continue
            if member.isfifo():
                raise BuildError(f"{label}: FIFO {member.name} cannot go into a layer")
            if clean_name(member.name):
                members.append(member)
    by_name = {clean_name(m.name): m for m in members}
    members.sort(key=lambda m: walk_key(m.name))
    # Hard links: the first name of a file in walk order carries the data.
    carrier: dict[str, str] = {}  # name the source stored the data under → first name
    entries: list[Entry] = []
    for member in members:
        name = clean_name(member.name)
        pax = {k: v for k, v in member.pax_headers.items() if k.startswith(KEPT_PAX_PREFIXES)}
        common = Meta(
            member.mode, member.uid, member.gid, min(int(member.mtime), epoch),
            tuple(sorted(pax.items())),
        )  # fmt: skip
        data = member
        if member.islnk():
            target = clean_name(member.linkname)
            if target not in by_name:
                raise BuildError(f"{label}: {name} is a hard link to missing {target}")
            data = by_name[target]
        if data.isreg():
            key = clean_name(data.name)
            if key in carrier:
                entries.append(Entry(_header(name, tarfile.LNKTYPE, common, linkname=carrier[key])))
                continue
            carrier[key] = name
            info = _header(name, tarfile.REGTYPE, common, size=data.size)
            entries.append(Entry(info, offset=data.offset_data))
        elif member.isdir():
            entries.append(Entry(_header(name, tarfile.DIRTYPE, common)))
        elif member.issym():
            entries.append(Entry(_header(name, tarfile.SYMTYPE, common, linkname=member.linkname)))
        else:
            raise BuildError(f"{label}: unsupported member {member.name} (type {member.type!r})")
    return entries


def canonical_tar(source: Path, out: BinaryIO, epoch: int) -> None:
    """Rewrite the tar at ``source`` in canonical form to ``out``."""
    with source.open("rb") as src:
        entries = source_entries(src, epoch, str(source))
        _write(entries, out, src)
