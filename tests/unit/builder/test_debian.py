from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.builder import debian
from codebase_mcp.builder.definitions import DebianInputs
from codebase_mcp.errors import LockError

STATUS = """Package: libc6
Status: install ok installed
Version: 2.41-12
Architecture: amd64
Description: GNU C Library
 multi-line description

Package: removed-one
Status: deinstall ok config-files
Version: 1.0
Architecture: amd64

Package: python3
Status: install ok installed
Version: 3.13.5-1
Architecture: amd64
"""

PACKAGES = """Package: libc6
Version: 2.41-12
Architecture: amd64
Filename: pool/main/g/glibc/libc6_2.41-12_amd64.deb
Size: 2000
SHA256: {c}

Package: python3
Version: 3.13.5-1
Architecture: amd64
Filename: pool/main/p/python3-defaults/python3_3.13.5-1_amd64.deb
Size: 100
SHA256: {p}
"""

RELEASE = "Origin: Debian\nSuite: stable\nDate: Sat, 21 Nov 2026 09:15:44 UTC\n"


def capture(tmp_path: Path, status: str = STATUS) -> debian.Capture:
    (tmp_path / "status").write_text(status)
    (tmp_path / "deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages").write_text(
        PACKAGES.format(c="c" * 64, p="d" * 64)
    )
    (tmp_path / "deb.debian.org_debian_dists_trixie_InRelease").write_text(RELEASE)
    return debian.Capture(tmp_path)


def test_installed_packages_skips_removed_ones() -> None:
    assert debian.installed_packages(STATUS) == [
        ("libc6", "2.41-12", "amd64"),
        ("python3", "3.13.5-1", "amd64"),
    ]


def test_resolve_from_capture_pins_hash_url_and_snapshot(tmp_path: Path) -> None:
    inputs = DebianInputs(packages=["python3"])
    lock, epoch = debian.resolve_from_capture(inputs, capture(tmp_path))
    assert epoch == 1795252544
    assert lock.snapshot == "20261121T091544Z"
    libc = lock.packages[0]
    assert (libc.name, libc.version, libc.sha256, libc.size) == ("libc6", "2.41-12", "c" * 64, 2000)
    assert libc.url == "http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.41-12_amd64.deb"
    assert libc.snapshot_url == (
        "https://snapshot.debian.org/archive/debian/20261121T091544Z/"
        "pool/main/g/glibc/libc6_2.41-12_amd64.deb"
    )


def test_installed_package_missing_from_index_is_an_error(tmp_path: Path) -> None:
    status = (
        STATUS + "\nPackage: ghost\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"
    )
    with pytest.raises(LockError, match="ghost"):
        debian.resolve_from_capture(DebianInputs(packages=["python3"]), capture(tmp_path, status))


def test_lock_and_build_share_the_package_recipe() -> None:
    inputs = DebianInputs(
        packages=["b", "a"],
        path_excludes=["/x/*"],
        essential_hooks=["echo e"],
        customize_hooks=["echo c"],
    )
    lock = debian.lock_argv(inputs, "root", debian.Capture(Path("/cap")))
    build = debian.build_argv(inputs, "unshare", Path("/repo"), Path("/out.tar"), 86400 * 3)
    common = debian.common_options(inputs, "root")[2:]
    assert lock[2 : 2 + len(common)] == common
    assert build[2 : 2 + len(common)] == common
    assert "--include=a,b" in common and "--dpkgopt=path-exclude=/x/*" in common
    assert lock[-3:] == ["trixie", "/dev/null", "http://deb.debian.org/debian"]
    assert build[-1] == "deb [trusted=yes] copy:///repo ./"
    assert build[1] == "--mode=unshare"
    assert any("unchecked-hash" in a for a in build)
    assert any("\\1" + "3:" in a and "etc/shadow" in a for a in build)  # 3 days after epoch


def test_mode_follows_uid() -> None:
    assert debian.mode_for_uid(0) == "root"
    assert debian.mode_for_uid(1000) == "unshare"


def test_release_file_names_suite_and_hash() -> None:
    text = debian.release_text("trixie", b"Package: x\n", 0)
    assert "Suite: trixie\n" in text and "Codename: trixie\n" in text
    assert "Date: Thu, 01 Jan 1970 00:00:00 UTC" in text
    assert " 11 Packages" in text


def test_build_env_keeps_only_where_things_are(tmp_path: Path) -> None:
    host = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/dev",
        "TMPDIR": "/var/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",  # made root builds' .pyc differ from rootless ones
        "LANG": "de_DE.UTF-8",
        "https_proxy": "http://proxy:3128",
    }
    env = debian.build_env(86400, host)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/dev",
        "TMPDIR": "/var/tmp",
        "SOURCE_DATE_EPOCH": "86400",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    assert debian.build_env(1, {})["PATH"].startswith("/usr/local/sbin:")


def test_pyc_hook_recompiles_everything_in_a_clean_environment() -> None:
    hooks = debian.reproducibility_hooks(DebianInputs(packages=["python3"]), 0)
    (pyc,) = [h for h in hooks if "compileall" in h]
    # Nothing from the caller's environment (PYTHONDONTWRITEBYTECODE, PYTHONPYCACHEPREFIX)...
    assert 'chroot "$1" env -i PATH=/usr/bin:/bin PYTHONHASHSEED=0 /usr/bin/python3 -B' in pyc
    # ...and no timestamp-based .pyc written by the import system survives.
    assert "-m compileall -f " in pyc and "--invalidation-mode unchecked-hash" in pyc
