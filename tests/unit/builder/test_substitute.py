"""Substituters on a fake engine: pull by the pinned digest, check, or build here."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.builder.build import Builder
from codebase_mcp.builder.store import Store
from codebase_mcp.builder.substitute import Pin, Substituter, lookup, pull_argv, record
from codebase_mcp.errors import SubstituteMismatch
from codebase_mcp.proc import Result

from .fakes import EngineRunner, real_inputs

DEST = "127.0.0.1:5000/acme"


class Registry(EngineRunner):
    """The fake engine, plus a registry: a pull stores ``served`` under the ref."""

    def __init__(self, base: EngineRunner, served: tuple[str, str] | None) -> None:
        super().__init__()
        self.status = base.status
        self.served = served  # (image id, input-hash label), or None: unreachable
        self.labels: dict[str, str] = {}

    def run(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Result:
        args = tuple(os.fspath(a) for a in argv)
        if args[0] == "skopeo" and args[-2].startswith("docker://"):
            self.calls.append(args)
            if self.served is None:
                return Result(args, 1, "", "connection refused")
            ref = args[-1].removeprefix("containers-storage:")
            self.images[ref], self.labels[ref] = self.served
            return Result(args, 0)
        if args[0] == "podman" and "inspect" in args and args[-1] in self.labels:
            self.calls.append(args)
            info = [
                {
                    "Id": self.images[args[-1]],
                    "Labels": {"io.codebase-mcp.input-hash": self.labels[args[-1]]},
                }
            ]
            return Result(args, 0, json.dumps(info))
        if args[0] == "podman" and "rmi" in args:
            self.calls.append(args)
            self.images.pop(args[-1], None)
            return Result(args, 0)
        return super().run(argv, **kwargs)


def setup(project: Path, served: str | None, *, wrong_label: bool = False) -> tuple[Builder, str]:
    base = real_inputs(project, project / "store")
    probe = Builder(root=project, store=Store(project / "store"), runner=base)
    plan = probe.plan("demo")[2]
    records = project / "build" / "substitutes.json"
    record(
        records,
        [(f"{DEST}/demo", plan.input_hash, Pin("sha256:" + "d" * 64, "sha256:" + "1" * 64))],
    )
    label = "0" * 64 if wrong_label else plan.input_hash
    runner = Registry(base, None if served is None else (served, label))
    builder = Builder(
        root=project, store=Store(project / "store"), runner=runner,
        substituter=Substituter.create(project, DEST, tls_verify=False),
    )  # fmt: skip
    return builder, plan.input_hash


def test_records_merge_and_are_looked_up_by_target_and_input_hash(tmp_path: Path) -> None:
    path = tmp_path / "subs.json"
    record(path, [("r/a/x", "h1", Pin("sha256:1", "sha256:i1"))])
    record(
        path,
        [
            ("r/a/x", "h2", Pin("sha256:2", "sha256:i2")),
            ("r/a/y", "h1", Pin("sha256:3", "sha256:i3")),
        ],
    )
    assert lookup(path, "r/a/x", "h1") == Pin("sha256:1", "sha256:i1")
    assert lookup(path, "r/a/x", "h2") == Pin("sha256:2", "sha256:i2")
    assert lookup(path, "r/a/y", "h2") is None
    assert json.loads(path.read_text())["format"] == 1


def test_pull_is_by_digest_into_the_builders_storage() -> None:
    argv = pull_argv(
        "r:5000/a/x@sha256:" + "d" * 64,
        ("--root", "/s", "--runroot", "/r"),
        "localhost/x:1",
        tls_verify=False,
    )
    assert argv[:4] == ["skopeo", "copy", "--quiet", "--src-tls-verify=false"]
    assert argv[-2:] == [
        "docker://r:5000/a/x@sha256:" + "d" * 64,
        "containers-storage:[/s+/r]localhost/x:1",
    ]


def test_a_pinned_image_is_substituted_and_nothing_built(project: Path) -> None:
    builder, _ = setup(project, "1" * 64)
    (result,) = builder.build(["demo"])
    assert result.substituted and result.image_id == "sha256:" + "1" * 64
    tools = {Path(c[0]).name for c in builder.runner.calls}
    assert tools <= {"git", "podman", "skopeo"}
    assert not (project / "store" / "layers").exists()


def test_another_image_under_the_pin_is_removed_and_refused(project: Path) -> None:
    builder, _ = setup(project, "2" * 64)
    with pytest.raises(SubstituteMismatch, match="removed and not used"):
        builder.build(["demo"])
    assert builder.runner.images == {}  # type: ignore[attr-defined]


def test_a_wrong_input_hash_label_is_refused(project: Path) -> None:
    builder, _ = setup(project, "1" * 64, wrong_label=True)
    with pytest.raises(SubstituteMismatch):
        builder.build(["demo"])


def test_an_unreachable_substituter_means_building_here(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    builder, _ = setup(project, None)
    (result,) = builder.build(["demo"])
    assert not result.substituted and not result.cached
    assert "building demo here instead" in capsys.readouterr().err


def test_no_record_for_these_inputs_means_building_here(project: Path) -> None:
    builder, _ = setup(project, "1" * 64)
    (project / "src" / "demo" / "__init__.py").write_text("VALUE = 9\n")  # new inputs
    (result,) = builder.build(["demo"])
    assert not result.substituted
    assert not [
        c for c in builder.runner.calls if c[0] == "skopeo" and c[-2].startswith("docker://")
    ]
