"""The sandbox's commands: the image's interpreter, no network, the same argv for everyone."""

from __future__ import annotations

from pathlib import Path

from codebase_mcp.builder import sandbox

MOUNTS = sandbox.Mounts(Path("/w/stage"), Path("/w/venv"), Path("/w/in"), Path("/w/tmp"))


def test_recipes_run_unshared_with_no_network_and_no_privileges() -> None:
    argv = sandbox.argv(Path("/s/trees/k"), "/opt/venv", MOUNTS, "true\n", 1767225600)
    assert argv[:7] == ["unshare", "--user", "--map-root-user", "--mount", "--net", "--fork", "--"]
    assert argv[-8:] == [
        "/s/trees/k", "/w/stage", "/opt/venv", "/w/venv", "/w/in", "/w/tmp", "true\n", "1767225600",
    ]  # fmt: skip
    outer = argv[argv.index("-c") + 1]
    assert 'mount -o remount,bind,ro "$root/mnt"' in outer  # the inputs are read-only
    assert 'exec chroot "$root" /usr/bin/env -i ' in outer  # nothing of the caller's environment
    assert "PYTHONHASHSEED=0" in outer and 'SOURCE_DATE_EPOCH="$8"' in outer


def test_wheels_are_installed_by_hash_without_dependencies_and_compiled_deterministically() -> None:
    script = sandbox.python_script("/opt/venv", "pip", skeleton=True, requirements=True)
    lines = script.splitlines()
    assert lines[0] == "umask 022"
    assert "cp -a /opt/venv/. /stage/opt/venv/" in lines  # the venv itself is in this layer
    (pip,) = [line for line in lines if " install " in line]
    assert pip.startswith("/opt/venv/bin/python /mnt/pip/pip install --no-index --no-deps")
    assert "--require-hashes" in pip and "--root /stage" in pip and "--no-compile" in pip
    assert lines[-1].endswith(
        "-m compileall -q -j1 --invalidation-mode unchecked-hash -s /stage -p / /stage/opt/venv/lib"
    )


def test_the_project_layer_installs_the_project_wheel_only() -> None:
    script = sandbox.python_script("/opt/venv", "pip", skeleton=False, requirements=False)
    assert "cp -a" not in script and "requirements" not in script
    assert "/mnt/app/*.whl" in script


def test_unpacking_keeps_no_owner() -> None:
    argv = sandbox.unpack_argv(Path("/s/sha256/abc"), Path("/s/trees/.x"))
    assert argv[0] == "tar" and "--no-same-owner" in argv
