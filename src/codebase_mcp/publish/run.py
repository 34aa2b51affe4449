"""Run a publish: build/check every image, push all, then write the results.

Order matters for "no partial results": every image is found (or built) and
its SBOM checked before the first push; the digest file and the SBOM files are
written (each atomically) only after every push and tag succeeded.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.builder.substitute import Pin, record
from codebase_mcp.errors import CommandFailed, PublishError
from codebase_mcp.proc import Runner
from codebase_mcp.publish import plan as planning
from codebase_mcp.publish.images import LocalImage, local_image, sbom_bytes


@dataclass(frozen=True)
class Published:
    name: str
    source: str
    reference: str  # REGISTRY/REPO/NAME@sha256:…
    digest: str
    tags: list[str]
    sbom: str | None  # path of the SPDX file written, if any

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PublishRequest:
    destination: str
    names: list[str]
    tags: list[str]
    digestfile: Path | None = None
    tls_verify: bool = True
    sign_by: str | None = None
    build: bool = True
    store: Path | None = None
    records: Path | None = None  # where to record digest per input hash (substituters)


def publish(root: Path, request: PublishRequest, runner: Runner | None = None) -> list[Published]:
    runner = runner or Runner()
    destination = planning.parse_destination(request.destination)
    planning.check_tags(request.tags)
    images: list[LocalImage] = [
        local_image(root, name, runner=runner, build=request.build, store=request.store)
        for name in request.names
    ]
    sboms = {}
    for image in images:
        with ui.step(f"{image.name}: SBOM, checked against the image"):
            sboms[image.name] = sbom_bytes(root, image, "spdx", runner)
    plans = planning.plan_push(
        destination, [(i.name, i.ref, i.input_hash) for i in images], request.tags
    )
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-publish-") as tmp:
        for p in plans:
            with ui.step(f"{p.name}: push {p.source} → {p.target}:{p.hash_tag}"):
                digests[p.name] = _push(p, Path(tmp), request, runner)
            for argv in p.tag_argvs(
                digests[p.name], tls_verify=request.tls_verify, sign_by=request.sign_by
            ):
                ui.info(f"    tag {argv[-1].removeprefix('docker://')}")
                _run_registry(argv, p.target, runner)
    results = []
    sbom_dir = request.digestfile.parent if request.digestfile else None
    for p in plans:
        sbom_path = sbom_dir / f"{p.name}.spdx.json" if sbom_dir else None
        if sbom_path is not None:
            write_atomic(sbom_path, sboms[p.name])
        results.append(
            Published(
                name=p.name,
                source=p.source,
                reference=p.pinned(digests[p.name]),
                digest=digests[p.name],
                tags=[p.hash_tag, *p.tags],
                sbom=str(sbom_path) if sbom_path else None,
            )
        )
    if request.digestfile is not None:
        lines = planning.digest_lines([r.reference for r in results])
        write_atomic(request.digestfile, lines.encode())
    if request.records is not None:
        pins = [
            (
                p.target,
                image.input_hash,
                Pin(digest=digests[p.name], image_id=image_id(image, runner)),
            )
            for p, image in zip(plans, images, strict=True)
            if image.input_hash
        ]
        record(request.records, pins)
        ui.info(f"pinned {len(pins)} digests by input hash → {request.records}")
    return results


def image_id(image: LocalImage, runner: Runner) -> str:
    out = runner.run(["podman", "image", "inspect", "--format", "{{.Id}}", image.ref]).stdout
    return f"sha256:{out.strip()}"


def _push(p: planning.PushPlan, tmp: Path, request: PublishRequest, runner: Runner) -> str:
    digestfile = tmp / f"{p.name}.digest"
    argv = p.push_argv(digestfile, tls_verify=request.tls_verify, sign_by=request.sign_by)
    _run_registry(argv, p.target, runner)
    digest = digestfile.read_text().strip() if digestfile.is_file() else ""
    if not planning.DIGEST.match(digest):
        raise PublishError(
            f"podman pushed {p.source} but reported no digest ({digest!r})",
            hint="check `podman push --digestfile` works with this podman version",
        )
    return digest


def _run_registry(argv: list[str], target: str, runner: Runner) -> None:
    """Run podman/skopeo against the registry; failures explained by their cause."""
    try:
        runner.run(argv)
    except CommandFailed as exc:
        raise explain(exc.stderr, target) from exc


def explain(stderr: str, target: str, action: str = "pushing to") -> PublishError:
    """A PublishError naming the cause: unreachable host, credentials, TLS, or the tool's words."""
    registry = target.split("/", 1)[0]
    tail = " ".join(stderr.strip().splitlines()[-3:])[-600:]
    lowered = stderr.lower()
    if "no such host" in lowered or "server misbehaving" in lowered:
        return PublishError(
            f"registry host '{registry}' is unknown (DNS lookup failed): {tail}",
            hint="check the spelling of REGISTRY in REGISTRY/REPO and this host's DNS",
        )
    if "connection refused" in lowered or "i/o timeout" in lowered or "no route" in lowered:
        return PublishError(
            f"cannot connect to registry '{registry}': {tail}",
            hint="is the registry running and reachable from here (host, port, firewall)?",
        )
    if re.search(r"unauthorized|authentication required|\b40[13]\b|denied", lowered):
        return PublishError(
            f"registry '{registry}' refused the credentials for {target}: {tail}",
            hint=f"log in with `podman login {registry}` (stored in the engine's auth file) "
            "or point REGISTRY_AUTH_FILE at an auth file; credentials are never taken on "
            "the command line",
        )
    if "http response to https client" in lowered or "x509" in lowered or "tls" in lowered:
        return PublishError(
            f"TLS to registry '{registry}' failed: {tail}",
            hint="for a local plain-HTTP registry pass --no-tls-verify; otherwise fix its "
            "certificate or this host's CA store",
        )
    return PublishError(f"{action} {target} failed: {tail}")


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: readers never see a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
