"""``codebase-mcp up|down|status|logs`` and ``codebase-mcp pod render|install-service``."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import click
from pydantic import SecretStr

from codebase_mcp import proc, ui
from codebase_mcp.builder.api import repo_root, upstream_ref
from codebase_mcp.errors import PodError, UsageError
from codebase_mcp.pod import secret, systemd
from codebase_mcp.pod.clientconfig import instructions
from codebase_mcp.pod.features import OLDEST_SUPPORTED, detect_version, features_for, parse_version
from codebase_mcp.pod.lifecycle import Lifecycle, UpOptions, planned_refs
from codebase_mcp.pod.models import (
    DEFAULT_NAME,
    DEFAULT_PORT,
    EMBEDDERS,
    UPSTREAM_EMBEDDER,
    GitInputs,
    RenderInputs,
    built_images,
    names_for,
    parse_secret_ref,
    repo_mounts,
    retarget,
)
from codebase_mcp.pod.podman import Podman, logs_argv, pod_logs_argv
from codebase_mcp.pod.render import render as render_spec
from codebase_mcp.pod.state import (
    auth_token_file,
    password_file,
    pod_dir,
    write_private,
    yaml_file,
)

PROFILES = ["dev", "prod", "test"]
NAME_HELP = "Pod name (the test profile picks codebase-mcp-test-XXXXXX). [env: CODEBASE_MCP_POD]"

name_option = click.option("--name", envvar="CODEBASE_MCP_POD", default=None, help=NAME_HELP)
EMBEDDER_HELP = (
    "builtin: the embedder image built here (offline, CPU, all-minilm). "
    "ollama: upstream Ollama pinned by digest in build/lock.json, nomic-embed-text pulled at "
    "first start (needs registry access; GPU capable). See docs/embedder.md. "
    "[env: CODEBASE_MCP_EMBEDDER]"
)


def git_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--git-host``: shared by ``pod render`` and ``up``."""
    return click.option(
        "--git-host", "git_hosts", multiple=True, metavar="HOST[:PORT]",
        help="A git server the pod may fetch repo_url sources from (repeatable; "
        "CODEBASE_MCP_GIT_HOSTS). Without one, git sources are off.",
    )(command)  # fmt: skip


def git_inputs(
    target: str,
    hosts: tuple[str, ...],
    refs: dict[str, str],
    *,
    shared_cache: bool = False,
    cache_size: str = "10Gi",
) -> GitInputs | None:
    """``pod render``'s git options as data (Secret references for kubernetes)."""
    if refs and target != "kubernetes":
        raise UsageError(
            "--git-*-secret options name Kubernetes Secrets: they need --target kubernetes",
            hint="on podman, `codebase-mcp up --git-ssh-key FILE --git-token-file FILE "
            "--git-known-hosts FILE` mounts the credentials",
        )
    if (refs or shared_cache) and not hosts:
        raise UsageError(
            "git options were given, but no --git-host: git sources are off without one",
            hint="add --git-host HOST (repeatable): the git servers the pod may fetch from",
        )
    if not hosts:
        return None
    secrets = {kind: parse_secret_ref(ref, kind) for kind, ref in sorted(refs.items())}
    return GitInputs(
        hosts=hosts,
        secrets=secrets,  # type: ignore[arg-type]
        shared_cache=shared_cache,
        cache_size=cache_size,
    )


def _pod_name(name: str | None, profile: str = "prod") -> str:
    if name:
        return name
    if profile == "test":
        return f"{DEFAULT_NAME}-test-{secrets.token_hex(3)}"
    return DEFAULT_NAME


@click.group()
def pod() -> None:
    """Render the stack's specs and install it as a service.

    \b
    codebase-mcp pod render                       podman kube YAML on stdout
    codebase-mcp pod render --target kubernetes   manifests for kubectl apply
    codebase-mcp pod install-service              systemd unit for the pod
    """


@pod.command()
@click.option("--profile", type=click.Choice(PROFILES), default="prod", show_default=True)
@click.option(
    "--target", type=click.Choice(["podman", "kubernetes"]), default="podman", show_default=True
)
@click.option("--k8s", is_flag=True, help="Same as --target kubernetes.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (mode 0600) instead of stdout.")  # fmt: skip
@name_option
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Host port of the MCP endpoint (podman). [default: 8000]")  # fmt: skip
@click.option("--repo", "repos", multiple=True, type=click.Path(file_okay=False),
              help="Repository to mount read-only (podman; repeatable).")  # fmt: skip
