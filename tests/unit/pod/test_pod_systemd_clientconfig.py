from __future__ import annotations

import json
from pathlib import Path

from codebase_mcp.pod import clientconfig, systemd
from codebase_mcp.pod.features import PodmanVersion, features_for

YAML = Path("/root/.local/share/codebase-mcp/pods/codebase-mcp/pod.yaml")


def test_podman_43_uses_the_podman_kube_template_unit() -> None:
    plan = systemd.plan("codebase-mcp", YAML, features_for(PodmanVersion(4, 3, 1)),
                        rootless=False, home=Path("/root"))  # fmt: skip
    assert plan.kind == "podman-kube@"
    assert plan.files == {}
    # the same escaping `systemd-escape --path` prints on Debian 12
    assert plan.unit == (
        "podman-kube@root-.local-share-codebase\\x2dmcp-pods-codebase\\x2dmcp-pod.yaml.service"
    )
    assert plan.commands[-1] == ["systemctl", "enable", "--now", plan.unit]


def test_podman_44_writes_a_quadlet_kube_unit_for_the_user() -> None:
    plan = systemd.plan("cm", YAML, features_for(PodmanVersion(4, 4, 0)),
                        rootless=True, home=Path("/home/u"))  # fmt: skip
    assert plan.kind == "quadlet"
    (path, content) = next(iter(plan.files.items()))
    assert path == "/home/u/.config/containers/systemd/cm.kube"
    assert f"Yaml={YAML}" in content.splitlines()
    assert plan.unit == "cm.service"
    assert plan.commands == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "start", "cm.service"],
    ]


def test_systemd_escape_of_odd_characters() -> None:
    assert systemd.systemd_escape_path(Path("/a b/.c")) == "a\\x20b-.c"
    assert systemd.systemd_escape_path(Path("/.hidden")) == "\\x2ehidden"


def test_client_configs_for_http_and_stdio() -> None:
    http = clientconfig.http_config("http://127.0.0.1:8000/mcp")
    assert http == {
        "mcpServers": {"codebase": {"type": "http", "url": "http://127.0.0.1:8000/mcp"}}
    }
    stdio = clientconfig.stdio_config("cm-server")["mcpServers"]["codebase"]
    assert [stdio["command"], *stdio["args"]] == [
        "podman", "exec", "-i", "cm-server", "codebase-mcp", "serve", "--transport", "stdio",
    ]  # fmt: skip


def test_instructions_embed_valid_json_and_the_repo() -> None:
    text = clientconfig.instructions("http://127.0.0.1:8000/mcp", "cm-server", ["/src/app"])
    assert "MCP endpoint: http://127.0.0.1:8000/mcp" in text
    assert "/src/app" in text
    start = text.index("{")
    decoder = json.JSONDecoder()
    config, _ = decoder.raw_decode(text[start:])
    assert config["mcpServers"]["codebase"]["url"] == "http://127.0.0.1:8000/mcp"


def test_with_a_token_the_http_config_carries_the_header() -> None:
    http = clientconfig.http_config("http://127.0.0.1:8000/mcp", "tok")
    assert http["mcpServers"]["codebase"]["headers"] == {"Authorization": "Bearer tok"}
    text = clientconfig.instructions(
        "http://127.0.0.1:8000/mcp", "cm-server", [], "tok", "/data/pods/cm/auth-token"
    )
    assert '--header "Authorization: Bearer tok"' in text
    assert "/data/pods/cm/auth-token" in text
    config, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    assert config["mcpServers"]["codebase"]["headers"]["Authorization"] == "Bearer tok"
    assert "Authorization" not in clientconfig.instructions("http://x/mcp", "cm-server", [])
