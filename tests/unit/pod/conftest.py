"""Fixtures for the pod's unit tests: a scripted fake Runner and fixed render inputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codebase_mcp.proc import Result, Runner, failure

REPO = Path(__file__).resolve().parents[3]
TEMPLATES = REPO / "images" / "pod"

Responder = Callable[[tuple[str, ...], str | None], Result]


@dataclass
class FakeRunner(Runner):
    """Answers argv by the longest matching prefix (latest wins); records calls and stdin."""

    replies: list[tuple[tuple[str, ...], Responder]] = field(default_factory=list)
    inputs: list[str | None] = field(default_factory=list)

    def reply(self, prefix: Sequence[str], stdout: str = "", returncode: int = 0) -> None:
        def answer(argv: tuple[str, ...], _stdin: str | None) -> Result:
            return Result(argv, returncode, stdout, "" if returncode == 0 else "failed")

        self.replies.append((tuple(prefix), answer))

    def on(self, prefix: Sequence[str], responder: Responder) -> None:
        self.replies.append((tuple(prefix), responder))

    def run(  # type: ignore[override]
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: object = None,
        env: Mapping[str, str] | None = None,
        capture: bool = True,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        hint: str | None = None,
    ) -> Result:
        args = tuple(os.fspath(a) for a in argv)
        self.calls.append(args)
        self.inputs.append(input)
        # the longest prefix wins; among equals, the latest registered
        matches = [(len(p), i, r) for i, (p, r) in enumerate(self.replies) if args[: len(p)] == p]
        if matches:
            result = max(matches, key=lambda m: (m[0], m[1]))[2](args, input)
        else:
            result = Result(args, 0, "", "")
        if check and result.returncode != 0:
            raise failure(result, hint)
        return result

    def called(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[: len(prefix)] == prefix]


@pytest.fixture
def fake_runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def images() -> dict[str, str]:
    return {
        "embedder": "localhost/codebase-mcp-embedder:1111111111111111",
        "postgres": "localhost/codebase-mcp-postgres:2222222222222222",
        "server": "localhost/codebase-mcp-server:3333333333333333",
    }


@pytest.fixture
def templates() -> Path:
    return TEMPLATES
