"""The inputs a render needs, validated: every name, port and path the templates use.

Everything here is data; nothing reads the host. ``RenderInputs.derived``
spells out the names built from the pod name (volumes, secret, containers) so
the templates, ``down --volumes`` and the tests agree on them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from codebase_mcp.errors import CodebaseMcpError, UsageError
from codebase_mcp.pod.features import OLDEST_SUPPORTED, Features, features_for

Profile = Literal["dev", "prod", "test"]
Target = Literal["podman", "kubernetes"]
# builtin: the embedder image built here (offline, reproducible, CPU, all-minilm).
# ollama: the upstream Ollama image pinned by digest in the lock (GPU capable,
# nomic-embed-text pulled into the models volume at first start: needs network).
Embedder = Literal["builtin", "ollama"]
EMBEDDERS: tuple[str, ...] = get_args(Embedder)

IMAGE_NAMES: tuple[str, ...] = ("embedder", "postgres", "server")
# The upstream image (images/upstream.toml) and the model each embedder serves by default.
UPSTREAM_EMBEDDER = "ollama"
DEFAULT_MODELS: dict[str, str] = {"builtin": "all-minilm", "ollama": "nomic-embed-text"}
CONTAINERS: tuple[str, ...] = ("postgres", "embedder", "server")  # start order
DEFAULT_NAME = "codebase-mcp"
DEFAULT_PORT = 8000
CONTAINER_PORT = 8000  # the server listens here inside the pod (CODEBASE_MCP_PORT)
EMBEDDER_PORT = 11434
POSTGRES_PORT = 5432
# Where the server image installs the package (images/server: /opt/venv, Python 3.13).
SITE_PACKAGES = "/opt/venv/lib/python3.13/site-packages"
DEV_SOURCE_MOUNT = "/src"
# Embedders on Kubernetes: a HorizontalPodAutoscaler keeps them between the minimum
# (--embedder-replicas) and this many times it unless --embedder-max-replicas says otherwise.
EMBEDDER_MAX_FACTOR = 2
EMBEDDER_CPU_TARGET = 70  # percent of the CPU request, averaged over the embedders

# Git sources (docs/server.md, "Git sources"): the cache volume and the credential files.
GIT_CACHE_PATH = "/var/cache/codebase-mcp/git"
GIT_SECRET_MOUNT = "/run/secrets/git"  # noqa: S105 - a mount point, not a secret
GitCredential = Literal["known-hosts", "ssh-key", "token"]
GIT_CREDENTIALS: tuple[GitCredential, ...] = get_args(GitCredential)
# The server setting that names each mounted file (CODEBASE_MCP_GIT_*).
GIT_CREDENTIAL_SETTINGS: dict[str, str] = {
    "known-hosts": "CODEBASE_MCP_GIT_KNOWN_HOSTS_FILE",
    "ssh-key": "CODEBASE_MCP_GIT_SSH_KEY_FILE",
    "token": "CODEBASE_MCP_GIT_TOKEN_FILE",
}
SERVER_UID = 10001  # the server image's user (images/server/image.toml)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


class RepoMount(BaseModel):
    """A host repository mounted read-only in the server container."""

    model_config = ConfigDict(frozen=True)

    host_path: str
    container_path: str


_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


class SecretRef(BaseModel):
    """A key of a Kubernetes Secret that exists in the cluster (never its content)."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str

    @field_validator("name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not _SECRET_NAME.match(value):
            raise ValueError(f"{value!r} is not a Secret name (lower-case DNS subdomain)")
        return value

    @field_validator("key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not _SECRET_KEY.match(value) or value in (".", ".."):
            raise ValueError(f"{value!r} is not a Secret key (letters, digits, '-', '_', '.')")
        return value


def parse_secret_ref(text: str, default_key: str) -> SecretRef:
    """``NAME`` or ``NAME:KEY`` (the form of the --git-*-secret options)."""
    name, _, key = text.partition(":")
    try:
        return SecretRef(name=name, key=key or default_key)
    except ValueError as exc:
        raise UsageError(
            f"bad Secret reference {text!r}: {exc}",
            hint="write NAME or NAME:KEY, e.g. git-creds:id_ed25519",
        ) from exc


class GitInputs(BaseModel):
    """Git sources in the deployment: allowed hosts, the cache volume, credential mounts.

    podman: ``credentials`` names the files ``up`` copied into ``credentials_dir``
    (a private host directory, bind-mounted read-only). kubernetes: ``secrets``
    names a Secret key per credential, projected into one read-only volume.
    Either way the server gets file paths only, never the content.
    """

    model_config = ConfigDict(frozen=True)

    hosts: tuple[str, ...] = Field(min_length=1)
    credentials: tuple[GitCredential, ...] = ()
    credentials_dir: str | None = None
    secrets: dict[GitCredential, SecretRef] = Field(default_factory=dict)
    # kubernetes: False = an emptyDir per server replica; True = one ReadWriteMany claim.
    shared_cache: bool = False
    cache_size: str = "10Gi"

    @field_validator("hosts")
    @classmethod
    def _hosts_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from codebase_mcp.server.gitsource.urls import parse_host_rules

        hosts = tuple(sorted({h.strip().lower() for h in value if h.strip()}))
        try:
            parse_host_rules(",".join(hosts))
        except CodebaseMcpError as exc:
            raise ValueError(exc.message) from exc
        if not hosts:
            raise ValueError("git sources need at least one allowed host")
        return hosts

    @field_validator("credentials")
    @classmethod
    def _sorted_credentials(cls, value: tuple[GitCredential, ...]) -> tuple[GitCredential, ...]:
        return tuple(sorted(set(value)))

    @field_validator("secrets")
    @classmethod
    def _sorted_secrets(
        cls, value: dict[GitCredential, SecretRef]
    ) -> dict[GitCredential, SecretRef]:
        return {k: value[k] for k in sorted(value)}

    @field_validator("cache_size")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not re.match(r"^[1-9][0-9]*(Ki|Mi|Gi|Ti)$", value):
            raise ValueError(f"cache size {value!r} is not a quantity like 10Gi or 500Mi")
        return value

    def mounted(self, target: str) -> tuple[str, ...]:
        """The credentials present for ``target``, sorted."""
        return tuple(self.secrets) if target == "kubernetes" else self.credentials

    def env(self, target: str) -> dict[str, str]:
        env = {
            "CODEBASE_MCP_GIT_CACHE": GIT_CACHE_PATH,
            "CODEBASE_MCP_GIT_HOSTS": ",".join(self.hosts),
        }
        for kind in self.mounted(target):
            env[GIT_CREDENTIAL_SETTINGS[kind]] = f"{GIT_SECRET_MOUNT}/{kind}"
        return env


class Names(BaseModel):
    """Every podman/Kubernetes object name derived from the pod name."""

    model_config = ConfigDict(frozen=True)

    pod: str
    secret: str
    auth_secret: str  # the MCP bearer token (up --auth, the kubernetes target)
    pgdata: str
    models: str
    ollama: str  # upstream Ollama's ~/.ollama: its own volume (owned by root, not uid 10001)
    git_cache: str  # the git sources' cache: mirrors and checkouts (owned by uid 10001)
    scratch: dict[str, str]  # container -> volume backing its /tmp (podman < 5.0: a named volume)

    def container(self, name: str) -> str:
        """podman kube play names containers ``<pod>-<container>``."""
        return f"{self.pod}-{name}"

    def data_volumes(self) -> list[str]:
        return [self.pgdata, self.models, self.ollama, self.git_cache]

    def scratch_volumes(self) -> list[str]:
        return sorted(self.scratch.values())


def names_for(pod: str) -> Names:
    return Names(
        pod=pod,
        secret=f"{pod}-db",
        auth_secret=f"{pod}-auth",
        pgdata=f"{pod}-pgdata",
        models=f"{pod}-models",
        ollama=f"{pod}-ollama",
        git_cache=f"{pod}-git",
        scratch={c: f"{pod}-{c}-tmp" for c in CONTAINERS},
    )


class RenderInputs(BaseModel):
    """All a template sees. Same inputs, same bytes: lists are sorted here."""

    model_config = ConfigDict(frozen=True)

    name: str = DEFAULT_NAME
    profile: Profile = "prod"
    target: Target = "podman"
    images: dict[str, str]
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    host_ip: str = "127.0.0.1"
    repos: tuple[RepoMount, ...] = ()
    features: Features = features_for(OLDEST_SUPPORTED)
    db_user: str = "codebase"
    db_name: str = "codebase"
    embedder: Embedder = "builtin"
    embedder_model: str | None = None  # None: DEFAULT_MODELS[embedder]
    dev_source: str | None = None  # project checkout bind-mounted by the dev profile
    server_replicas: int = Field(default=2, ge=1, le=50)
    # kubernetes: the embedders' minimum (and first) replica count, and the autoscaler's
    # maximum (None: EMBEDDER_MAX_FACTOR times the minimum).
    embedder_replicas: int = Field(default=1, ge=1, le=50)
    embedder_max_replicas: int | None = Field(default=None, ge=1, le=100)
    git: GitInputs | None = None
    # Only the kubernetes target embeds the password (in its Secret); the
    # podman target refers to a podman secret created out of band.
    db_password: SecretStr | None = None
    # Bearer token on /mcp: podman with `up --auth` (a podman secret, created out of
    # band); the kubernetes target always (embedded in its Secret, like the password).
    auth: bool = False
    auth_token: SecretStr | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(
                "pod name must be 1-40 lower-case letters, digits or '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("images")
    @classmethod
    def _all_images(cls, value: dict[str, str]) -> dict[str, str]:
        missing = sorted(set(IMAGE_NAMES) - set(value))
        if missing:
            raise ValueError(f"image refs missing for: {', '.join(missing)}")
        return {k: value[k] for k in sorted(value)}

    @model_validator(mode="after")
    def _profile_needs(self) -> RenderInputs:
        if self.profile == "dev" and self.target == "podman" and not self.dev_source:
            raise ValueError("the dev profile needs dev_source (the project checkout)")
        if self.target == "kubernetes" and self.db_password is None:
            raise ValueError("the kubernetes target needs db_password for its Secret")
        if self.target == "kubernetes" and self.auth_token is None:
            raise ValueError("the kubernetes target needs auth_token for its Secret")
        if self.embedder_max_replicas is not None and (
            self.embedder_max_replicas < self.embedder_replicas
        ):
            raise ValueError(
                f"embedder_max_replicas ({self.embedder_max_replicas}) is below "
                f"embedder_replicas ({self.embedder_replicas})"
            )
        git = self.git
        if git is not None and self.target == "podman":
            if git.secrets:
                raise ValueError("podman mounts git credential files, not Secret references")
            if git.credentials and not git.credentials_dir:
                raise ValueError("git credentials on podman need credentials_dir")
        if git is not None and self.target == "kubernetes" and git.credentials:
            raise ValueError("kubernetes takes git credentials as Secret references (secrets)")
        return self

    @property
    def embedder_max(self) -> int:
        """The autoscaler's upper bound for the embedders."""
        return self.embedder_max_replicas or self.embedder_replicas * EMBEDDER_MAX_FACTOR

    @property
    def auth_enabled(self) -> bool:
        """A cluster is reachable by anyone who reaches the Service: auth is always on."""
        return self.auth or self.target == "kubernetes"

    @property
    def names(self) -> Names:
        return names_for(self.name)

    @property
    def models_volume(self) -> str:
        """The embedder's data volume: the two embedders never share one."""
        return self.names.ollama if self.embedder == "ollama" else self.names.models

    @property
    def model(self) -> str:
        """The model the server asks the embedder for."""
        return self.embedder_model or DEFAULT_MODELS[self.embedder]

    @property
    def roots_env(self) -> str:
        """``CODEBASE_MCP_ROOTS``: host=container pairs the server maps paths with."""
        return ",".join(f"{r.host_path}={r.container_path}" for r in self.repos)


def built_images(embedder: Embedder) -> list[str]:
    """The images built here for a stack using ``embedder`` (ollama's comes from a registry)."""
    return [n for n in IMAGE_NAMES if not (n == "embedder" and embedder == "ollama")]


def repo_container_path(host_path: str) -> str:
    """Where ``host_path`` is mounted: ``/repos/<name>-<hash of the host path>``.

    Derived from the path alone, never from its position in the list, so adding,
    removing or skipping another repository never moves this one: the index stores
    container paths, and a moved mount would orphan it (and re-embed everything).
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(host_path).name).strip("._") or "root"
    digest = hashlib.sha256(host_path.encode()).hexdigest()[:10]
    return f"/repos/{name[:40]}-{digest}"


def repo_mounts(host_paths: list[str]) -> tuple[RepoMount, ...]:
    """Sorted, de-duplicated absolute host paths and their stable container paths."""
    unique = sorted(set(host_paths))
    for path in unique:
        if not path.startswith("/"):
            raise UsageError(
                f"repository path {path!r} is not absolute", hint="pass an absolute path"
            )
        if "," in path or "=" in path:
            raise UsageError(
                f"repository path {path!r} contains ',' or '='",
                hint="CODEBASE_MCP_ROOTS separates pairs with ',' and '=': rename or symlink it",
            )
    return tuple(RepoMount(host_path=p, container_path=repo_container_path(p)) for p in unique)


def retarget(refs: dict[str, str], registry: str) -> dict[str, str]:
    """``localhost/codebase-mcp-x:tag`` → ``REGISTRY/codebase-mcp-x:tag`` (published images)."""
    prefix = registry.rstrip("/")
    out = {}
    for name, ref in sorted(refs.items()):
        tail = ref.split("/", 1)[1] if ref.startswith("localhost/") else ref.rsplit("/", 1)[-1]
        out[name] = f"{prefix}/{tail}"
    return out
