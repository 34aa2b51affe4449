from __future__ import annotations

import json

import pytest

from codebase_mcp.errors import CommandFailed, PodError
from codebase_mcp.pod.features import (
    PodmanVersion,
    detect_version,
    features_for,
    parse_version,
    version_from_json,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4.3.1", (4, 3, 1)),
        ("5.2.0-rc1", (5, 2, 0)),
        ("v4.9", (4, 9, 0)),
        (" 4.4.0-dev\n", (4, 4, 0)),
    ],
)
def test_parse_version(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_version(text) == expected


def test_parse_version_rejects_garbage() -> None:
    with pytest.raises(PodError, match="cannot read the podman version"):
        parse_version("podman")


def test_debian_12_podman_gets_none_of_the_later_features() -> None:
    features = features_for(PodmanVersion(4, 3, 1))
    assert not any(features.as_dict().values())


@pytest.mark.parametrize(
    ("version", "enabled"),
    [
        ((4, 4, 0), {"startup_probe", "secret_kind", "pvc_document", "quadlet"}),
        ((4, 6, 0), {"startup_probe", "secret_kind", "pvc_document", "quadlet", "init_containers"}),
        (
            (4, 8, 0),
            {
                "startup_probe", "secret_kind", "pvc_document", "quadlet", "init_containers",
                "internal_container_ports",
            },
        ),
        ((5, 0, 0), "all"),
        ((5, 4, 2), "all"),
    ],
)  # fmt: skip
def test_features_switch_on_at_their_release(
    version: tuple[int, int, int], enabled: set[str] | str
) -> None:
    flags = features_for(PodmanVersion(*version)).as_dict()
    expected = set(flags) if enabled == "all" else enabled
    assert {name for name, on in flags.items() if on} == expected


def test_version_from_json_prefers_the_server_of_a_remote_client() -> None:
    text = json.dumps({"Client": {"Version": "5.1.0"}, "Server": {"Version": "4.3.1"}})
    assert version_from_json(text) == (4, 3, 1)


def test_version_from_json_of_a_local_podman() -> None:
    # What podman 4.3.1 on Debian 12 prints.
    text = '{"Client":{"APIVersion":"4.3.1","Version":"4.3.1","GoVersion":"go1.19.8"}}'
    assert version_from_json(text) == (4, 3, 1)


def test_version_from_json_rejects_other_output() -> None:
    with pytest.raises(PodError, match="unexpected"):
        version_from_json("Version: 4.3.1")


def test_detect_version_asks_podman_for_json(fake_runner) -> None:  # type: ignore[no-untyped-def]
    fake_runner.reply(["podman", "version"], '{"Client":{"Version":"4.9.3"}}')
    assert detect_version(fake_runner) == (4, 9, 3)
    assert fake_runner.calls == [("podman", "version", "--format", "json")]


def test_detect_version_refuses_podman_older_than_4_3(fake_runner) -> None:  # type: ignore[no-untyped-def]
    fake_runner.reply(["podman", "version"], '{"Client":{"Version":"4.2.0"}}')
    with pytest.raises(PodError, match="too old"):
        detect_version(fake_runner)


def test_detect_version_reports_a_failing_podman(fake_runner) -> None:  # type: ignore[no-untyped-def]
    fake_runner.reply(["podman", "version"], "", returncode=125)
    with pytest.raises(CommandFailed):
        detect_version(fake_runner)
