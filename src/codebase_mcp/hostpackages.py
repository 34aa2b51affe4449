"""The one list of Debian packages this project needs on a host, and what each provides.

``codebase-mcp doctor`` checks every entry (is what it provides there?) and
``doctor --fix`` installs the missing ones; ``.ci/run`` goes through ``doctor --fix
--tests``, and the README names that command, not a copy of this list.

Not here: what it takes to clone the project and run the doctor at all (git, make,
python3-venv, ca-certificates for pip): that is ``BOOTSTRAP`` in ``.ci/run``, the
same packages the README's first command installs.
:mod:`codebase_mcp.proc` takes its "install it with" hints from here too.

Stdlib only: :mod:`codebase_mcp.proc` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# When a missing package is a failure:
#   always   - every user, root or not (building and running the stack)
#   rootless - a plain user (root's `--fix` installs them too: the users of the host need them)
#   optional - never (a warning: one feature needs it)
#   tests    - only with `doctor --tests` (what `make test` needs beyond the stack)
Need = Literal["always", "rootless", "optional", "tests"]


@dataclass(frozen=True)
class Package:
    name: str  # the Debian package
    provides: str  # a program on PATH, "helper:NAME" (podman's helper_binaries_dir), or a path
    need: Need
    purpose: str

    @property
    def check_name(self) -> str:
        """What the doctor's check is called: the program or helper (a file: the package)."""
        if self.provides.startswith("/"):
            return self.name
        return self.provides.removeprefix("helper:")


PACKAGES: tuple[Package, ...] = (
    Package("podman", "podman", "always", "runs the pod (`podman kube play`)"),
    Package(
        "catatonit",
        "helper:catatonit",
        "always",
        "the pause process of every pod: `kube play` builds its pause image from it "
        "(Debian's podman only recommends it)",
    ),
    Package("runc", "runc", "always", "OCI runtime that works on hybrid cgroups (crun refuses)"),
    Package(
        "skopeo",
        "skopeo",
        "always",
        "stores each image assembled from its layers (`skopeo copy oci:DIR "
        "containers-storage:REF`), pushes and pulls images and index artifacts",
    ),
    Package("mmdebstrap", "mmdebstrap", "always", "builds the images' Debian root filesystems"),
    Package("dpkg-dev", "dpkg-scanpackages", "always", "indexes the locked .debs for mmdebstrap"),
    Package(
        "debian-archive-keyring",
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "always",
        "verifies the Debian mirror when locking (always there on Debian; not on Ubuntu)",
    ),
    Package("uidmap", "newuidmap", "rootless", "subordinate ids (rootless podman, mmdebstrap)"),
    Package("slirp4netns", "slirp4netns", "rootless", "networking of rootless pods"),
    Package("fuse-overlayfs", "fuse-overlayfs", "optional", "overlay storage for plain users"),
    Package("docker-registry", "docker-registry", "tests", "a local registry for publish tests"),
    # The builder assembles images without buildah (docs/builder.md); tests still use it to
    # make altered copies of built images (a substitute, a stand-in embedder).
    Package("buildah", "buildah", "tests", "alters built images in the publish and e2e tests"),
)


def wanted(*, tests: bool) -> tuple[Package, ...]:
    """The packages ``doctor --fix`` installs: everything, ``tests`` ones only when asked."""
    return tuple(p for p in PACKAGES if tests or p.need != "tests")


def package_for_program(program: str) -> str | None:
    """The Debian package that provides ``program`` (a name on PATH), if it is in the list."""
    for package in PACKAGES:
        if package.provides == program:
            return package.name
    return None
