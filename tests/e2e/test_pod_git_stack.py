"""The whole stack with git sources' options, real podman, test profile:

up --git-host --git-ssh-key --git-token-file --git-known-hosts → healthy (the server's
settings accept the mounted files: it refuses to start on a missing one) → inside the
server, each file at its setting's path, mode 0400, owned by the server's uid, the
server's own settings resolve them → neither `podman inspect` nor the logs hold the key
or the token → a second up without the options remembers them → down deletes the copy,
down --volumes the cache volume.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_pod_stack import built_images, cli, podman

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["built_images"]  # the session fixture, shared with test_pod_stack

KEY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    b"ZTJlLXRlc3Qta2V5LW5vdC1yZWFsLW5vdC11c2FibGU=\n"
    b"-----END OPENSSH PRIVATE KEY-----\n"
)
TOKEN = b"e2e-token-0f343b0931126a20f133d67c2b018a3b\n"
KNOWN_HOSTS = b"127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUyZS1vbmx5LW5vdC1yZWFs\n"
SECRET_LINES = [KEY.decode().splitlines()[1], TOKEN.decode().strip()]
# Run inside the server container by its own Python: the settings the server starts with.
SETTINGS_PROBE = """
import json, os, stat
from codebase_mcp.server.config import ServerSettings
c = ServerSettings().git_config()
out = {"hosts": [str(h) for h in c.hosts], "cache": str(c.cache_dir), "uid": os.getuid()}
for kind, path in (("ssh-key", c.ssh_key_file), ("token", c.token_file),
                   ("known-hosts", c.known_hosts_file)):
    info = os.stat(path)
    out[kind] = [str(path), oct(stat.S_IMODE(info.st_mode)), info.st_uid, info.st_size]
probe = os.path.join(str(c.cache_dir), "probe")
with open(probe, "w") as handle:
    handle.write("ok")
os.remove(probe)
print(json.dumps(out))
"""


@pytest.fixture
def git_stack(built_images: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    name = f"codebase-mcp-e2e-git-{os.getpid() % 100000}"
    env = {"CODEBASE_MCP_DATA_DIR": str(tmp_path / "data"), "CODEBASE_MCP_POD": name}
    files = {}
    for option, filename, data, mode in (
        ("--git-ssh-key", "id", KEY, 0o600),
        ("--git-token-file", "tok", TOKEN, 0o600),
        ("--git-known-hosts", "kh", KNOWN_HOSTS, 0o644),
    ):
        path = tmp_path / filename
        path.write_bytes(data)
        path.chmod(mode)
        files[option] = str(path)
    try:
        yield {"name": name, "env": env, "files": files, "data": tmp_path / "data"}
    finally:
        cli("down", "--volumes", env=env, check=False)


def up(stack: dict[str, Any], *extra: str) -> dict[str, Any]:
    result = cli("up", "--profile", "test", "--no-build", "--json", *extra, env=stack["env"])
    return dict(json.loads(result.stdout))


def test_up_with_git_credentials_mounts_files_only(git_stack: dict[str, Any]) -> None:
    name, env = git_stack["name"], git_stack["env"]
    options = [arg for pair in git_stack["files"].items() for arg in pair]
    state = up(git_stack, "--git-host", "127.0.0.1", *options)
    assert state["git_hosts"] == ["127.0.0.1"]
    server = f"{name}-server"
    probe = podman("exec", server, "python3", "-c", SETTINGS_PROBE)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["hosts"] == ["127.0.0.1"]
    assert seen["cache"] == "/var/cache/codebase-mcp/git"
    assert seen["uid"] == 10001
    sizes = {"ssh-key": len(KEY), "token": len(TOKEN), "known-hosts": len(KNOWN_HOSTS)}
    for kind, size in sizes.items():
        assert seen[kind] == [f"/run/secrets/git/{kind}", "0o400", 10001, size], kind
    # nothing secret in what podman shows, in the spec or in the server's log
    inspected = podman("container", "inspect", server).stdout
    spec = (git_stack["data"] / "pods" / name / "pod.yaml").read_text()
    logs = podman("logs", server)
    for text in (inspected, spec, logs.stdout + logs.stderr):
        assert not any(line in text for line in SECRET_LINES)
    (info,) = json.loads(inspected)
    git_env = sorted(v for v in info["Config"]["Env"] if v.startswith("CODEBASE_MCP_GIT_"))
    assert all(v.split("=", 1)[1].startswith(("/", "127.0.0.1")) for v in git_env), git_env

    # remembered: a plain up mounts them again; down deletes the private copy
    again = up(git_stack)
    assert again["git_files"] == {
        "known-hosts": git_stack["files"]["--git-known-hosts"],
        "ssh-key": git_stack["files"]["--git-ssh-key"],
        "token": git_stack["files"]["--git-token-file"],
    }
    assert podman("exec", server, "python3", "-c", SETTINGS_PROBE).returncode == 0
    down = cli("down", env=env).stdout
    assert "git credentials" in down
    assert not (git_stack["data"] / "pods" / name / "git").exists()
    assert podman("volume", "exists", f"{name}-git").returncode == 0
    cli("down", "--volumes", env=env)
    assert podman("volume", "exists", f"{name}-git").returncode != 0


def test_up_refuses_a_readable_key_before_touching_podman(git_stack: dict[str, Any]) -> None:
    key = Path(git_stack["files"]["--git-ssh-key"])
    key.chmod(0o644)
    result = cli("up", "--profile", "test", "--no-build", "--git-host", "127.0.0.1",
                 "--git-ssh-key", str(key), env=git_stack["env"], check=False)  # fmt: skip
    assert result.returncode == 32, result.stderr
    assert f"chmod 600 {key}" in result.stderr
    assert not any(line in result.stderr for line in SECRET_LINES)
    exists = subprocess.run(["podman", "pod", "exists", git_stack["name"]], check=False)
    assert exists.returncode != 0
