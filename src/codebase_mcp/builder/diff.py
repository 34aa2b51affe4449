"""``image diff A B``: which inputs differ between two locks or two built images.

Each build leaves an inputs record in the store (``builds/<input-hash>.json``),
found from an image through its ``io.codebase-mcp.input-hash`` label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codebase_mcp.builder.plan import HASH_LABEL
from codebase_mcp.builder.store import default_store
from codebase_mcp.errors import UsageError
from codebase_mcp.proc import Runner

Change = dict[str, str]


def record_path(store_root: Path, input_hash: str) -> Path:
    return store_root / "builds" / f"{input_hash}.json"


def write_record(store_root: Path, name: str, input_hash: str, record: dict[str, Any]) -> None:
    path = record_path(store_root, input_hash)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"images": {name: record}}, indent=1, sort_keys=True))
    tmp.replace(path)


def load_side(root: Path, spec: str, runner: Runner) -> dict[str, Any]:
    """A lock file's images, or the inputs record of a built image ref."""
    path = Path(spec)
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_file():
        data = json.loads(path.read_text())
        return {
            "images": data.get("images", {}),
            "source_date_epoch": data.get("source_date_epoch"),
        }
    result = runner.run(["podman", "image", "inspect", spec], check=False)
    if result.returncode != 0:
        raise UsageError(
            f"'{spec}' is neither a lock file nor a local image",
            hint="pass two lock files (e.g. `git show HEAD~1:build/lock.json > old.json`) or two "
            "image refs from `codebase-mcp image list`",
        )
    labels = json.loads(result.stdout)[0].get("Labels") or {}
    digest = labels.get(HASH_LABEL)
    record = record_path(default_store(), digest) if digest else None
    if record is None or not record.is_file():
        raise UsageError(
            f"no inputs record for {spec} in the store",
            hint="diff works on images built on this machine; compare lock files instead",
        )
    record_data: dict[str, Any] = json.loads(record.read_text())
    return record_data


def diff_inputs(root: Path, a: str, b: str, runner: Runner | None = None) -> list[Change]:
    runner = runner or Runner()
    return compare(load_side(root, a, runner), load_side(root, b, runner))


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    if a.get("source_date_epoch") != b.get("source_date_epoch"):
        changes.append(
            change(
                "*",
                "epoch",
                "SOURCE_DATE_EPOCH",
                a.get("source_date_epoch"),
                b.get("source_date_epoch"),
            )
        )
    images_a, images_b = a.get("images", {}), b.get("images", {})
    for image in sorted(set(images_a) | set(images_b)):
        ia, ib = images_a.get(image), images_b.get(image)
        if ia is None or ib is None:
            changes.append(
                change(image, "image", image, "present" if ia else None, "present" if ib else None)
            )
            continue
        changes += compare_named(image, "deb", debs(ia), debs(ib))
        changes += compare_named(image, "wheel", wheels(ia), wheels(ib))
        for key in ("layers", "project", "rootfs"):
            if ia.get(key) != ib.get(key):
                changes.append(change(image, key, key, short(ia.get(key)), short(ib.get(key))))
    return changes


def debs(entry: dict[str, Any]) -> dict[str, str]:
    packages = entry.get("debian", {}).get("packages", [])
    return {p["name"]: f"{p['version']} ({p['sha256'][:12]})" for p in packages}


def wheels(entry: dict[str, Any]) -> dict[str, str]:
    py = entry.get("python") or {}
    items = [*py.get("wheels", []), *py.get("no_deps", []), *py.get("tools", [])]
    return {w["name"]: f"{w['version']} ({w['sha256'][:12]})" for w in items}


def compare_named(image: str, kind: str, a: dict[str, str], b: dict[str, str]) -> list[Change]:
    return [
        change(image, kind, name, a.get(name), b.get(name))
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name)
    ]


def change(image: str, kind: str, name: str, a: object, b: object) -> Change:
    return {
        "image": image,
        "kind": kind,
        "name": name,
        "a": "" if a is None else str(a),
        "b": "" if b is None else str(b),
    }


def short(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return (
        text
        if len(text) <= 16
        else f"sha256:{__import__('hashlib').sha256(text.encode()).hexdigest()[:12]}"
    )
