"""`codebase-mcp pod render` and `down` through click, podman and the builder faked."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from codebase_mcp.cli import pod as cli_pod
from codebase_mcp.pod.models import RenderInputs
from codebase_mcp.pod.podman import Podman
from codebase_mcp.pod.render import documents, render


@pytest.fixture
def cli_env(monkeypatch, tmp_path, images):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CODEBASE_MCP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli_pod, "planned_refs", lambda names: {n: images[n] for n in names})
    return tmp_path


def test_render_prints_the_podman_spec_for_the_given_version(cli_env, images, templates) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli_pod.pod, ["render", "--podman-version", "4.3.1", "--name", "cm", "--port", "8100"]
    )
    assert result.exit_code == 0, result.output
    expected = render(RenderInputs(name="cm", images=images, port=8100), templates)
    assert result.output == expected


def test_render_kubernetes_to_a_private_file_with_the_stored_password(cli_env) -> None:  # type: ignore[no-untyped-def]
    def args(out: Path) -> list[str]:
        return ["render", "--target", "kubernetes", "--name", "cm", "-o", str(out),
                "--registry", "ghcr.io/acme", "--replicas", "3"]  # fmt: skip

    out = cli_env / "k8s.yaml"
    result = CliRunner().invoke(cli_pod.pod, args(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    docs = {d["kind"] + "/" + d["metadata"]["name"]: d for d in documents(out.read_text())}
    assert docs["Deployment/cm-server"]["spec"]["replicas"] == 3
    image = docs["Deployment/cm-server"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("ghcr.io/acme/codebase-mcp-server:")
    password_file = cli_env / "data" / "pods" / "cm" / "db-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    # auth is always on in a cluster: the token, created once beside the password
    token_file = cli_env / "data" / "pods" / "cm" / "auth-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert base64.b64decode(docs["Secret/cm-auth"]["data"]["token"]).decode() == token
    # rendering again reuses the same password: same bytes
    again = CliRunner().invoke(cli_pod.pod, args(cli_env / "b.yaml"))
    assert again.exit_code == 0, again.output
    assert (cli_env / "b.yaml").read_text() == out.read_text()


def test_render_refuses_a_repo_path_the_roots_variable_cannot_carry(cli_env) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli_pod.pod, ["render", "--podman-version", "4.3", "--repo", "/tmp/a,b"]
    )
    assert result.exit_code != 0
    assert "contains ',' or '='" in str(result.exception)


def test_render_with_ollama_uses_the_pinned_upstream_image(cli_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pinned = "docker.io/ollama/ollama@sha256:" + "ef" * 32
    monkeypatch.setattr(cli_pod, "upstream_ref", {"ollama": pinned}.__getitem__)
    result = CliRunner().invoke(
        cli_pod.pod,
        ["render", "--podman-version", "5.0", "--embedder", "ollama", "--registry", "ghcr.io/a"],
    )
    assert result.exit_code == 0, result.output
    (pod,) = documents(result.output)
    images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
    # --registry moves the images built here, never the pinned upstream one
    assert images["embedder"] == pinned
    assert images["server"].startswith("ghcr.io/a/codebase-mcp-server:")


def test_render_with_an_unpinned_ollama_fails_with_the_fix(cli_env, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from codebase_mcp.builder import api
    from codebase_mcp.cli import main

    # The committed lock, with ollama as a host without registry access leaves it.
    lock = json.loads((api.repo_root() / "build" / "lock.json").read_text())
    lock["upstream"]["ollama"]["digest"] = None
    root = cli_env / "checkout"
    (root / "build").mkdir(parents=True)
    (root / "build" / "lock.json").write_text(json.dumps(lock))
    monkeypatch.setattr(cli_pod, "upstream_ref", lambda name: api.upstream_ref(name, root))
    with pytest.raises(SystemExit) as exited:
        main(["pod", "render", "--podman-version", "5.0", "--embedder", "ollama"])
    err = capsys.readouterr().err
    assert exited.value.code not in (0, 1, None), err
    assert "upstream image 'ollama' (docker.io/ollama/ollama:latest) is not pinned" in err
    assert "codebase-mcp image lock" in err


def test_up_help_lists_the_profiles() -> None:
    result = CliRunner().invoke(cli_pod.up, ["--help"])
    assert result.exit_code == 0
    assert "[dev|prod|test]" in result.output


def test_down_of_nothing_says_so(cli_env, monkeypatch, fake_runner) -> None:  # type: ignore[no-untyped-def]
    fake_runner.reply(["podman", "pod", "exists"], "", returncode=1)
    fake_runner.reply(["podman", "volume", "exists"], "", returncode=1)
    original = cli_pod.Lifecycle
    monkeypatch.setattr(cli_pod, "Lifecycle", lambda: original(podman=Podman(fake_runner)))
    result = CliRunner().invoke(cli_pod.down, ["--name", "ghost"])
    assert result.exit_code == 0
    assert "nothing to remove: no pod 'ghost'" in result.output


def test_templates_dir_is_the_checkout(templates: Path) -> None:
    from codebase_mcp.pod.render import templates_dir

    assert templates_dir() == templates


def test_render_k8s_scale_out_and_git_secret_references(cli_env) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli_pod.pod, [
        "render", "--k8s", "--name", "cm", "--server-replicas", "3", "--embedder-replicas", "2",
        "--embedder-max-replicas", "5", "--git-host", "git.example.com",
        "--git-ssh-key-secret", "git-creds:id_ed25519", "--git-known-hosts-secret", "git-creds",
        "--git-shared-cache",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    docs = {d["kind"] + "/" + d["metadata"]["name"]: d for d in documents(result.output)}
    assert docs["Deployment/cm-server"]["spec"]["replicas"] == 3
    hpa = docs["HorizontalPodAutoscaler/cm-embedder"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert "PersistentVolumeClaim/cm-git" in docs
    spec = docs["Deployment/cm-server"]["spec"]["template"]["spec"]
    (projected,) = [v["projected"] for v in spec["volumes"] if v["name"] == "git-credentials"]
    items = sorted((s["secret"]["name"], i["key"], i["path"])
                   for s in projected["sources"] for i in s["secret"]["items"])  # fmt: skip
    assert items == [("git-creds", "id_ed25519", "ssh-key"),
                     ("git-creds", "known-hosts", "known-hosts")]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), [
    (["--k8s", "--git-token-secret", "t"], "no --git-host"),
    (["--target", "podman", "--git-host", "h", "--git-token-secret", "t"],
     "need --target kubernetes"),
    (["--k8s", "--git-host", "h", "--git-token-secret", "Bad_Name"], "bad Secret reference"),
    (["--k8s", "--embedder-replicas", "4", "--embedder-max-replicas", "3"], "is below"),
])  # fmt: skip
def test_render_refuses_bad_scale_and_git_options(cli_env, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    from codebase_mcp.cli import main

    base = ["pod", "render", "--podman-version", "4.3", "--name", "cm"]
    with pytest.raises(SystemExit) as exited:
        main([*base, *args])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert message in err


def test_up_refuses_no_git_with_other_git_options(cli_env, capsys) -> None:  # type: ignore[no-untyped-def]
    from codebase_mcp.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["up", "--no-doctor", "--no-build", "--no-git", "--git-host", "h"])
    assert exited.value.code == 2
    assert "--no-git" in capsys.readouterr().err
