from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from codebase_mcp.pod.secret import ensure_password, ensure_podman_secret, secret_payload


def test_password_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "pods" / "cm" / "db-password"
    first = ensure_password(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_password(path) == first


def test_an_empty_password_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "db-password"
    path.write_text("\n")
    assert ensure_password(path).strip()


def test_payload_is_the_json_map_podman_43_reads() -> None:
    payload = json.loads(secret_payload("p@ss:word"))
    assert base64.b64decode(payload["password"]).decode() == "p@ss:word"


def test_existing_podman_secret_is_left_alone(fake_runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_runner.reply(["podman", "secret", "inspect"], "[{}]")
    assert ensure_podman_secret(fake_runner, "cm-db", tmp_path / "db-password") is False
    assert fake_runner.called("podman", "secret", "create") == []


def test_missing_podman_secret_is_created_from_stdin(fake_runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_runner.reply(["podman", "secret", "inspect"], "", returncode=125)
    password_file = tmp_path / "db-password"
    assert ensure_podman_secret(fake_runner, "cm-db", password_file) is True
    (create,) = fake_runner.called("podman", "secret", "create")
    assert create == ("podman", "secret", "create", "cm-db", "-")
    stdin = fake_runner.inputs[fake_runner.calls.index(create)]
    # the password never appears in argv; stdin carries the file's password
    assert json.loads(stdin) == json.loads(secret_payload(password_file.read_text().strip()))