@click.option("--server-replicas", "--replicas", "replicas", type=click.IntRange(1, 50),
              default=2, show_default=True, help="Server replicas (kubernetes).")  # fmt: skip
@click.option("--embedder-replicas", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Embedder replicas, the autoscaler's minimum (kubernetes).")  # fmt: skip
@click.option("--embedder-max-replicas", type=click.IntRange(1, 100), default=None,
              help="The embedder autoscaler's maximum (kubernetes) "
              "[default: twice --embedder-replicas].")  # fmt: skip
@git_options
@click.option("--git-ssh-key-secret", metavar="SECRET[:KEY]", default=None,
              help="kubernetes: an existing Secret holding the SSH private key "
              "[KEY default: ssh-key].")  # fmt: skip
@click.option("--git-token-secret", metavar="SECRET[:KEY]", default=None,
              help="kubernetes: an existing Secret holding the https token "
              "[KEY default: token].")  # fmt: skip
@click.option("--git-known-hosts-secret", metavar="SECRET[:KEY]", default=None,
              help="kubernetes: an existing Secret holding known_hosts "
              "[KEY default: known-hosts].")  # fmt: skip
@click.option("--git-shared-cache", is_flag=True,
              help="kubernetes: one ReadWriteMany claim for every replica's git cache "
              "(default: an emptyDir per replica).")  # fmt: skip
@click.option("--git-cache-size", default="10Gi", show_default=True,
              help="kubernetes: size of the git cache volume.")  # fmt: skip
@click.option("--registry", default=None, metavar="PREFIX",
              help="Images as PREFIX/codebase-mcp-NAME:TAG, not localhost/.")  # fmt: skip
@click.option("--podman-version", default=None, metavar="X.Y",
              help="Render for this podman instead of the installed one.")  # fmt: skip
@click.option("--embedder", type=click.Choice(EMBEDDERS), envvar="CODEBASE_MCP_EMBEDDER",
              default="builtin", show_default=True, help=EMBEDDER_HELP)  # fmt: skip
@click.option("--auth", is_flag=True,
              help="podman: /mcp needs the bearer token from the podman secret NAME-auth "
              "(`up --auth` creates it). kubernetes: always on.")  # fmt: skip
def render(
    profile: str,
    target: str,
    k8s: bool,
    output: Path | None,
    name: str | None,
    port: int | None,
    repos: tuple[str, ...],
    replicas: int,
    embedder_replicas: int,
    embedder_max_replicas: int | None,
    git_hosts: tuple[str, ...],
    git_ssh_key_secret: str | None,
    git_token_secret: str | None,
    git_known_hosts_secret: str | None,
    git_shared_cache: bool,
    git_cache_size: str,
    registry: str | None,
    podman_version: str | None,
    embedder: str,
    auth: bool,
) -> None:
    """Render the stack: one YAML for `podman kube play`, or Kubernetes manifests.

    Image refs are the content-addressed tags the current inputs hash to (no
    build). Same inputs, same bytes. The Kubernetes manifests embed the database
    password and the MCP bearer token (both created once under the pod's state
    directory, mode 0600): keep the output private.
    """
    pod_name = _pod_name(name, profile)
    target = "kubernetes" if k8s else target
    secret_refs = {
        "ssh-key": git_ssh_key_secret,
        "token": git_token_secret,
        "known-hosts": git_known_hosts_secret,
    }
    git = git_inputs(
        target,
        git_hosts,
        {kind: ref for kind, ref in secret_refs.items() if ref},
        shared_cache=git_shared_cache,
        cache_size=git_cache_size,
    )
    if podman_version:
        version = parse_version(podman_version)
    elif target == "podman" and proc.which("podman"):
        version = detect_version(proc.Runner())
    else:
        version = OLDEST_SUPPORTED
    refs = planned_refs(built_images(embedder))  # type: ignore[arg-type]
    if registry:
        refs = retarget(refs, registry)
    if embedder == "ollama":
        refs["embedder"] = upstream_ref(UPSTREAM_EMBEDDER)  # refuses an unpinned tag
    password = token = None
    if target == "kubernetes":
        password = secret.ensure_password(password_file(pod_dir(pod_name)))
        token = secret.ensure_token(auth_token_file(pod_dir(pod_name)))
    inputs = RenderInputs(
        name=pod_name,
        profile=profile,  # type: ignore[arg-type]
        target=target,  # type: ignore[arg-type]
        images=refs,
        port=port or DEFAULT_PORT,
        repos=repo_mounts([str(Path(r).resolve()) for r in repos]),
        features=features_for(version),
        dev_source=str(repo_root()) if profile == "dev" else None,
        server_replicas=replicas,
        embedder_replicas=embedder_replicas,
        embedder_max_replicas=embedder_max_replicas,
        git=git,
        db_password=SecretStr(password) if password else None,
        embedder=embedder,  # type: ignore[arg-type]
        auth=auth,
        auth_token=SecretStr(token) if token else None,
    )
    text = render_spec(inputs)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_private(output, text)
        ui.info(f"wrote {output}")


@pod.command("install-service")
@name_option
@click.option("--dry-run", is_flag=True, help="Print the unit and commands; change nothing.")
def install_service(name: str | None, dry_run: bool) -> None:
    """Run the pod under systemd (Quadlet on podman >= 4.4, podman-kube@ on 4.3).

    Uses the spec the last `codebase-mcp up` rendered, so run that first.
    """
    pod_name = _pod_name(name)
    spec = yaml_file(pod_dir(pod_name))
    if not spec.is_file():
        raise PodError(
            f"no rendered spec for pod '{pod_name}' at {spec}",
            hint="run `codebase-mcp up` once first (it renders and remembers the spec)",
        )
    features = features_for(detect_version(proc.Runner()))
    plan = systemd.plan(pod_name, spec, features, rootless=os.geteuid() != 0, home=Path.home())
    for path, content in plan.files.items():
        if dry_run:
            click.echo(f"# {path}\n{content}")
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
            ui.info(f"wrote {path}")
    for argv in plan.commands:
        if dry_run:
            click.echo(proc.quote(argv))
        else:
            proc.run(argv, hint="systemd must be running (a container or WSL may not have it)")
    if not dry_run:
        click.echo(f"installed {plan.kind} unit {plan.unit}")


@click.command()
@click.option("--profile", type=click.Choice(PROFILES), default="prod", show_default=True,
              help="dev: hot reload of src/; test: own names and a random port.")  # fmt: skip
@name_option
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="MCP port on 127.0.0.1 [default: 8000; test: random].")  # fmt: skip
@click.option("--repo", "repos", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Repository to index, mounted read-only (repeatable; remembered).")  # fmt: skip
@click.option("--no-build", is_flag=True, help="Use already built images; never build.")
@click.option("--no-doctor", is_flag=True, help="Skip the host checks.")
@click.option("--embedder", type=click.Choice(EMBEDDERS), envvar="CODEBASE_MCP_EMBEDDER",
              default=None,
              help=EMBEDDER_HELP + " [default: the last up's, else builtin]")  # fmt: skip
@click.option("--timeout", type=float, default=None,
              help="Seconds to wait for every container to become healthy [default: 180; "
              "960 with --embedder ollama: the first start pulls the model].")  # fmt: skip
@click.option("--auth/--no-auth", default=None,
              help="Require `Authorization: Bearer <token>` on /mcp; the token is created "
              "once (0600, beside the DB password) and printed in the client config "
              "[default: the last up's, else off].")  # fmt: skip
@click.option("--watch", is_flag=True,
              help="Index every mounted repository and keep it in sync with its files "
              "(watch mode: saved files are searchable within seconds; survives "
              "restarts).")  # fmt: skip
@click.option("--project", "project_id", default="default", show_default=True, metavar="ID",
              help="Project the repositories go to with --watch.")  # fmt: skip
@git_options
@click.option("--git-ssh-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SSH private key for ssh:// and git@host: sources (mode 0600; copied "
              "privately and mounted as a file, never in env; remembered).")  # fmt: skip
@click.option("--git-token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding an https token for git sources (mode 0600; mounted as a "
              "file; remembered).")  # fmt: skip
@click.option("--git-known-hosts", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="known_hosts with the git servers' SSH host keys "
              "(remembered).")  # fmt: skip
@click.option("--no-git", is_flag=True,
              help="Forget the git hosts and credentials of earlier ups.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the pod's state as JSON.")
def up(
    profile: str,
    name: str | None,
    port: int | None,
    repos: tuple[str, ...],
    no_build: bool,
    no_doctor: bool,
    embedder: str | None,
    timeout: float | None,
    auth: bool | None,
    watch: bool,
    project_id: str,
    git_hosts: tuple[str, ...],
    git_ssh_key: Path | None,
    git_token_file: Path | None,
    git_known_hosts: Path | None,
    no_git: bool,
    as_json: bool,
) -> None:
    """Bring the whole stack up and wait until it is healthy.

    doctor → build images (cached) → render → podman kube play --replace →
    wait for every probe → print the endpoint and MCP client config.
    """

    started = time.monotonic()
    pod_name = _pod_name(name, profile)
    given = {"ssh-key": git_ssh_key, "token": git_token_file, "known-hosts": git_known_hosts}
    git_files = {kind: str(path.expanduser().absolute()) for kind, path in given.items() if path}
    if no_git and (git_hosts or git_files):
        raise UsageError("--no-git forgets the git settings: it takes no other --git option")
    options = UpOptions(
        name=pod_name,
        profile=profile,  # type: ignore[arg-type]
        port=port,
        repos=list(repos),
        build=not no_build,
        doctor=not no_doctor,
        timeout=timeout,
        dev_source=repo_root() if profile == "dev" else None,
        embedder=embedder,  # type: ignore[arg-type]
        auth=auth,
        git_hosts=list(git_hosts) or None,
        git_files=git_files or None,
        no_git=no_git,
    )
    lifecycle = Lifecycle()
    state = lifecycle.up(options)
    elapsed = time.monotonic() - started
    server = names_for(pod_name).container("server")
    token_file = auth_token_file(pod_dir(pod_name)) if state.auth else None
    token = token_file.read_text().strip() if token_file else None
    mounted = [r for r in state.repos if r not in lifecycle.skipped_repos]
    watching: list[dict[str, object]] = []
    if watch:
        from codebase_mcp.pod.watchrepos import watch_repositories

        if not mounted:
            ui.warn("--watch: no repository is mounted; add one with --repo PATH")
        watching = watch_repositories(state.endpoint, mounted, project_id=project_id, token=token)
    if as_json:
        data = {
            **state.model_dump(),
            "auth_token_file": str(token_file) if token_file else None,
            "endpoint": state.endpoint,
            "seconds": round(elapsed, 2),
            "healthy_after": lifecycle.timings,
            "server_container": server,
            "skipped_repos": lifecycle.skipped_repos,
            "watching": watching,
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    ui.info(f"pod {pod_name} healthy in {elapsed:.1f}s")
    for item in watching:
        ui.info(f"watching {item['repo_path']} (project {project_id}, job {item['job_id']})")
    file_shown = str(token_file) if token_file else None
    click.echo(instructions(state.endpoint, server, mounted, token, file_shown))


@click.command()
@name_option
@click.option("--volumes", is_flag=True,
              help="Also delete the data volumes, password secret and state.")  # fmt: skip
def down(name: str | None, volumes: bool) -> None:
    """Stop and remove the pod (data volumes are kept unless --volumes)."""

    pod_name = _pod_name(name)
    removed = Lifecycle().down(pod_name, volumes=volumes)
    if not removed:
        click.echo(f"nothing to remove: no pod '{pod_name}'")
        return
    for item in removed:
        click.echo(f"removed {item}")
    if not volumes:
        click.echo("data kept: `codebase-mcp down --volumes` deletes it")


@click.command()
@name_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--no-probe", is_flag=True, help="Report the last probe results; do not run them.")
def status(name: str | None, as_json: bool, no_probe: bool) -> None:
    """Per container: state, health, restarts, image; and the endpoint.

    Exits 0 when healthy, 1 otherwise (scripts can poll it).
    """
    pod_name = _pod_name(name)
    report = Lifecycle().status(pod_name, probe=not no_probe)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        click.echo(f"pod {report.name}: {report.status}")
        if report.endpoint:
            click.echo(f"endpoint: {report.endpoint}")
        for c in report.containers:
            health = c.health or "-"
            click.echo(f"  {c.name:<9} {c.state:<8} {health:<9} restarts={c.restarts}  {c.image}")
    if report.status != "healthy":
        raise SystemExit(1)


@click.command()
@click.argument("container", required=False,
                type=click.Choice(["postgres", "embedder", "server"]))  # fmt: skip
@name_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=int, default=None, help="Only the last N lines.")
def logs(container: str | None, name: str | None, follow: bool, tail: int | None) -> None:
    """Print a container's logs (default: server), or the whole pod's."""

    pod_name = _pod_name(name)
    podman = Podman()
    podman.require_pod(pod_name)
    if container is None:
        argv = pod_logs_argv(pod_name, follow=follow, tail=tail)
    else:
        argv = logs_argv(names_for(pod_name).container(container), follow=follow, tail=tail)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends `logs -f`: not an error
        podman.runner.run(argv, capture=False, check=True)
