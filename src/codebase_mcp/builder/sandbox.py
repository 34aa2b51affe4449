"""Run a layer's recipe with the image's own interpreter, in the image's root filesystem.

The Python layers must be made by the image's Python (its bytecode, its venv
paths), not the host's. The root filesystem layer is unpacked once per key into
``trees/<key>`` in the store, and each recipe runs in it with ``chroot``, inside
new user, mount and network namespaces (``unshare``): no network, no privileges
needed (root and a plain user run the very same command), and the tree itself
is not written. The recipe sees:

- ``/mnt``: its inputs (wheels, pip unpacked, requirements), read-only;
- ``/stage``: where it puts the layer's files (the layer is this directory's tar);
- ``/opt/venv`` (the venv path): a scratch venv that pip runs from;
- ``/tmp``: scratch; ``/dev/null`` the host's.

Everything here is pure: argv lists and scripts.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

# Mount points the tree gets when it is unpacked (relative to the tree).
MOUNT_DIRS = ("stage", "mnt", "tmp")

OUTER = """set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
root=$1 stage=$2 venv=$3 venvdir=$4 inputs=$5 tmp=$6 script=$7
mount --bind "$stage" "$root/stage"
mount --bind "$venvdir" "$root$venv"
mount --bind "$inputs" "$root/mnt"
mount -o remount,bind,ro "$root/mnt"
mount --bind "$tmp" "$root/tmp"
mount --bind /dev/null "$root/dev/null"
exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp TMPDIR=/tmp LC_ALL=C.UTF-8 \\
  TZ=UTC PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 SOURCE_DATE_EPOCH="$8" /bin/sh -euc "$script"
"""


@dataclass(frozen=True)
class Mounts:
    """Host directories behind the sandbox's mount points."""

    stage: Path
    venv_dir: Path
    inputs: Path
    tmp: Path


def argv(tree: Path, venv: str, mounts: Mounts, script: str, epoch: int) -> list[str]:
    """unshare + chroot into ``tree`` running ``script`` (sh) with the given mounts."""
    return [
        "unshare", "--user", "--map-root-user", "--mount", "--net", "--fork", "--",
        "/bin/sh", "-c", OUTER, "sandbox",
        str(tree), str(mounts.stage), venv, str(mounts.venv_dir), str(mounts.inputs),
        str(mounts.tmp), script, str(epoch),
    ]  # fmt: skip


def unpack_argv(blob: Path, target: Path) -> list[str]:
    """Unpack a root filesystem layer for running recipes in (owner: whoever unpacks)."""
    return ["tar", "--extract", "--file", str(blob), "--directory", str(target), "--no-same-owner"]


PIP_FLAGS = (
    "--no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check "
    "--root-user-action=ignore --no-warn-script-location --quiet --root /stage"
)
# pip's own modules, unpacked on /stage, compiled once by the image's interpreter.
COMPILE_PIP = "/usr/bin/python3 -m compileall -q -j1 --invalidation-mode unchecked-hash /stage\n"


def python_script(venv: str, pip: str, *, skeleton: bool, requirements: bool) -> str:
    """Install wheels from /mnt into /stage as they would be in ``venv``; deterministic pyc.

    The venv is made at ``venv`` (a scratch mount) and pip runs from it with
    ``--root /stage``, so /stage gets exactly the installed files with the
    venv's paths (scripts start ``#!{venv}/bin/python``). With ``skeleton``
    the venv itself (pyvenv.cfg, bin/python, ...) goes into the layer too.
    Bytecode: hash-based and never re-checked, one process, fixed hash seed,
    compiled as if in place (-s /stage -p /).
    """
    v = shlex.quote(venv)
    what = (
        "--require-hashes --find-links /mnt/wheels -r /mnt/requirements.txt"
        if requirements
        else "/mnt/app/*.whl"
    )
    lines = [
        "umask 022",
        f"/usr/bin/python3 -m venv --without-pip {v}",
        f"mkdir -p /stage{v}",
    ]
    if skeleton:
        lines.append(f"cp -a {v}/. /stage{v}/")
    lines += [
        f"{v}/bin/python /mnt/{shlex.quote(pip)}/pip install {PIP_FLAGS} {what}",
        f"{v}/bin/python -m compileall -q -j1 --invalidation-mode unchecked-hash "
        f"-s /stage -p / /stage{v}/lib",
    ]
    return "\n".join(lines) + "\n"
