"""``codebase-mcp image …``: lock, fetch, build, verify and diff reproducible images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from codebase_mcp import ui
from codebase_mcp.cli.params import PodmanBoolCommand
from codebase_mcp.errors import LockError, UsageError

STORE_HELP = "Content-addressed store for fetched inputs. [env: CODEBASE_MCP_STORE]"
ROOT_HELP = "Project checkout (default: found from the current directory). [env: CODEBASE_MCP_ROOT]"


def _root(root: Path | None) -> Path:
    from codebase_mcp.builder.api import repo_root

    return root.resolve() if root else repo_root()


def _names(root: Path, names: tuple[str, ...]) -> list[str]:
    from codebase_mcp.builder.definitions import image_names, load_definition

    if not names:
        return image_names(root)
    for name in names:
        load_definition(root, name)  # raises UnknownImage with the list of images
    return list(names)


root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CODEBASE_MCP_ROOT",
    help=ROOT_HELP,
)
store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CODEBASE_MCP_STORE",
    help=STORE_HELP,
)


@click.group()
def image() -> None:
    """Build the project's images reproducibly from a committed lock.

    \b
    1. lock    resolve every input (Debian packages, wheels) to a sha256 → build/lock.json
    2. fetch   download what the lock names into the content-addressed store
    3. build   build with no network; tags are localhost/codebase-mcp-NAME:INPUTHASH
    4. verify  rebuild from scratch in a throwaway storage and compare digests

    Definitions live in images/NAME/image.toml. Each layer (Debian root filesystem,
    venv, project, files) is made once per input hash and kept in the store; an image
    is assembled from those layers (OCI layout, skopeo), so a source edit remakes the
    project layer only.
    """


@image.command("list")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_images(root: Path | None, as_json: bool) -> None:
    """List the defined images and the refs their current inputs hash to."""
    from codebase_mcp.builder.build import Builder

    root = _root(root)
    builder = Builder.create(root)
    rows = []
    for name in _names(root, ()):
        ref = builder.plan(name)[2].ref
        rows.append({"name": name, "ref": ref, "built": builder.image_exists(ref)})
    if as_json:
        click.echo(json.dumps({"images": rows}, indent=2))
    else:
        for row in rows:
            click.echo(f"{row['name']:<10} {row['ref']}  {'built' if row['built'] else '-'}")


@image.command()
@click.argument("names", nargs=-1)
@click.option(
    "--update",
    "update",
    multiple=True,
    metavar="PKG",
    help="Re-resolve only the images that contain PKG (Debian package or Python distribution).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only check that the lock matches the definitions (no network); exit 13 if not.",
)
@click.option(
    "--upstream",
    "upstream_only",
    is_flag=True,
    help="Only (re-)pin the upstream images of images/upstream.toml by digest (skopeo); "
    "leave every built image's entry as it is.",
)
@root_option
def lock(
    names: tuple[str, ...], update: tuple[str, ...], check: bool, upstream_only: bool,
    root: Path | None,
) -> None:  # fmt: skip
    """Resolve every input of NAMES (default: all images) and write build/lock.json.

    The only command that talks to package indexes (the Debian mirror through
    mmdebstrap/apt, PyPI through pip) and registries (skopeo, for the upstream
    images pinned by digest). The lock is written atomically: on any
    failure the previous lock is left as it was. With --check nothing is
    resolved: the command fails, naming the first stale entry, when an image
    definition or pyproject.toml changed since the lock was written.
    """
    from codebase_mcp.builder.locking import lock_images, lock_upstream

    root = _root(root)
    if upstream_only:
        if names or update or check:
            raise UsageError(
                "--upstream takes no image names, --update or --check",
                hint="`codebase-mcp image lock --upstream` re-pins every upstream image",
            )
        path, pins = lock_upstream(root)
        for name, pin in sorted(pins.items()):
            ui.info(f"{name}: {pin.pinned or f'{pin.reference} (unpinned)'}")
        ui.info(f"upstream pins → {path.relative_to(root)}")
        unpinned = sorted(name for name, pin in pins.items() if pin.pinned is None)
        if unpinned:
            raise LockError(
                f"could not pin {', '.join(unpinned)} by digest (see the warnings above)",
                hint="the registry must be reachable from this host (`skopeo inspect` it); "
                "the rest of the lock was kept",
            )
        return
    if check:
        from codebase_mcp.builder.definitions import load_definition, load_pyproject
        from codebase_mcp.builder.lockfile import check_fresh, load_lock

        current = load_lock(root)
        pyproject = load_pyproject(root)
        for name in _names(root, names):
            check_fresh(current, load_definition(root, name), pyproject)
        ui.info(f"build/lock.json is up to date for {', '.join(_names(root, names))}")
        return
    path, done = lock_images(root, list(names) or None, update=list(update) or None)
    ui.info(f"locked {', '.join(done)} → {path.relative_to(root)}")


@image.command()
@click.argument("names", nargs=-1)
@root_option
@store_option
def fetch(names: tuple[str, ...], root: Path | None, store: Path | None) -> None:
    """Download every input the lock names into the store, verifying each sha256."""
    from codebase_mcp.builder.build import Builder

    root = _root(root)
    builder = Builder.create(root, store)
    count = builder.fetch(_names(root, names))
    ui.info(f"{count} inputs present and verified in {builder.store.root}")


@image.command(cls=PodmanBoolCommand)
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("--force", is_flag=True, help="Build even when the tag for these inputs exists.")
@click.option(
    "--substitute",
    metavar="REGISTRY/REPO",
    envvar="CODEBASE_MCP_SUBSTITUTE",
    help="Pull an image from REGISTRY/REPO/NAME by the digest `image publish` recorded for "
    "its input hash (build/substitutes.json) instead of building it; checked against the "
    "recorded image ID. Also used by `up`.",
)
@click.option(
    "--substitute-tls-verify/--no-substitute-tls-verify",
    default=True,
    show_default=True,
    envvar="CODEBASE_MCP_SUBSTITUTE_TLS_VERIFY",
    help="Require HTTPS with a valid certificate from the substituter (off only for a "
    "local registry).",
)
@click.option(
    "--records",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The substitute records to read [default: build/substitutes.json of the checkout].",
)
@root_option
@store_option
def build(
    names: tuple[str, ...],
    as_json: bool,
    force: bool,
    substitute: str | None,
    substitute_tls_verify: bool,
    records: Path | None,
    root: Path | None,
    store: Path | None,
) -> None:
    """Build NAMES (default: every image) with no network, tagged by input hash.

    An image whose tag already exists is not rebuilt. With --json prints
    {"images": [{"name", "ref", "image_id", "digest", "input_hash", "cached",
    "size_bytes", "seconds", "substituted"}]}.
    """
    from codebase_mcp.builder.build import Builder
    from codebase_mcp.builder.substitute import Substituter

    root = _root(root)
    builder = Builder.create(root, store)
    if substitute:
        builder.substituter = Substituter.create(root, substitute, tls_verify=substitute_tls_verify)
        if records is not None:
            builder.substituter = Substituter(substitute, records.resolve(), substitute_tls_verify)
    results = builder.build(_names(root, names), force=force)
    if as_json:
        click.echo(json.dumps({"images": [r.as_dict() for r in results]}, indent=2))
        return
    for r in results:
        state = (
            "substituted"
            if r.substituted
            else "cached"
            if r.cached
            else f"built in {r.seconds:.1f}s"
        )
        click.echo(f"{r.name:<10} {r.ref}  {r.size_bytes / 1e6:.0f} MB  {state}")


@image.command()
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@root_option
@store_option
def verify(names: tuple[str, ...], as_json: bool, root: Path | None, store: Path | None) -> None:
    """Rebuild NAMES from nothing in a throwaway storage and compare with the stored build.

    Exits non-zero and names the first differing file when the rebuild differs.
    """
    from codebase_mcp.builder.verify import verify_images

    root = _root(root)
    reports = verify_images(root, _names(root, names), store)
    if as_json:
        click.echo(json.dumps({"images": reports}, indent=2))
    else:
        for rep in reports:
            click.echo(f"{rep['name']:<10} identical  {rep['image_id']}")


@image.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@root_option
def diff(a: str, b: str, as_json: bool, root: Path | None) -> None:
    """Which inputs differ between A and B (two lock files, or two image refs)."""
    from codebase_mcp.builder.diff import diff_inputs

    changes = diff_inputs(_root(root), a, b)
    if as_json:
        click.echo(json.dumps({"changes": changes}, indent=2))
        return
    if not changes:
        click.echo("no differences")
    for change in changes:
        click.echo(
            f"{change['image']:<10} {change['kind']:<7} {change['name']}: "
            f"{change['a'] or '-'} → {change['b'] or '-'}"
        )


def _add_publishing_commands() -> None:
    """`publish`, `sbom` and `gc` live in their own module and join this group."""
    import importlib

    try:
        image_publish = importlib.import_module("codebase_mcp.cli.image_publish")
    except ModuleNotFoundError as exc:
        if exc.name != "codebase_mcp.cli.image_publish":
            raise
        return
    for command in image_publish.commands():
        image.add_command(command)


_add_publishing_commands()
