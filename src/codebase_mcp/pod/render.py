"""Render the stack from the Jinja2 templates under ``images/pod/``: a pure function.

Same :class:`RenderInputs`, same bytes: the templates see only sorted data,
``StrictUndefined`` turns a typo into an error, and every string is emitted
JSON-quoted (valid YAML, whatever it contains). The output is parsed back
before it is returned so a template bug never reaches podman.
"""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import Any

import jinja2
import yaml

from codebase_mcp.builder.api import repo_root
from codebase_mcp.errors import TemplateError
from codebase_mcp.pod.models import (
    CONTAINER_PORT,
    CONTAINERS,
    EMBEDDER_CPU_TARGET,
    EMBEDDER_PORT,
    GIT_CACHE_PATH,
    GIT_SECRET_MOUNT,
    POSTGRES_PORT,
    SERVER_UID,
    RenderInputs,
)

TEMPLATES = {"podman": "podman.yaml.j2", "kubernetes": "kubernetes.yaml.j2"}
# The dev profile mounts the checkout here and puts its src/ first on sys.path,
# so the server runs the working tree's code (and finds migrations/ beside it).
DEV_MOUNT = "/workspace"
# Where the kubernetes target mounts the auth Secret in the server container.
AUTH_MOUNT = "/run/secrets/auth"


def templates_dir() -> Path:
    return repo_root() / "images" / "pod"


