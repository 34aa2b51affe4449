"""Resolve Python requirements to exact wheels (version, URL, sha256) with pip.

pip does the resolving (``pip install --dry-run --report``); this module only
builds the argv and reads the report. It resolves for a *target* interpreter
and platform, so the host (Python 3.11) can lock wheels for an image's Python
(Debian trixie: 3.13). pip's host configuration (extra indexes, find-links,
constraints) is switched off so the lock names public PyPI URLs only.

Stdlib-only on purpose: ``python -m codebase_mcp.builder.pyresolve`` writes the
development lock before the project's own environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.errors import LockError
from codebase_mcp.proc import Runner

PYPI_SIMPLE = "https://pypi.org/simple"


@dataclass(frozen=True)
class Target:
    """The interpreter and platform wheels are chosen for."""

    python_version: str  # "3.13"
    platform: str | None = None  # "manylinux_2_41_x86_64"; None: the running host

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")

    def platforms(self) -> list[str]:
        """Every platform tag the target accepts, newest first.

        pip (before 24) does not widen ``manylinux_2_X`` to older glibc versions
        by itself, so a trixie target (glibc 2.41) lists 2.41 down to 2.5.
        """
        if self.platform is None:
            return []
        match = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", self.platform)
        if match is None:
            return [self.platform]
        major, minor, arch = int(match[1]), int(match[2]), match[3]
        tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{arch}" for m, name in legacy.items() if m <= minor]
        return tags


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    url: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "url": self.url,
            "sha256": self.sha256,
        }


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def clean_pip_env() -> dict[str, str]:
    """pip's environment with host-specific index configuration removed.

    Keeps the certificate settings (this host's TLS goes through a proxy whose
    CA is only in the system store) and drops every other PIP_* variable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if cert:
        env["PIP_CERT"] = cert
    return env


def report_argv(
    python: str,
    requirements: Sequence[str],
    target: Target,
    report_path: Path,
    *,
    no_deps: bool = False,
    index_url: str = PYPI_SIMPLE,
) -> list[str]:
    argv = [
        python,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--only-binary=:all:",
        "--index-url",
        index_url,
        "--report",
        str(report_path),
    ]
    if target.platform is not None:
        argv += [
            "--python-version",
            target.python_version,
            "--implementation",
            "cp",
            "--abi",
            target.abi,
            *[arg for tag in target.platforms() for arg in ("--platform", tag)],
            "--target",
            str(report_path.parent / "target"),
        ]
    if no_deps:
        argv.append("--no-deps")
    return [*argv, *requirements]


def parse_report(report: dict[str, object]) -> list[Wheel]:
    wheels: list[Wheel] = []
    install = report.get("install")
    if not isinstance(install, list):
        raise LockError("pip's resolution report has no 'install' list")
    for item in install:
        meta = item["metadata"]
        info = item["download_info"]
        url = str(info["url"])
        archive = info.get("archive_info", {})
        sha = archive.get("hashes", {}).get("sha256")
        if sha is None and str(archive.get("hash", "")).startswith("sha256="):
            sha = str(archive["hash"]).split("=", 1)[1]
        if sha is None:
            raise LockError(f"pip reported no sha256 for {url}")
        wheels.append(
            Wheel(
                name=canonical_name(str(meta["name"])),
                version=str(meta["version"]),
                filename=url.rsplit("/", 1)[-1].split("#", 1)[0],
                url=url.split("#", 1)[0],
                sha256=str(sha),
            )
        )
    return sorted(wheels, key=lambda w: w.name)


def resolve(
    requirements: Sequence[str],
    target: Target,
    *,
    python: str = sys.executable,
    no_deps: bool = False,
    runner: Runner | None = None,
) -> list[Wheel]:
    """Ask pip which wheels satisfy ``requirements`` on ``target``."""
    if not requirements:
        return []
    runner = runner or Runner()
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-pip-") as tmp:
        report_path = Path(tmp) / "report.json"
        runner.run(
            report_argv(python, requirements, target, report_path, no_deps=no_deps),
            env=clean_pip_env(),
            hint="check the network to PyPI and that every requirement has a wheel for "
            f"Python {target.python_version} on {target.platform or 'this host'}",
        )
        return parse_report(json.loads(report_path.read_text()))


def project_requirements(pyproject: Path, extras: Iterable[str]) -> list[str]:
    """The project's base dependencies plus those of the named extras."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    reqs = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise LockError(
                f"pyproject.toml has no optional-dependencies group '{extra}'",
                hint=f"groups defined: {', '.join(sorted(optional))}",
            )
        reqs += optional[extra]
    return sorted(set(reqs))


def requirements_lock_text(wheels: Iterable[Wheel], header: str) -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    for w in sorted(wheels, key=lambda w: w.name):
        lines.append(f"{w.name}=={w.version} \\\n    --hash=sha256:{w.sha256}")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the development lock (requirements/dev.lock) for the host Python."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--extras", default="server,embedder,dev")
    parser.add_argument("--no-deps", action="append", default=[], metavar="REQ")
    parser.add_argument("-o", "--output", type=Path, default=Path("requirements/dev.lock"))
    args = parser.parse_args(argv)
    reqs = project_requirements(args.pyproject, args.extras.split(","))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = Target(python_version=version)
    wheels = resolve(reqs, target)
    wheels += resolve(args.no_deps, target, no_deps=True)
    header = (
        f"Development lock for Python {version} on this platform: do not edit.\n"
        f"Regenerate with `make lock-dev` (extras: {args.extras}; "
        f"without dependencies: {', '.join(args.no_deps) or 'none'})."
    )
    write_atomic(args.output, requirements_lock_text(wheels, header))
    print(f"wrote {args.output} ({len(wheels)} wheels)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
