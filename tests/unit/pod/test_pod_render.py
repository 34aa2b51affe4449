"""The rendered specs: golden files (reviewed by hand), schema validation, invariants.

Regenerate the golden files after an intended template change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/pod/test_pod_render.py`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from codebase_mcp.errors import TemplateError
from codebase_mcp.pod.features import PodmanVersion, features_for
from codebase_mcp.pod.models import (
    GitInputs,
    RenderInputs,
    SecretRef,
    repo_container_path,
    repo_mounts,
)
from codebase_mcp.pod.render import documents, render

GOLDEN = Path(__file__).parent / "golden"
K8S_VERSION = "1.30"
PODMAN_43 = features_for(PodmanVersion(4, 3, 1))
PODMAN_50 = features_for(PodmanVersion(5, 0, 0))
# An upstream image as the lock pins it (repository@digest); the digest is made up.
OLLAMA = "docker.io/ollama/ollama@sha256:" + "ab" * 32


def cases(images: dict[str, str]) -> dict[str, RenderInputs]:
    repos = repo_mounts(["/home/dev/projects/beta", "/home/dev/projects/alpha"])
    return {
        "podman-prod-4.3.yaml": RenderInputs(images=images, repos=repos, features=PODMAN_43),
        "podman-dev-4.3.yaml": RenderInputs(
            images=images,
            profile="dev",
            repos=repos,
            features=PODMAN_43,
            dev_source="/home/dev/codebase-mcp",
        ),
        "podman-test-5.0.yaml": RenderInputs(
            name="codebase-mcp-test-abc123",
            images=images,
            profile="test",
            port=43210,
            repos=repo_mounts(["/tmp/fixture-repo"]),
            features=PODMAN_50,
        ),
        "kubernetes-prod.yaml": RenderInputs(
            images=images,
            target="kubernetes",
            server_replicas=2,
            db_password=SecretStr("golden-password"),
            auth_token=SecretStr("golden-token"),
        ),
        "podman-ollama-4.3.yaml": RenderInputs(
            images={**images, "embedder": OLLAMA}, embedder="ollama", features=PODMAN_43
        ),
        "podman-auth-4.3.yaml": RenderInputs(
            name="codebase-mcp-test-abc123",
            images=images,
            profile="test",
            port=43210,
            features=PODMAN_43,
            auth=True,
        ),
        "podman-ollama-5.0.yaml": RenderInputs(
            images={**images, "embedder": OLLAMA}, embedder="ollama", features=PODMAN_50
        ),
        "kubernetes-scale-git.yaml": RenderInputs(
            images=images,
            target="kubernetes",
            server_replicas=3,
            embedder_replicas=2,
            embedder_max_replicas=6,
            db_password=SecretStr("golden-password"),
            auth_token=SecretStr("golden-token"),
            git=GitInputs(
                hosts=("git.example.com", "gitlab.internal:2222"),
                secrets={
                    "ssh-key": SecretRef(name="git-creds", key="id_ed25519"),
                    "known-hosts": SecretRef(name="git-creds", key="known_hosts"),
                    "token": SecretRef(name="git-token", key="token"),
                },
                shared_cache=True,
            ),
        ),
        "podman-git-4.3.yaml": RenderInputs(
            images=images,
            features=PODMAN_43,
            git=GitInputs(
                hosts=("git.example.com",),
                credentials=("ssh-key", "known-hosts"),
                credentials_dir="/home/dev/.local/share/codebase-mcp/pods/codebase-mcp/git",
            ),
        ),
        "kubernetes-ollama.yaml": RenderInputs(
            images={**images, "embedder": OLLAMA},
            embedder="ollama",
            target="kubernetes",
            db_password=SecretStr("golden-password"),
            auth_token=SecretStr("golden-token"),
        ),
    }


CASES = [
    "podman-prod-4.3.yaml",
    "podman-dev-4.3.yaml",
    "podman-test-5.0.yaml",
    "kubernetes-prod.yaml",
    "podman-ollama-4.3.yaml",
    "podman-auth-4.3.yaml",
    "podman-ollama-5.0.yaml",
    "kubernetes-ollama.yaml",
    "kubernetes-scale-git.yaml",
    "podman-git-4.3.yaml",
]


@pytest.mark.parametrize("golden", CASES)
def test_render_matches_the_reviewed_golden_file(
    golden: str, images: dict[str, str], templates: Path
) -> None:
    text = render(cases(images)[golden], templates)
    path = GOLDEN / golden
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{golden} changed: review, then UPDATE_GOLDEN=1"


@pytest.mark.parametrize("golden", CASES)
def test_every_document_validates_against_the_kubernetes_schema(
    golden: str, images: dict[str, str], templates: Path
) -> None:
    docs = documents(render(cases(images)[golden], templates))
    for doc in docs:
        # strict: unknown fields (typos) fail too
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_same_inputs_same_bytes_whatever_the_input_order(
    images: dict[str, str], templates: Path
) -> None:
    a = RenderInputs(images=images, repos=repo_mounts(["/r/b", "/r/a"]))
    b = RenderInputs(
        images=dict(reversed(list(images.items()))), repos=repo_mounts(["/r/a", "/r/b"])
    )
    assert render(a, templates) == render(b, templates)


def pod_of(text: str) -> dict[str, Any]:
    (pod,) = [d for d in documents(text) if d["kind"] == "Pod"]
    return pod


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


def test_podman_43_publishes_only_the_mcp_port_on_loopback(
    images: dict[str, str], templates: Path
) -> None:
    pod = pod_of(render(RenderInputs(images=images, port=9123, features=PODMAN_43), templates))
    ports = {name: c.get("ports", []) for name, c in containers(pod).items()}
    # A containerPort without hostPort is published on 0.0.0.0 before podman 4.8.
    assert ports["postgres"] == []
    assert ports["embedder"] == []
    assert ports["server"] == [
        {"name": "mcp", "containerPort": 8000, "hostPort": 9123, "hostIP": "127.0.0.1"}
    ]


def test_podman_43_gets_no_startup_probe_and_no_secret_document(
    images: dict[str, str], templates: Path
) -> None:
    text = render(RenderInputs(images=images, features=PODMAN_43), templates)
    assert [d["kind"] for d in documents(text)] == ["Pod"]
    for container in containers(pod_of(text)).values():
        assert "startupProbe" not in container
        assert "livenessProbe" in container


def test_podman_44_adds_startup_probes(images: dict[str, str], templates: Path) -> None:
    features = features_for(PodmanVersion(4, 4, 0))
    pod = pod_of(render(RenderInputs(images=images, features=features), templates))
    for container in containers(pod).values():
        assert (
            container["startupProbe"]["exec"]["command"]
            == (container["livenessProbe"]["exec"]["command"])
        )


def test_password_reaches_postgres_and_server_from_the_podman_secret(
    images: dict[str, str], templates: Path
) -> None:
    pod = pod_of(render(RenderInputs(name="cm", images=images), templates))
    refs = {}
    for name, c in containers(pod).items():
        for env in c.get("env", []):
            if "valueFrom" in env:
                refs[(name, env["name"])] = env["valueFrom"]["secretKeyRef"]
    assert refs == {
        ("postgres", "POSTGRES_PASSWORD"): {"name": "cm-db", "key": "password"},
        ("server", "DATABASE_PASSWORD"): {"name": "cm-db", "key": "password"},
    }


def test_every_container_is_locked_down(images: dict[str, str], templates: Path) -> None:
    pod = pod_of(render(RenderInputs(images=images), templates))
    uids = {}
    for name, c in containers(pod).items():
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        uids[name] = sc["runAsUser"]
        # a read-only root needs a writable /tmp
        assert "/tmp" in [m["mountPath"] for m in c["volumeMounts"]]
    assert uids == {"postgres": 999, "embedder": 10001, "server": 10001}


def test_probes_are_exec_probes_with_plain_argv(images: dict[str, str], templates: Path) -> None:
    pod = pod_of(render(RenderInputs(images=images), templates))
    commands = {n: c["livenessProbe"]["exec"]["command"] for n, c in containers(pod).items()}
    assert commands == {
        "postgres": ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "codebase"],
        "embedder": ["codebase-mcp", "embedder", "probe"],
        "server": ["codebase-mcp", "health"],
    }
    # podman 4.3 joins the argv under `sh -c`: an argument with a space would split.
    assert not any(" " in arg for argv in commands.values() for arg in argv)


def test_repositories_are_mounted_read_only_and_mapped_for_the_server(
    images: dict[str, str], templates: Path
) -> None:
    repos = repo_mounts(["/home/u/it's a repo", '/home/u/"quoted"'])
    pod = pod_of(render(RenderInputs(images=images, repos=repos), templates))
    server = containers(pod)["server"]
    mounts = {m["name"]: m for m in server["volumeMounts"] if m["name"].startswith("repo-")}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    pairs = sorted((volumes[n]["hostPath"]["path"], m["mountPath"]) for n, m in mounts.items())
    quoted, apostrophe = (
        repo_container_path('/home/u/"quoted"'),
        repo_container_path("/home/u/it's a repo"),
    )
    assert pairs == [('/home/u/"quoted"', quoted), ("/home/u/it's a repo", apostrophe)]
    assert all(m["readOnly"] for m in mounts.values())
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["CODEBASE_MCP_ROOTS"] == (
        f'/home/u/"quoted"={quoted},/home/u/it\'s a repo={apostrophe}'
    )


def test_named_volumes_keep_data_and_scratch_volumes_are_per_pod(
    images: dict[str, str], templates: Path
) -> None:
    pod = pod_of(render(RenderInputs(name="cm-a", images=images), templates))
    claims = sorted(
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    )
    assert claims == ["cm-a-models", "cm-a-pgdata"]
    scratch = sorted(v["name"] for v in pod["spec"]["volumes"] if "emptyDir" in v)
    # podman < 5.0 turns an emptyDir into a named volume called after it: two pods must differ.
    assert scratch == ["cm-a-embedder-tmp", "cm-a-postgres-tmp", "cm-a-server-tmp"]


def test_dev_profile_runs_the_checkout_with_hot_reload(
    images: dict[str, str], templates: Path
) -> None:
    inputs = RenderInputs(images=images, profile="dev", dev_source="/home/dev/cm")
    pod = pod_of(render(inputs, templates))
    server = containers(pod)["server"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["PYTHONPATH"] == "/workspace/src"
    assert server["args"][:3] == ["python3", "-m", "codebase_mcp.pod.devreload"]
    assert server["args"][-4:] == ["codebase-mcp", "serve", "--transport", "http"]
    source = next(v for v in pod["spec"]["volumes"] if v["name"] == "dev-source")
    assert source["hostPath"]["path"] == "/home/dev/cm"
    prod = pod_of(render(RenderInputs(images=images), templates))
    assert "args" not in containers(prod)["server"]


def test_registry_images_get_autoupdate_annotations(
    images: dict[str, str], templates: Path
) -> None:
    local = pod_of(render(RenderInputs(images=images), templates))
    assert "annotations" not in local["metadata"]
    remote = dict(images, server="ghcr.io/acme/codebase-mcp-server:3333")
    pod = pod_of(render(RenderInputs(images=remote), templates))
    assert pod["metadata"]["annotations"] == {"io.containers.autoupdate/server": "registry"}


def test_kubernetes_has_the_objects_a_cluster_needs(
    images: dict[str, str], templates: Path
) -> None:
    inputs = RenderInputs(
        name="cm", images=images, target="kubernetes", server_replicas=3,
        db_password=SecretStr("s3cret"), auth_token=SecretStr("t0ken"),
    )  # fmt: skip
    docs = documents(render(inputs, templates))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert kinds == {
        ("Secret", "cm-db"),
        ("Secret", "cm-auth"),
        ("Service", "cm-postgres"),
        ("StatefulSet", "cm-postgres"),
        ("Service", "cm-embedder"),
        ("Deployment", "cm-embedder"),
        ("HorizontalPodAutoscaler", "cm-embedder"),
        ("Service", "cm-server"),
        ("Deployment", "cm-server"),
        ("PersistentVolumeClaim", "cm-repos"),
    }
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by_kind[("Deployment", "cm-server")]["spec"]["replicas"] == 3
    statefulset = by_kind[("StatefulSet", "cm-postgres")]
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "pgdata"
    workloads = [("StatefulSet", "cm-postgres"), ("Deployment", "cm-embedder"),
                 ("Deployment", "cm-server")]  # fmt: skip
    for key in workloads:
        for c in by_kind[key]["spec"]["template"]["spec"]["containers"]:
            assert {"readinessProbe", "livenessProbe"} <= set(c), c["name"]
            assert c["resources"]["requests"], c["name"]
    server = by_kind[("Deployment", "cm-server")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["DATABASE_HOST"] == "cm-postgres"
    assert env["EMBEDDER_URL"] == "http://cm-embedder:11434"
    secret = by_kind[("Secret", "cm-db")]
    assert secret["data"] == {"password": "czNjcmV0"}  # base64 of s3cret


def test_undefined_template_variables_fail_loudly(images: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "podman.yaml.j2").write_text("kind: Pod\nname: {{ p.no_such_field }}\n")
    with pytest.raises(TemplateError, match="no_such_field"):
        render(RenderInputs(images=images), tmp_path)


def test_invalid_yaml_from_a_template_is_caught(images: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "podman.yaml.j2").write_text("kind: Pod\n  bad: [indent\n")
    with pytest.raises(TemplateError, match="invalid YAML"):
        render(RenderInputs(images=images), tmp_path)


def test_golden_files_are_parseable_yaml() -> None:
    for path in sorted(GOLDEN.glob("*.yaml")):
        assert list(yaml.safe_load_all(path.read_text())), path.name


def test_every_golden_file_has_a_case() -> None:
    # A stale golden file nobody renders any more would be reviewed for nothing.
    assert sorted(p.name for p in GOLDEN.glob("*.yaml")) == sorted(CASES)


def test_ollama_embedder_runs_the_pinned_image_with_its_model_volume(
    images: dict[str, str], templates: Path
) -> None:
    inputs = RenderInputs(
        images={**images, "embedder": OLLAMA}, embedder="ollama", features=PODMAN_50
    )
    pod = pod_of(render(inputs, templates))
    embedder, server = containers(pod)["embedder"], containers(pod)["server"]
    assert embedder["image"] == OLLAMA
    assert embedder["env"] == [{"name": "OLLAMA_HOST", "value": "127.0.0.1:11434"}]
    assert "args" not in embedder  # the image's own `ollama serve`
    assert embedder["startupProbe"]["exec"]["command"] == ["ollama", "list"]
    mounts = {m["name"]: m["mountPath"] for m in embedder["volumeMounts"]}
    assert mounts["models"] == "/root/.ollama"
    # Its own volume: the built embedder's is owned by uid 10001, which root without
    # CAP_DAC_OVERRIDE could not write to after a switch.
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["spec"]["volumes"]}
    assert claims["models"] == {"claimName": "codebase-mcp-ollama"}
    # Root in the upstream image, but nothing more than that.
    security = embedder["securityContext"]
    assert "runAsUser" not in security and "runAsNonRoot" not in security
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["EMBEDDER_MODEL"] == "nomic-embed-text"
    assert env["EMBEDDER_PULL"] == "true"
    # The first start pulls the model: the init and the startup probe wait for it.
    assert env["CODEBASE_MCP_INIT_DEADLINE"] == "900"
    assert (
        server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] > 900
    )
    # A digest-pinned image is never auto-updated.
    assert "annotations" not in pod["metadata"]


def test_builtin_embedder_is_the_default_and_needs_no_pull(
    images: dict[str, str], templates: Path
) -> None:
    pod = pod_of(render(RenderInputs(images=images), templates))
    env = {e["name"]: e.get("value") for e in containers(pod)["server"]["env"]}
    assert env["EMBEDDER_MODEL"] == "all-minilm"
    assert "EMBEDDER_PULL" not in env
    assert containers(pod)["embedder"]["securityContext"]["runAsUser"] == 10001


def test_an_explicit_model_overrides_the_embedders_default(images: dict[str, str]) -> None:
    inputs = RenderInputs(
        images={**images, "embedder": OLLAMA}, embedder="ollama", embedder_model="mxbai-embed-large"
    )
    assert inputs.model == "mxbai-embed-large"
    assert RenderInputs(images=images, embedder="ollama").model == "nomic-embed-text"


def test_ollama_on_kubernetes_keeps_its_models_on_a_claim(
    images: dict[str, str], templates: Path
) -> None:
    inputs = RenderInputs(
        images={**images, "embedder": OLLAMA},
        embedder="ollama",
        target="kubernetes",
        db_password=SecretStr("x"),
        auth_token=SecretStr("y"),
    )
    docs = documents(render(inputs, templates))
    # Every replica needs the model: a claim each (a StatefulSet), not one shared claim.
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert "codebase-mcp-ollama" not in claims
    (workload,) = [d for d in docs if d["metadata"]["name"] == "codebase-mcp-embedder"
                   and d["kind"] in ("Deployment", "StatefulSet")]  # fmt: skip
    assert workload["kind"] == "StatefulSet"
    (template,) = workload["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "models"
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "OLLAMA_HOST", "value": "0.0.0.0:11434"}]
    assert {"name": "models", "mountPath": "/root/.ollama"} in container["volumeMounts"]
    # each replica pulls the model itself, and takes traffic only once it has it
    pull = container["lifecycle"]["postStart"]["exec"]["command"]
    assert pull[-1] == "until ollama pull nomic-embed-text; do sleep 5; done"
    assert container["readinessProbe"]["exec"]["command"] == ["ollama", "show", "nomic-embed-text"]
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def server_env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_podman_says_where_it_publishes_the_server(images: dict[str, str], templates: Path) -> None:
    pod = pod_of(render(RenderInputs(images=images, port=9123), templates))
    env = server_env_of(containers(pod)["server"])
    # 0.0.0.0 inside the pod counts as local because it is published on loopback only
    assert env["CODEBASE_MCP_HOST"] == "0.0.0.0"
    assert env["CODEBASE_MCP_PUBLISHED_ON"] == "127.0.0.1:9123"
    assert "CODEBASE_MCP_AUTH_TOKEN" not in env
    v6 = pod_of(render(RenderInputs(images=images, port=9123, host_ip="::1"), templates))
    assert server_env_of(containers(v6)["server"])["CODEBASE_MCP_PUBLISHED_ON"] == "[::1]:9123"


def test_podman_auth_takes_the_token_from_its_own_podman_secret(
    images: dict[str, str], templates: Path
) -> None:
    for features in (PODMAN_43, PODMAN_50):
        inputs = RenderInputs(name="cm", images=images, auth=True, features=features)
        text = render(inputs, templates)
        pod = pod_of(text)
        env = server_env_of(containers(pod)["server"])
        assert env["CODEBASE_MCP_AUTH_TOKEN"] == {
            "secretKeyRef": {"name": "cm-auth", "key": "token"}
        }
        # only the server sees it; no Secret document (broken in 4.3), no token in the spec
        for name, c in containers(pod).items():
            names = {e["name"] for e in c.get("env", [])}
            assert ("CODEBASE_MCP_AUTH_TOKEN" in names) is (name == "server"), name
        assert [d["kind"] for d in documents(text)] == ["Pod"]


def test_kubernetes_always_has_auth_with_its_own_secret(
    images: dict[str, str], templates: Path
) -> None:
    inputs = RenderInputs(
        name="cm", images=images, target="kubernetes", auth=False,
        db_password=SecretStr("s3cret"), auth_token=SecretStr("t0ken-t0ken-t0ken"),
    )  # fmt: skip
    assert inputs.auth_enabled
    docs = documents(render(inputs, templates))
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by_kind[("Secret", "cm-auth")]["data"] == {"token": "dDBrZW4tdDBrZW4tdDBrZW4="}
    spec = by_kind[("Deployment", "cm-server")]["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    env = server_env_of(server)
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    assert env["CODEBASE_MCP_AUTH_TOKEN_FILE"] == mounts["auth-secret"]["mountPath"] + "/token"
    assert mounts["auth-secret"]["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["auth-secret"]["secret"]["secretName"] == "cm-auth"
    # the Service names are allowed hosts; the probe reaches /health by pod IP (exempt)
    hosts = env["CODEBASE_MCP_ALLOWED_HOSTS"].split(",")
    assert {"cm-server", "cm-server.*"} <= set(hosts)
    assert server["readinessProbe"]["httpGet"] == {"path": "/health", "port": "mcp"}
    # Postgres never sees the token
    (postgres,) = by_kind[("StatefulSet", "cm-postgres")]["spec"]["template"]["spec"]["containers"]
    assert "auth-secret" not in {m["name"] for m in postgres["volumeMounts"]}


def test_kubernetes_without_a_token_is_refused(images: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="auth_token"):
        RenderInputs(images=images, target="kubernetes", db_password=SecretStr("x"))
