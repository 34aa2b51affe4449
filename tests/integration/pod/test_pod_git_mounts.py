"""Git sources' volumes and credentials on real podman (root or rootless, as the test runs).

The spec is rendered by the real render for the installed podman, the credentials
are checked and copied by the real ``gitcreds`` and the cache volume created by
the real ``Podman``; then the server container of that spec, with only its image
and command swapped for a tiny probe image (made from this host's own binaries, so
no registry and no image build are needed), is played with ``podman kube play``.
Inside: each credential file at its setting's path, mode 0400, owned by the
server's uid, the same bytes, read-only; the cache writable by the server's uid.
Outside: the key and the token appear nowhere in ``podman inspect`` (env, args,
anything) nor in the spec. The whole stack with these options: tests/e2e/test_pod_git_stack.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from codebase_mcp.pod import gitcreds
from codebase_mcp.pod.features import detect_version, features_for
from codebase_mcp.pod.models import GitInputs, RenderInputs, names_for
from codebase_mcp.pod.podman import Podman
from codebase_mcp.pod.render import render
from codebase_mcp.proc import Runner

pytestmark = [pytest.mark.integration]

IMAGES = {
    "embedder": "localhost/codebase-mcp-embedder:unused",
    "postgres": "localhost/codebase-mcp-postgres:unused",
}
# Worthless stand-ins shaped like the real thing.
KEY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    b"aW50ZWdyYXRpb24tdGVzdC1rZXktbm90LXJlYWw=\n"
    b"-----END OPENSSH PRIVATE KEY-----\n"
)
TOKEN = b"itest-token-d41d8cd98f00b204e9800998ecf8427e\n"
KNOWN_HOSTS = b"127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qtb25seS1ub3QtcmVhbA\n"
# What must never leave the files: the key's body and the token.
SECRET_LINES = [KEY.decode().splitlines()[1], TOKEN.decode().strip()]
PROBE_BINARIES = ["/bin/sh", "/usr/bin/stat", "/usr/bin/cat", "/usr/bin/sleep", "/usr/bin/id"]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def shared_libraries(binary: str) -> set[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    return {part for line in out.splitlines() for part in line.split() if part.startswith("/")}


@pytest.fixture(scope="module")
def probe_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An image holding sh, stat, cat, sleep and id from this host (and their libraries)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    files = set(PROBE_BINARIES)
    for binary in PROBE_BINARIES:
        files |= shared_libraries(binary)
    tar_path = tmp_path_factory.mktemp("probe") / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(files):
            tar.add(os.path.realpath(path), arcname=path.lstrip("/"))
    ref = f"localhost/codebase-mcp-itest-probe-{os.getpid()}:1"
    podman("import", str(tar_path), ref)
    try:
        yield ref
    finally:
        podman("rmi", "--force", ref, check=False)


@pytest.fixture
def pod_name() -> Iterator[str]:
    name = f"cm-itest-git-{os.getpid() % 100000}"
    try:
        yield name
    finally:
        podman("pod", "rm", "--force", name, check=False)
        podman("volume", "rm", "--force", names_for(name).git_cache, check=False)


def server_only(spec: str, image: str) -> tuple[str, dict[str, Any]]:
    """The rendered Pod with only the server container (its image and command swapped)."""
    (pod,) = [d for d in yaml.safe_load_all(spec) if d]
    (server,) = [c for c in pod["spec"]["containers"] if c["name"] == "server"]
    server["image"] = image
    server["command"] = ["/usr/bin/sleep", "600"]
    server.pop("args", None)
    server.pop("startupProbe", None)
    server.pop("livenessProbe", None)
    server.pop("ports", None)
    # Keep the git parts of the env (and the rest): the DB password's secretKeyRef
    # needs a podman secret this test does not create.
    server["env"] = [e for e in server["env"] if "valueFrom" not in e]
    pod["spec"]["containers"] = [server]
    mounted = {m["name"] for m in server["volumeMounts"]}
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] in mounted]
    return yaml.safe_dump(pod, sort_keys=True), server


def test_git_credentials_and_cache_in_the_played_server_container(
    probe_image: str, pod_name: str, tmp_path: Path
) -> None:
    runner = Runner()
    rootless = os.geteuid() != 0
    sources = tmp_path / "home"
    sources.mkdir()
    for name, data, mode in (("id", KEY, 0o600), ("tok", TOKEN, 0o600),
                             ("kh", KNOWN_HOSTS, 0o644)):  # fmt: skip
        (sources / name).write_bytes(data)
        (sources / name).chmod(mode)
    files = {"ssh-key": str(sources / "id"), "token": str(sources / "tok"),
             "known-hosts": str(sources / "kh")}  # fmt: skip
    contents = gitcreds.read_all(files)
    pod_directory = tmp_path / "data" / "pods" / pod_name
    copy = gitcreds.stage(runner, gitcreds.credentials_dir(pod_directory), contents,
                          rootless=rootless)  # fmt: skip
    names = names_for(pod_name)
    podman_api = Podman(runner)
    assert podman_api.ensure_volume(names.git_cache, uid=10001, gid=10001) is True
    assert podman_api.ensure_volume(names.git_cache, uid=10001, gid=10001) is False
    inputs = RenderInputs(
        name=pod_name,
        images={**IMAGES, "server": probe_image},
        features=features_for(detect_version(runner)),
        git=GitInputs(hosts=("127.0.0.1",), credentials=tuple(contents), credentials_dir=str(copy)),
    )
    spec = render(inputs)
    played, server = server_only(spec, probe_image)
    spec_file = tmp_path / "server.yaml"
    spec_file.write_text(played)
    assert SECRET_LINES and not any(line in spec for line in SECRET_LINES)
    podman("kube", "play", str(spec_file))
    container = names.container("server")
    try:
        env = {e["name"]: e["value"] for e in server["env"]}
        paths = {
            "ssh-key": env["CODEBASE_MCP_GIT_SSH_KEY_FILE"],
            "token": env["CODEBASE_MCP_GIT_TOKEN_FILE"],
            "known-hosts": env["CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE"],
        }
        assert podman("exec", container, "/usr/bin/id", "-u").stdout.strip() == "10001"
        for kind, path in paths.items():
            mode_owner = podman("exec", container, "/usr/bin/stat", "-c", "%a %u %g", path)
            assert mode_owner.stdout.split() == ["400", "10001", "10001"], (kind, mode_owner)
            read = subprocess.run(["podman", "exec", container, "/usr/bin/cat", path],
                                  capture_output=True, check=True)  # fmt: skip
            assert read.stdout == contents[kind], kind  # type: ignore[index]
        directory = podman("exec", container, "/usr/bin/stat", "-c", "%a %u",
                           "/run/secrets/git").stdout.split()  # fmt: skip
        assert directory == ["500", "10001"]
        # read-only: the server cannot change or add a credential
        write = podman("exec", container, "/bin/sh", "-c", "echo x > /run/secrets/git/new",
                       check=False)  # fmt: skip
        assert write.returncode != 0
        # the cache: where the setting says, writable by the server's uid
        cache = env["CODEBASE_MCP_GIT_CACHE"]
        podman("exec", container, "/bin/sh", "-c", f"echo ok > {cache}/probe")
        assert podman("exec", container, "/usr/bin/cat", f"{cache}/probe").stdout == "ok\n"
        # nothing secret in what podman knows about the container: env, args, mounts
        inspected = podman("container", "inspect", container).stdout
        assert not any(line in inspected for line in SECRET_LINES)
        (info,) = json.loads(inspected)
        git_env = [v for v in info["Config"]["Env"] if v.startswith("CODEBASE_MCP_GIT_")]
        assert sorted(git_env) == sorted([
            "CODEBASE_MCP_GIT_CACHE=/var/cache/codebase-mcp/git",
            "CODEBASE_MCP_GIT_HOSTS=127.0.0.1",
            "CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE=/run/secrets/git/known-hosts",
            "CODEBASE_MCP_GIT_SSH_KEY_FILE=/run/secrets/git/ssh-key",
            "CODEBASE_MCP_GIT_TOKEN_FILE=/run/secrets/git/token",
        ])  # fmt: skip
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert mounts["/run/secrets/git"]["Source"] == str(copy)
        assert mounts["/run/secrets/git"]["RW"] is False
    finally:
        podman("pod", "rm", "--force", pod_name, check=False)
        # the copy is removable after the pod (rootless: it belongs to a sub-uid)
        assert gitcreds.remove(runner, copy, rootless=rootless) is True
        assert not copy.exists()
