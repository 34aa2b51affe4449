"""``codebase-mcp image publish | sbom | gc``: ship built images, describe them, clean up."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from codebase_mcp import ui
from codebase_mcp.cli.params import PodmanBoolCommand

# Own copies of `image`'s options: cli/image.py imports this module while it is
# being imported itself, so importing from it here would be circular.
root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CODEBASE_MCP_ROOT",
    help="Project checkout (default: found from the current directory). [env: CODEBASE_MCP_ROOT]",
)
store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CODEBASE_MCP_STORE",
    help="Content-addressed store for fetched inputs. [env: CODEBASE_MCP_STORE]",
)


def _root(root: Path | None) -> Path:
    from codebase_mcp.builder.api import repo_root

    return root.resolve() if root else repo_root()


def _names(root: Path, names: tuple[str, ...]) -> list[str]:
    from codebase_mcp.builder.definitions import image_names, load_definition

    for name in names:
        load_definition(root, name)  # raises UnknownImage with the list of images
    return list(names) or image_names(root)


@click.command(cls=PodmanBoolCommand)
@click.argument("destination", metavar="REGISTRY/REPO")
@click.argument("names", nargs=-1)
@click.option("--tag", "tags", multiple=True, metavar="T", help="Extra tag for every image.")
@click.option(
    "--digestfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write REGISTRY/REPO/NAME@sha256:… lines here (and NAME.spdx.json beside it), "
    "only once every push succeeded.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option(
    "--tls-verify/--no-tls-verify",
    default=True,
    show_default=True,
    help="Require HTTPS with a valid certificate (turn off only for a local registry). "
    "Also spelled as podman does: --tls-verify=true|false.",
)
@click.option("--sign-by", metavar="KEY", help="Sign with this GPG key (podman/skopeo --sign-by).")
@click.option(
    "--no-build", is_flag=True, help="Fail instead of building an image that is not built."
)
@click.option(
    "--records",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record each pushed digest (and image ID) by input hash here, for "
    "`image build --substitute` [default: build/substitutes.json of the checkout].",
)
@click.option("--no-record", is_flag=True, help="Do not record the pushed digests.")
@root_option
@store_option
def publish(
    destination: str,
    names: tuple[str, ...],
    tags: tuple[str, ...],
    digestfile: Path | None,
    as_json: bool,
    tls_verify: bool,
    sign_by: str | None,
    no_build: bool,
    records: Path | None,
    no_record: bool,
    root: Path | None,
    store: Path | None,
) -> None:
    """Push NAMES (default: every image) to REGISTRY/REPO/NAME by digest.

    \b
    Each image is checked against its lock (SBOM), built first if needed, pushed
    once to the tag of its input hash, and the manifest digest podman reports is
    what the other --tag copies point to. Each digest is recorded against the
    image's input hash (build/substitutes.json: commit it), so that `image build
    --substitute REGISTRY/REPO` elsewhere pulls it instead of building. Credentials:
    `podman login REGISTRY` or REGISTRY_AUTH_FILE; never on the command line.
    """
    from codebase_mcp.builder.substitute import records_path
    from codebase_mcp.publish.run import PublishRequest
    from codebase_mcp.publish.run import publish as run_publish

    checkout = _root(root)
    request = PublishRequest(
        destination=destination,
        names=_names(checkout, names),
        tags=list(tags),
        digestfile=digestfile.resolve() if digestfile else None,
        tls_verify=tls_verify,
        sign_by=sign_by,
        build=not no_build,
        store=store,
        records=None if no_record else (records or records_path(checkout)).resolve(),
    )
    results = run_publish(checkout, request)
    if as_json:
        click.echo(json.dumps({"images": [r.as_dict() for r in results]}, indent=2))
        return
    for r in results:
        click.echo(r.reference)
    if digestfile:
        ui.info(f"digests → {digestfile}; SBOMs → {digestfile.parent}/NAME.spdx.json")


@click.command()
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (atomically) instead of stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["spdx", "cyclonedx"]),
    default="spdx",
    show_default=True,
    help="SPDX 2.3 JSON or CycloneDX 1.5 JSON.",
)
@click.option(
    "--image",
    "ref",
    metavar="REF",
    help="Describe this local image instead of the build of the current inputs.",
)
@root_option
def sbom(name: str, output: Path | None, fmt: str, ref: str | None, root: Path | None) -> None:
    """Write the SBOM of image NAME, checked against what the image holds.

    Lists every Debian package and Python distribution with its version,
    sha256 and license where known. Deterministic: same image, same bytes.
    Fails (exit 41) when the image holds a package the lock does not, or
    lacks one it does.
    """
    from codebase_mcp.proc import Runner
    from codebase_mcp.publish.images import local_image, sbom_bytes
    from codebase_mcp.publish.run import write_atomic

    checkout = _root(root)
    _names(checkout, (name,))
    runner = Runner()
    image = local_image(checkout, name, runner=runner, ref=ref)
    data = sbom_bytes(checkout, image, "spdx" if fmt == "spdx" else "cyclonedx", runner)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomic(output, data)
        ui.info(f"{name}: {fmt} SBOM of {image.ref} → {output}")


@click.command()
@click.option("--apply", "do_apply", is_flag=True, help="Remove; without it, only list.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@root_option
@store_option
def gc(do_apply: bool, as_json: bool, root: Path | None, store: Path | None) -> None:
    """Remove images and store entries the current lock no longer references.

    Dry run by default: prints what would go. Only the builder's own tags
    (localhost/codebase-mcp-NAME:<input hash>) and store entries are considered.
    """
    from codebase_mcp.builder.store import default_store
    from codebase_mcp.errors import CommandFailed
    from codebase_mcp.proc import Runner
    from codebase_mcp.publish import gc as collect

    runner = Runner()
    store_root = store or default_store()
    removals = collect.gc(_root(root), store_root, runner=runner)
    failed = collect.apply(removals, runner) if do_apply else []
    total = sum(r.size for r in removals)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "applied": do_apply,
                    "removals": [r.as_dict() for r in removals],
                    "failed": [{**r.as_dict(), "error": why} for r, why in failed],
                    "bytes": total,
                },
                indent=2,
            )
        )
    else:
        verb = "removed" if do_apply else "would remove"
        for r in removals:
            click.echo(f"{verb} {r.kind:<7} {r.target}  ({r.size / 1e6:.1f} MB: {r.reason})")
        click.echo(f"{verb} {len(removals) - len(failed)} items, {total / 1e6:.0f} MB")
        if not do_apply and removals:
            click.echo("run `codebase-mcp image gc --apply` to remove them")
    if failed:
        lines = "\n  ".join(f"{r.target}: {why}" for r, why in failed)
        raise CommandFailed(
            f"{len(failed)} items could not be removed:\n  {lines}",
            hint="images in use by a container stay; stop and remove the container first",
        )


def commands() -> list[click.Command]:
    return [publish, sbom, gc]
