"""A throwaway local registry (Debian's docker-registry, distribution 2.8) for the tests."""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import stop


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    user: str | None = None
    password: str | None = None

    def auth_file(self, path: Path, password: str | None = None) -> Path:
        """A containers auth.json (what `podman login` writes) for this registry."""
        secret = f"{self.user}:{password or self.password}".encode()
        auths = {self.host: {"auth": base64.b64encode(secret).decode()}}
        path.write_text(json.dumps({"auths": auths}))
        path.chmod(0o600)
        return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd line, from the host's libcrypt (no htpasswd binary needed)."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
    hashed = lib.crypt(password.encode(), salt)
    if not hashed or not hashed.startswith(b"$2"):
        raise RuntimeError("this host's libcrypt cannot make bcrypt hashes")
    return str(hashed.decode())


@contextmanager
def start_registry(workdir: Path, *, auth: bool = False) -> Iterator[Registry]:
    port = free_port()
    (workdir / "data").mkdir(parents=True)
    registry = Registry(f"127.0.0.1:{port}")
    config = [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {workdir / 'data'}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if auth:
        registry = Registry(registry.host, "publisher", secrets.token_urlsafe(12))
        assert registry.password is not None
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(f"{registry.user}:{bcrypt_hash(registry.password)}\n")
        config += ["auth:", "  htpasswd:", "    realm: test", f"    path: {htpasswd}"]
    (workdir / "config.yml").write_text("\n".join(config) + "\n")
    log = (workdir / "registry.log").open("w")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(workdir / "config.yml")], stdout=log, stderr=log
    )
    try:
        wait_up(registry.host, proc)
        yield registry
    finally:
        stop(proc)
        log.close()


def wait_up(host: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}")
        try:
            # No proxy: this host may set one, and the registry is on loopback.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            opener.open(f"http://{host}/v2/", timeout=1)
            return
        except urllib.error.HTTPError:  # 401 with auth on: it is up
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry on {host} did not answer within {timeout}s")


def drop_storage(root: Path, runroot: Path) -> None:
    """Empty and delete a throwaway podman storage.

    Not `podman system reset`: besides the storage it removes every network
    on the host, which is shared configuration.
    """
    args = ["podman", "--root", str(root), "--runroot", str(runroot)]
    subprocess.run([*args, "rm", "-a", "-f"], capture_output=True, check=False)
    subprocess.run([*args, "rmi", "-a", "-f"], capture_output=True, check=False)
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for point in sorted(mounts, reverse=True):
        if point.startswith((f"{root}/", f"{runroot}/")):
            subprocess.run(["umount", point], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(runroot, ignore_errors=True)
