"""The Kubernetes scale-out render (replicas, the embedders' autoscaler) and git sources' mounts.

Every rendered document is validated against the Kubernetes 1.30 schemas (strict: a
misspelt field fails), as in test_pod_render.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr, ValidationError

from codebase_mcp.errors import UsageError
from codebase_mcp.pod.features import PodmanVersion, features_for
from codebase_mcp.pod.models import GitInputs, RenderInputs, SecretRef, parse_secret_ref
from codebase_mcp.pod.render import documents, render

K8S_VERSION = "1.30"
PODMAN_43 = features_for(PodmanVersion(4, 3, 1))
OLLAMA = "docker.io/ollama/ollama@sha256:" + "ab" * 32
# Stand-ins for what a Secret would hold: they must never reach a rendered spec.
KEY_MATERIAL = "-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZQ==\n-----END OPENSSH PRIVATE KEY-----\n"


def k8s(images: dict[str, str], **extra: Any) -> RenderInputs:
    return RenderInputs(
        name="cm",
        images=images,
        target="kubernetes",
        db_password=SecretStr("pw"),
        auth_token=SecretStr("tok"),
        **extra,
    )


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def validate_all(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def server_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = by_key(docs)[("Deployment", "cm-server")]["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


ALL_GIT_SECRETS = {
    "ssh-key": SecretRef(name="git-creds", key="id_ed25519"),
    "known-hosts": SecretRef(name="git-creds", key="known_hosts"),
    "token": SecretRef(name="git-token", key="token"),
}


@pytest.mark.parametrize(("embedder", "servers", "minimum", "maximum"), [
    ("builtin", 1, 1, None), ("builtin", 4, 3, 10), ("ollama", 2, 2, None), ("ollama", 3, 1, 1),
])  # fmt: skip
def test_replicas_and_the_embedder_autoscaler(
    images: dict[str, str],
    templates: Path,
    embedder: str,
    servers: int,
    minimum: int,
    maximum: int | None,
) -> None:
    refs = {**images, "embedder": OLLAMA} if embedder == "ollama" else images
    inputs = k8s(
        refs,
        embedder=embedder,
        server_replicas=servers,
        embedder_replicas=minimum,
        embedder_max_replicas=maximum,
    )
    docs = documents(render(inputs, templates))
    validate_all(docs)
    objects = by_key(docs)
    assert objects[("Deployment", "cm-server")]["spec"]["replicas"] == servers
    kind = "StatefulSet" if embedder == "ollama" else "Deployment"
    workload = objects[(kind, "cm-embedder")]
    # the autoscaler owns the count: a re-apply must not reset it
    assert "replicas" not in workload["spec"]
    hpa = objects[("HorizontalPodAutoscaler", "cm-embedder")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": kind,
                                             "name": "cm-embedder"}  # fmt: skip
    assert hpa["spec"]["minReplicas"] == minimum
    assert hpa["spec"]["maxReplicas"] == (maximum or 2 * minimum)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    # utilisation is relative to the request: every embedder container has one
    for c in workload["spec"]["template"]["spec"]["containers"]:
        assert c["resources"]["requests"]["cpu"]
    # one Service per tier
    services = sorted(name for k, name in objects if k == "Service")
    assert services == ["cm-embedder", "cm-postgres", "cm-server"]
    # Postgres stays one StatefulSet with its volume
    postgres = objects[("StatefulSet", "cm-postgres")]
    assert postgres["spec"]["replicas"] == 1
    assert postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "pgdata"


def test_the_server_reaches_the_embedders_through_their_service(
    images: dict[str, str], templates: Path
) -> None:
    docs = documents(render(k8s(images, embedder_replicas=3), templates))
    (server,) = server_of(docs)["containers"]
    env = env_of(server)
    assert env["CODEBASE_MCP_EMBEDDER_URLS"] == "http://cm-embedder:11434"
    assert env["EMBEDDER_URL"] == "http://cm-embedder:11434"
    service = by_key(docs)[("Service", "cm-embedder")]
    # a ClusterIP Service (not headless): one stable address in front of every replica
    assert "clusterIP" not in service["spec"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "embedder"


def test_podman_has_one_embedder_and_no_urls_list(images: dict[str, str], templates: Path) -> None:
    (pod,) = documents(render(RenderInputs(images=images, features=PODMAN_43), templates))
    (server,) = [c for c in pod["spec"]["containers"] if c["name"] == "server"]
    assert "CODEBASE_MCP_EMBEDDER_URLS" not in env_of(server)


def test_max_below_min_is_refused(images: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match=r"embedder_max_replicas \(2\) is below"):
        k8s(images, embedder_replicas=3, embedder_max_replicas=2)


@pytest.mark.parametrize("shared", [False, True])
def test_kubernetes_git_cache_and_credentials_from_secret_references(
    images: dict[str, str], templates: Path, shared: bool
) -> None:
    git = GitInputs(hosts=("git.example.com",), secrets=ALL_GIT_SECRETS, shared_cache=shared)
    text = render(k8s(images, git=git, server_replicas=3), templates)
    docs = documents(text)
    validate_all(docs)
    spec = server_of(docs)
    (server,) = spec["containers"]
    env = env_of(server)
    assert env["CODEBASE_MCP_GIT_HOSTS"] == "git.example.com"
    assert env["CODEBASE_MCP_GIT_CACHE"] == "/var/cache/codebase-mcp/git"
    assert env["CODEBASE_MCP_GIT_SSH_KEY_FILE"] == "/run/secrets/git/ssh-key"
    assert env["CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE"] == "/run/secrets/git/known-hosts"
    assert env["CODEBASE_MCP_GIT_TOKEN_FILE"] == "/run/secrets/git/token"
    # files only: no git setting comes from a secretKeyRef, nothing git in args
    assert not any(k.startswith("CODEBASE_MCP_GIT") and not isinstance(v, str)
                   for k, v in env.items())  # fmt: skip
    assert "args" not in server and "command" not in server
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    assert mounts["git-cache"]["mountPath"] == "/var/cache/codebase-mcp/git"
    assert mounts["git-credentials"] == {
        "name": "git-credentials", "mountPath": "/run/secrets/git", "readOnly": True,
    }  # fmt: skip
    volumes = {v["name"]: v for v in spec["volumes"]}
    projected = volumes["git-credentials"]["projected"]
    assert projected["defaultMode"] == 0o440  # group-readable by the fsGroup, nobody else
    assert spec["securityContext"]["fsGroup"] == 10001
    items = {
        (s["secret"]["name"], i["key"], i["path"])
        for s in projected["sources"]
        for i in s["secret"]["items"]
    }
    assert items == {
        ("git-creds", "id_ed25519", "ssh-key"),
        ("git-creds", "known_hosts", "known-hosts"),
        ("git-token", "token", "token"),
    }
    claims = {n for k, n in by_key(docs) if k == "PersistentVolumeClaim"}
    if shared:
        assert volumes["git-cache"] == {
            "name": "git-cache", "persistentVolumeClaim": {"claimName": "cm-git"},
        }  # fmt: skip
        claim = by_key(docs)[("PersistentVolumeClaim", "cm-git")]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    else:
        # one cache per replica, sized
        assert volumes["git-cache"]["emptyDir"] == {"sizeLimit": "10Gi"}
        assert "cm-git" not in claims
    # the render knows Secret names, never their content: no Secret document for git
    assert {n for k, n in by_key(docs) if k == "Secret"} == {"cm-db", "cm-auth"}


def test_only_the_credentials_given_are_mounted_and_named(
    images: dict[str, str], templates: Path
) -> None:
    git = GitInputs(hosts=("h.example",), secrets={"token": SecretRef(name="t", key="token")})
    (server,) = server_of(documents(render(k8s(images, git=git), templates)))["containers"]
    env = env_of(server)
    assert env["CODEBASE_MCP_GIT_TOKEN_FILE"] == "/run/secrets/git/token"
    assert "CODEBASE_MCP_GIT_SSH_KEY_FILE" not in env
    assert "CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE" not in env
    # git hosts alone (public repositories): a cache, no credentials volume
    bare = GitInputs(hosts=("h.example",))
    spec = server_of(documents(render(k8s(images, git=bare), templates)))
    assert {v["name"] for v in spec["volumes"]} >= {"git-cache"}
    assert "git-credentials" not in {v["name"] for v in spec["volumes"]}


def test_without_git_nothing_git_is_rendered(images: dict[str, str], templates: Path) -> None:
    for inputs in (k8s(images), RenderInputs(images=images)):
        text = render(inputs, templates)
        assert "CODEBASE_MCP_GIT" not in text
        assert "git-cache" not in text and "git-credentials" not in text


def test_podman_mounts_the_private_copy_read_only_and_the_cache_volume(
    images: dict[str, str], templates: Path
) -> None:
    git = GitInputs(
        hosts=("git.example.com", "Gitlab.Internal:2222"),
        credentials=("token", "ssh-key", "known-hosts"),
        credentials_dir="/data/pods/cm/git",
    )
    text = render(RenderInputs(name="cm", images=images, features=PODMAN_43, git=git), templates)
    (pod,) = documents(text)
    (server,) = [c for c in pod["spec"]["containers"] if c["name"] == "server"]
    env = env_of(server)
    assert env["CODEBASE_MCP_GIT_HOSTS"] == "git.example.com,gitlab.internal:2222"
    for var, name in [("SSH_KEY", "ssh-key"), ("TOKEN", "token"), ("KNOWN_HOSTS", "known-hosts")]:
        assert env[f"CODEBASE_MCP_GIT_{var}_FILE"] == f"/run/secrets/git/{name}"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["git-credentials"]["hostPath"] == {"path": "/data/pods/cm/git",
                                                      "type": "Directory"}  # fmt: skip
    assert volumes["git-cache"]["persistentVolumeClaim"] == {"claimName": "cm-git"}
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    assert mounts["git-credentials"]["readOnly"] is True
    # only the server gets them; no Secret document (broken on 4.3); valid Pod schema
    others = [c for c in pod["spec"]["containers"] if c["name"] != "server"]
    assert all("git" not in str(c) for c in others)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_a_rendered_spec_never_holds_credential_content(
    images: dict[str, str], templates: Path
) -> None:
    # The render gets names and paths only: there is no field that could carry a key.
    fields = set(GitInputs.model_fields)
    assert fields == {"hosts", "credentials", "credentials_dir", "secrets", "shared_cache",
                      "cache_size"}  # fmt: skip
    git = GitInputs(hosts=("h.example",), secrets=ALL_GIT_SECRETS)
    text = render(k8s(images, git=git), templates)
    assert KEY_MATERIAL.splitlines()[1] not in text
    assert "PRIVATE KEY" not in text


@pytest.mark.parametrize(("bad", "match"), [
    ({"hosts": ()}, "at least 1"),
    ({"hosts": ("-oProxyCommand=x",)}, "CODEBASE_MCP_GIT_HOSTS|host"),
    ({"hosts": ("h",), "cache_size": "10GB"}, "quantity"),
])  # fmt: skip
def test_bad_git_inputs_are_refused(bad: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        GitInputs(**bad)


def test_credentials_must_suit_the_target(images: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="not Secret references"):
        RenderInputs(images=images, git=GitInputs(hosts=("h",), secrets=ALL_GIT_SECRETS))
    with pytest.raises(ValidationError, match="need credentials_dir"):
        RenderInputs(images=images, git=GitInputs(hosts=("h",), credentials=("token",)))
    with pytest.raises(ValidationError, match="Secret references"):
        k8s(images, git=GitInputs(hosts=("h",), credentials=("token",), credentials_dir="/x"))


def test_secret_references_parse_with_a_default_key() -> None:
    assert parse_secret_ref("git-creds", "ssh-key") == SecretRef(name="git-creds", key="ssh-key")
    assert parse_secret_ref("a.b:id_rsa", "ssh-key") == SecretRef(name="a.b", key="id_rsa")
    for bad in ("Git_Creds", "x:a/b", ":k", "x:.."):
        with pytest.raises(UsageError, match="bad Secret reference"):
            parse_secret_ref(bad, "token")


def test_golden_scale_git_file_is_what_it_claims(templates: Path) -> None:
    # the reviewed golden file: 3 servers, 2..6 embedders, every credential, a shared cache
    docs = list(yaml.safe_load_all((Path(__file__).parent / "golden" /
                                    "kubernetes-scale-git.yaml").read_text()))  # fmt: skip
    objects = by_key([d for d in docs if d])
    assert objects[("Deployment", "codebase-mcp-server")]["spec"]["replicas"] == 3
    hpa = objects[("HorizontalPodAutoscaler", "codebase-mcp-embedder")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert ("PersistentVolumeClaim", "codebase-mcp-git") in objects