def _quote(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def probes(inputs: RenderInputs) -> dict[str, list[str]]:
    """Exec probes: binaries present in each image, argv without spaces (podman 4.3 splits)."""
    return {
        "postgres": [
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-p",
            str(POSTGRES_PORT),
            "-U",
            inputs.db_user,
        ],
        # Ollama's client talks to OLLAMA_HOST, which the container's env sets.
        "embedder": (
            ["ollama", "list"]
            if inputs.embedder == "ollama"
            else ["codebase-mcp", "embedder", "probe"]
        ),
        "server": ["codebase-mcp", "health"],
    }


def server_start_seconds(inputs: RenderInputs) -> int:
    """How long the server's init may wait for its dependencies before it gives up.

    Upstream Ollama starts without the model: the init pulls nomic-embed-text
    (274 MB) at first start, so it gets 15 minutes, not two.
    """
    return 900 if inputs.embedder == "ollama" else 120


def embedder_spec(inputs: RenderInputs) -> dict[str, Any]:
    """What differs between the built embedder and upstream Ollama in its container."""
    if inputs.embedder == "ollama":
        return {
            # The upstream image runs as root and keeps keys and models in ~/.ollama;
            # capabilities are still dropped and the root filesystem stays read-only.
            "user": None,
            "models_path": "/root/.ollama",
            "tmp_limit": "256Mi",
            "upstream": True,
        }
    return {"user": 10001, "models_path": "/models", "tmp_limit": "64Mi", "upstream": False}


def server_env(
    inputs: RenderInputs, *, database_host: str, embedder_host: str
) -> list[tuple[str, str]]:
    env = {
        # rootlessport forwards to the pod's IP, not loopback: listen on all addresses.
        "CODEBASE_MCP_HOST": "0.0.0.0",  # noqa: S104
        "CODEBASE_MCP_PORT": str(CONTAINER_PORT),
        "DATABASE_HOST": database_host,
        "DATABASE_NAME": inputs.db_name,
        "DATABASE_PORT": str(POSTGRES_PORT),
        "DATABASE_USER": inputs.db_user,
        "EMBEDDER_MODEL": inputs.model,
        "EMBEDDER_URL": f"http://{embedder_host}:{EMBEDDER_PORT}",
    }
    if inputs.target == "kubernetes":
        # The embedders' one Service: kube-proxy spreads the server's connections over
        # however many replicas the autoscaler runs (a fixed list could not follow it).
        env["CODEBASE_MCP_EMBEDDER_URLS"] = env["EMBEDDER_URL"]
    if inputs.git is not None:
        env.update(inputs.git.env(inputs.target))
    if inputs.embedder == "ollama":
        # Upstream Ollama has no model until one is pulled: the init pulls it (needs network).
        env["EMBEDDER_PULL"] = "true"
    if inputs.target == "podman" or inputs.embedder == "ollama":
        # A cold first start (initdb, model load; Ollama: the model pull) outlasts the
        # init's default deadline.
        env["CODEBASE_MCP_INIT_DEADLINE"] = str(server_start_seconds(inputs))
    if inputs.target == "podman":
        # Postgres and the embedder start beside the server: retry them often (at most every
        # second, not the default 5 s) so the server is up as soon as they are.
        env["CODEBASE_MCP_INIT_BACKOFF_MAX"] = "1"
    if inputs.target == "podman" and inputs.repos:
        env["CODEBASE_MCP_ROOTS"] = inputs.roots_env
    if inputs.target == "kubernetes":
        env["CODEBASE_MCP_ROOTS"] = "/repos=/repos"
    env.update(security_env(inputs))
    if inputs.profile == "dev" and inputs.target == "podman":
        env["PYTHONPATH"] = f"{DEV_MOUNT}/src"
    return sorted(env.items())


def published_on(inputs: RenderInputs) -> str:
    """The host address and port podman publishes the server on (``[v6]:port`` bracketed)."""
    host = f"[{inputs.host_ip}]" if ":" in inputs.host_ip else inputs.host_ip
    return f"{host}:{inputs.port}"


def security_env(inputs: RenderInputs) -> dict[str, str]:
    """How the server learns who may reach it (see codebase_mcp.server.security).

    podman: it listens on 0.0.0.0 inside the pod but is published on
    ``host_ip:port`` only; saying so makes that bind count as local (no token
    needed on loopback) and lets clients use the published port in ``Host``.
    kubernetes: the Service's names (short and fully qualified) and loopback on
    any port (``kubectl port-forward``) are allowed hosts; the token is a file.
    The podman token comes from a podman secret (env secretKeyRef, see the template).
    """
    if inputs.target == "podman":
        return {"CODEBASE_MCP_PUBLISHED_ON": published_on(inputs)}
    service = f"{inputs.name}-server"
    return {
        "CODEBASE_MCP_ALLOWED_HOSTS": f"{service},{service}.*,localhost:*,127.0.0.1:*,[::1]:*",
        "CODEBASE_MCP_AUTH_TOKEN_FILE": f"{AUTH_MOUNT}/token",
    }


def server_args(inputs: RenderInputs) -> list[str]:
    """Arguments after the image's ``codebase-mcp init --`` entrypoint ([] = the image's CMD)."""
    if inputs.profile != "dev" or inputs.target != "podman":
        return []
    return [
        "python3", "-m", "codebase_mcp.pod.devreload",
        "--watch", f"{DEV_MOUNT}/src", "--watch", f"{DEV_MOUNT}/migrations",
        "--", "codebase-mcp", "serve", "--transport", "http",
    ]  # fmt: skip


def embedder_workload(inputs: RenderInputs) -> str:
    """The embedders' kind on Kubernetes.

    The built embedder keeps nothing: a Deployment. Upstream Ollama pulls its model
    into its volume, and every replica needs the model: a StatefulSet gives each
    replica its own claim, kept across restarts and scale-downs.
    """
    return "StatefulSet" if inputs.embedder == "ollama" else "Deployment"


def ollama_pull(inputs: RenderInputs) -> list[str]:
    """Each Ollama replica pulls the model itself, retrying until its server answers."""
    return ["/bin/sh", "-c", f"until ollama pull {shlex.quote(inputs.model)}; do sleep 5; done"]


def autoupdate_containers(inputs: RenderInputs) -> list[str]:
    """Containers whose image comes from a registry by tag: `podman auto-update` may pull newer.

    An image pinned by digest (upstream Ollama) is never auto-updated: a new
    digest comes in through the lock, like every other input.
    """
    return [
        c
        for c in CONTAINERS
        if not inputs.images[c].startswith("localhost/") and "@sha256:" not in inputs.images[c]
    ]


def context(inputs: RenderInputs) -> dict[str, Any]:
    kubernetes = inputs.target == "kubernetes"
    password = inputs.db_password.get_secret_value() if inputs.db_password else ""
    token = inputs.auth_token.get_secret_value() if inputs.auth_token else ""
    return {
        "p": inputs,
        "n": inputs.names,
        "f": inputs.features,
        "containers": list(CONTAINERS),
        "probes": probes(inputs),
        "ports": {"postgres": POSTGRES_PORT, "embedder": EMBEDDER_PORT, "server": CONTAINER_PORT},
        "server_env": server_env(
            inputs,
            database_host=f"{inputs.name}-postgres" if kubernetes else "127.0.0.1",
            embedder_host=f"{inputs.name}-embedder" if kubernetes else "127.0.0.1",
        ),
        "server_args": server_args(inputs),
        "server_start": server_start_seconds(inputs),
        "embedder": embedder_spec(inputs),
        # Ollama's listen address: loopback inside the pod, all addresses behind a Service.
        "ollama_host": f"{'0.0.0.0' if kubernetes else '127.0.0.1'}:{EMBEDDER_PORT}",  # noqa: S104
        "dev_mount": DEV_MOUNT,
        "autoupdate": autoupdate_containers(inputs),
        "password_b64": base64.b64encode(password.encode()).decode(),
        "token_b64": base64.b64encode(token.encode()).decode(),
        "auth_mount": AUTH_MOUNT,
        "git": inputs.git,
        "git_mounted": inputs.git.mounted(inputs.target) if inputs.git else (),
        "git_cache_path": GIT_CACHE_PATH,
        "git_secret_mount": GIT_SECRET_MOUNT,
        "server_uid": SERVER_UID,
        "embedder_kind": embedder_workload(inputs),
        "ollama_pull": ollama_pull(inputs),
        "embedder_cpu_target": EMBEDDER_CPU_TARGET,
    }


def environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - YAML, not HTML; strings are JSON-quoted by |q
    )
    env.filters["q"] = _quote
    return env


def render(inputs: RenderInputs, directory: Path | None = None) -> str:
    """The YAML for ``inputs.target``; raises TemplateError if the templates misbehave."""
    directory = directory or templates_dir()
    name = TEMPLATES[inputs.target]
    try:
        text = environment(directory).get_template(name).render(context(inputs))
    except jinja2.TemplateError as exc:
        raise TemplateError(
            f"rendering images/pod/{name} failed: {exc}",
            hint="the template and codebase_mcp.pod.render disagree; run the pod unit tests",
        ) from exc
    documents(text, name)
    return text


def documents(text: str, name: str = "the rendered YAML") -> list[dict[str, Any]]:
    """Parse a multi-document YAML; TemplateError when it is not a list of objects."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise TemplateError(
            f"{name} rendered invalid YAML: {exc}", hint="fix the template's indentation"
        ) from exc
    if not docs or not all(isinstance(d, dict) and "kind" in d for d in docs):
        raise TemplateError(f"{name} rendered something that is not Kubernetes objects")
    return docs
