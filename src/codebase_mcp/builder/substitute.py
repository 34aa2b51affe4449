"""Substituters: an image already built from the same inputs, pulled by a pinned digest.

Like a Nix binary cache. ``image publish`` records, for every image it pushes,
which manifest digest and image ID the image's input hash gave, in
``build/substitutes.json`` (committed, so that a checkout carries the pins of
the builds CI published). ``image build --substitute REGISTRY/REPO`` (or
``CODEBASE_MCP_SUBSTITUTE``) then pulls ``REGISTRY/REPO/NAME@DIGEST`` instead of
building, when a record exists for the current input hash.

Never trusted blindly: the pull is by digest (skopeo checks the manifest and
every blob against it), and the stored image must have the recorded image ID
(the sha256 of its config, which names every layer's diff ID) and carry the
current input hash as its label; anything else is removed and refused
(:class:`SubstituteMismatch`). ``image verify`` rebuilds from nothing and
compares at any time. A substituter that cannot be reached, or has no record,
only means building here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebase_mcp import ui
from codebase_mcp.builder import oci
from codebase_mcp.builder.plan import HASH_LABEL, ImagePlan
from codebase_mcp.errors import DefinitionError, SubstituteMismatch

if TYPE_CHECKING:
    from codebase_mcp.builder.build import Builder

RECORDS = Path("build/substitutes.json")
FORMAT = 1


@dataclass(frozen=True)
class Pin:
    digest: str  # sha256:… of the manifest in the registry
    image_id: str  # sha256:… of the config: what the image must be once stored


def records_path(root: Path) -> Path:
    return root / RECORDS


def load_records(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    """``{REGISTRY/REPO/NAME: {input hash: {"digest", "image_id"}}}``; empty when absent."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DefinitionError(
            f"{path} is not valid JSON: {exc}",
            hint="restore it from git (`git checkout -- build/substitutes.json`)",
        ) from exc
    images = data.get("images", {}) if isinstance(data, dict) else {}
    return {str(k): dict(v) for k, v in images.items() if isinstance(v, dict)}


def record(path: Path, entries: list[tuple[str, str, Pin]]) -> None:
    """Add (target, input hash, pin) entries to the records file, atomically."""
    from codebase_mcp.publish.run import write_atomic

    images = load_records(path)
    for target, input_hash, pin in entries:
        images.setdefault(target, {})[input_hash] = {
            "digest": pin.digest,
            "image_id": pin.image_id,
        }
    document = {
        "format": FORMAT,
        "images": {t: dict(sorted(pins.items())) for t, pins in sorted(images.items())},
    }
    write_atomic(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode())


def lookup(path: Path, target: str, input_hash: str) -> Pin | None:
    entry = load_records(path).get(target, {}).get(input_hash)
    if not isinstance(entry, dict) or "digest" not in entry or "image_id" not in entry:
        return None
    return Pin(digest=str(entry["digest"]), image_id=str(entry["image_id"]))


def pull_argv(
    source: str, storage_args: tuple[str, ...], ref: str, *, tls_verify: bool
) -> list[str]:
    return [
        "skopeo", "copy", "--quiet", f"--src-tls-verify={'true' if tls_verify else 'false'}",
        f"docker://{source}", oci.storage_transport(storage_args, ref),
    ]  # fmt: skip


@dataclass(frozen=True)
class Substituter:
    destination: str  # REGISTRY/REPO, as `image publish` takes it
    records: Path
    tls_verify: bool = True

    @classmethod
    def create(cls, root: Path, destination: str, *, tls_verify: bool = True) -> Substituter:
        from codebase_mcp.publish.plan import parse_destination

        parse_destination(destination)  # a clear error for a malformed REGISTRY/REPO
        return cls(destination, records_path(root), tls_verify)

    def target(self, name: str) -> str:
        from codebase_mcp.publish.plan import parse_destination

        return parse_destination(self.destination).image(name)

    def substitute(self, builder: Builder, plan: ImagePlan) -> bool:
        """Pull ``plan``'s image by its pinned digest; False (build it here) when there is none."""
        target = self.target(plan.name)
        pin = lookup(self.records, target, plan.input_hash)
        if pin is None:
            ui.info(f"==> {plan.name}: no substitute recorded for {plan.input_hash[:12]}, building")
            return False
        source = f"{target}@{pin.digest}"
        with ui.step(f"{plan.name}: substitute {source}"):
            pulled = builder.runner.run(
                pull_argv(source, builder.storage_args, plan.ref, tls_verify=self.tls_verify),
                check=False,
            )
            if pulled.returncode != 0:
                tail = " ".join(pulled.stderr.strip().splitlines()[-2:])[-300:]
                ui.warn(f"could not pull {source} ({tail}); building {plan.name} here instead")
                return False
            info: dict[str, Any] = builder.inspect(plan.ref)
        image_id = f"sha256:{info.get('Id', '')}"
        label = (info.get("Labels") or {}).get(HASH_LABEL, "")
        if image_id != pin.image_id or label != plan.input_hash:
            builder.runner.run(
                ["podman", *builder.storage_args, "rmi", "-f", plan.ref], check=False
            )
            raise SubstituteMismatch(
                f"{source} is image {image_id[:19]} with input hash {label[:12] or '(none)'}, "
                f"but the record pins image {pin.image_id[:19]} for input hash "
                f"{plan.input_hash[:12]}: it was removed and not used",
                hint=f"build without --substitute, and check who changed {self.records} or "
                f"what {target} holds (`codebase-mcp image verify {plan.name}` rebuilds and "
                "compares)",
            )
        ui.info(f"    {plan.name}: {plan.ref} is {image_id[:19]}, as pinned")
        return True


def from_environment(root: Path) -> Substituter | None:
    """The substituter of ``CODEBASE_MCP_SUBSTITUTE`` (declared by `image build --substitute`)."""
    destination = os.environ.get("CODEBASE_MCP_SUBSTITUTE", "").strip()
    if not destination:
        return None
    verify = os.environ.get("CODEBASE_MCP_SUBSTITUTE_TLS_VERIFY", "true").strip().lower()
    return Substituter.create(root, destination, tls_verify=verify not in ("0", "false", "no"))
