"""A plain user builds the server image rootless and gets root's image, bit for bit.

Run as root (as CI is): tests/support/rootless.py creates a build user with its
own subuid and subgid ranges, home, podman storage (vfs, a plain user's default
here) and content-addressed store, and removes them afterwards. The user's
store holds the fetched inputs only (.debs and wheels, copied from root's
store): every layer is made again (mmdebstrap --mode=unshare, pip in the
unshared sandbox) and the image stored in the user's own storage with skopeo.
The server image is the one to use: it is the kind with Python layers (made by
the image's interpreter in an unshared chroot), where most differences between
root and rootless builds came from.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from codebase_mcp.builder.build import Builder, BuildResult
from tests.support.checkout import REPO
from tests.support.rootless import CLI, BuildUser, build_user, user_python

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = "server"


@pytest.fixture(scope="module")
def user() -> Iterator[BuildUser]:
    if os.geteuid() != 0:
        pytest.skip("needs root, to create the build user (CI runs as root)")
    with build_user(IMAGE) as made:
        yield made


@pytest.fixture(scope="module")
def root_build() -> BuildResult:
    (result,) = Builder.create(REPO).build([IMAGE])  # cached when test_build built it
    return result


def podman_inspect(argv_prefix: list[str], ref: str) -> dict[str, object]:
    out = subprocess.run(
        [*argv_prefix, "podman", "image", "inspect", ref], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(json.loads(out.stdout)[0])


@pytest.mark.timeout(1800)  # a cold rootless build, and root's if test_build did not run
def test_rootless_build_is_bit_for_bit_roots(user: BuildUser, root_build: BuildResult) -> None:
    staged = Builder.create(user.stage / "repo").plan(IMAGE)[2]
    assert staged.ref == root_build.ref  # same inputs, so the same content address

    python = user_python(user)
    if python is None:
        pytest.skip(f"no Python of this version that {user.name} can run")
    built = user.run(
        python, "-c", CLI, "image", "build", IMAGE, "--json", "--root", str(user.stage / "repo")
    )
    assert built.returncode == 0, built.stderr[-4000:]
    (result,) = json.loads(built.stdout)["images"]  # stdout holds the JSON alone
    assert result["cached"] is False  # really built, not found
    assert result["ref"] == root_build.ref
    assert result["image_id"] == root_build.image_id
    assert result["digest"] == root_build.digest  # the manifest, byte for byte

    # The user's own storage and store, not root's: a rootless build for real.
    theirs = podman_inspect(user.argv_prefix, result["ref"])
    ours = podman_inspect([], root_build.ref)
    assert theirs["RootFS"] == ours["RootFS"]  # every layer digest
    assert theirs["Config"] == ours["Config"]
    # Every layer made by the user (mmdebstrap --mode=unshare, the sandbox unshared).
    records = list((user.stage / "store" / "layers").glob("*.json"))
    assert len(records) == 4 and all(r.stat().st_uid == user.uid for r in records)
    graph = user.stage / "home" / ".local" / "share" / "containers" / "storage"
    assert graph.is_dir() and graph.stat().st_uid == user.uid
