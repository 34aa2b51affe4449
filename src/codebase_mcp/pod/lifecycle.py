"""``up``, ``down``, ``status``: the steps in order, each one a call the tests can replace.

up: doctor → build (cached) → render → podman secret → ``kube play --replace``
→ wait until every container's probe passes (run by us with ``podman
healthcheck run``, so no systemd timers are needed) → the endpoint.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from codebase_mcp import ui
from codebase_mcp.builder import api
from codebase_mcp.errors import (
    CommandFailed,
    HostCheckFailed,
    ImageNotBuilt,
    PodError,
    PodUnhealthy,
    UsageError,
)
from codebase_mcp.pod import gitcreds, secret
from codebase_mcp.pod.features import PodmanVersion, detect_version, features_for
from codebase_mcp.pod.models import (
    CONTAINERS,
    DEFAULT_PORT,
    IMAGE_NAMES,
    SERVER_UID,
    UPSTREAM_EMBEDDER,
    Embedder,
    GitCredential,
    GitInputs,
    Profile,
    RenderInputs,
    built_images,
    names_for,
)
from codebase_mcp.pod.podman import Podman
from codebase_mcp.pod.render import render
from codebase_mcp.pod.repos import forget_hint, present_mounts
from codebase_mcp.pod.state import (
    PodState,
    auth_token_file,
    load_state,
    password_file,
    pod_dir,
    save_state,
    write_private,
    yaml_file,
)
from codebase_mcp.pod.status import PodStatus, overall


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the test profile's random port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def run_doctor() -> None:
    """The host checks of ``codebase-mcp doctor``: a failed one stops ``up``, naming the fix.

    The hint is one command (``doctor --fix``, with sudo for a plain user), so a fresh
    machine goes from ``make up`` to a working host in one step.
    """
    import os

    from codebase_mcp.doctor import fix_command, run_checks

    failed = [r for r in run_checks() if r.status == "fail"]
    if failed:
        raise HostCheckFailed(
            "this host is not ready for the pod: "
            + ", ".join(f"{r.name} ({r.detail})" for r in failed),
            hint=f"run: {fix_command(os.getuid())}  (it fixes what is missing and says what it "
            "changed; `codebase-mcp doctor` shows every check with its fix)",
        )


def build_images(names: list[str]) -> dict[str, str]:
    """Build (cached: a no-op when the tag exists) and return name → ref."""
    api.build(names)
    return {name: api.image_ref(name) for name in names}


def planned_refs(names: list[str] | None = None) -> dict[str, str]:
    return {name: api.image_ref(name) for name in (names or IMAGE_NAMES)}


def default_timeout(embedder: Embedder) -> float:
    """Seconds ``up`` waits for health: Ollama's first start pulls the model (274 MB)."""
    return 960.0 if embedder == "ollama" else 180.0


@dataclass
class UpOptions:
    name: str
    profile: Profile = "prod"
    port: int | None = None
    host_ip: str = "127.0.0.1"
    repos: list[str] = field(default_factory=list)
    build: bool = True
    doctor: bool = True
    timeout: float | None = None  # None: default_timeout(embedder)
    dev_source: Path | None = None
    data_dir: Path | None = None
    embedder: Embedder | None = None  # None: what the last up used, else builtin
    auth: bool | None = None  # bearer token on /mcp; None: what the last up used, else off
    # Git sources: allowed hosts and credential files (kind -> host path); None: what the
    # last up used. no_git forgets both.
    git_hosts: list[str] | None = None
    git_files: dict[str, str] | None = None
    no_git: bool = False


def git_choice(opts: UpOptions, previous: PodState | None) -> tuple[list[str], dict[str, str]]:
    """The git hosts and credential files this up uses: given, else remembered."""
    if opts.no_git:
        return [], {}
    hosts = list(opts.git_hosts or (previous.git_hosts if previous else []))
    files = dict(opts.git_files or (previous.git_files if previous else {}))
    if files and not hosts:
        raise UsageError(
            "git credentials were given, but no git host: git sources are off without one",
            hint="add --git-host HOST (repeatable): the git servers the pod may fetch from",
        )
    return hosts, files


@dataclass
class Lifecycle:
    podman: Podman = field(default_factory=Podman)
    build_images: Callable[[list[str]], dict[str, str]] = build_images
    planned_refs: Callable[[list[str]], dict[str, str]] = planned_refs
    upstream_ref: Callable[[str], str] = api.upstream_ref
    doctor: Callable[[], None] = run_doctor
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # Seconds from `kube play` to each container's first passing probe (last up).
    timings: dict[str, float] = field(default_factory=dict)
    # Remembered repositories the last up did not mount: they no longer exist.
    skipped_repos: list[str] = field(default_factory=list)
    # Rootless podman: files handed to container users are chowned in its user namespace.
    rootless: bool = field(default_factory=lambda: os.geteuid() != 0)

    # --- up ------------------------------------------------------------------
    def up(self, opts: UpOptions) -> PodState:
        directory = pod_dir(opts.name, opts.data_dir)
        previous = load_state(directory)
        embedder = opts.embedder or (previous.embedder if previous else "builtin")
        # Bad git input (a missing or world-readable key, a bad host) stops here, before
        # anything is built, created or replaced.
        git_hosts, git_files = git_choice(opts, previous)
        git_contents = gitcreds.read_all(git_files)
        git = (
            GitInputs(
                hosts=tuple(git_hosts),
                credentials=tuple(git_contents),
                credentials_dir=str(gitcreds.credentials_dir(directory)) if git_contents else None,
            )
            if git_hosts
            else None
        )
        # An unpinned upstream image stops here, before any build or pull.
        upstream = self.upstream_ref(UPSTREAM_EMBEDDER) if embedder == "ollama" else None
        if opts.doctor:
            with ui.step("checking the host (doctor)"):
                self.doctor()
        names = built_images(embedder)
        with ui.step("building images (cached)" if opts.build else "finding images"):
            refs = self.build_images(names) if opts.build else self._existing_refs(names)
        if upstream is not None:
            if not self.podman.image_exists(upstream):
                with ui.step(f"pulling {upstream}"):
                    self.podman.pull(upstream)
            refs["embedder"] = upstream
        version = detect_version(self.podman.runner)
        port = self._choose_port(opts, previous)
        repos = [str(Path(r).resolve()) for r in opts.repos] or (previous.repos if previous else [])
        mounts, self.skipped_repos = present_mounts(repos)
        for missing in self.skipped_repos:
            ui.warn(
                f"repository {missing} no longer exists: not mounted this time "
                f"(still remembered; {forget_hint(missing)})"
            )
        secret.ensure_password(password_file(directory))
        secret.ensure_podman_secret(
            self.podman.runner, names_for(opts.name).secret, password_file(directory)
        )
        auth = opts.auth if opts.auth is not None else bool(previous and previous.auth)
        if auth:
            secret.ensure_token(auth_token_file(directory))
            secret.ensure_podman_secret(
                self.podman.runner,
                names_for(opts.name).auth_secret,
                auth_token_file(directory),
                key="token",
            )
        self._prepare_git(opts.name, directory, git, git_contents)
        # The test profile's port was free when picked, but another process may take it
        # before podman binds it: then pick another one (a port the user chose is kept).
        attempts = 3 if opts.port is None and opts.profile == "test" else 1
        for attempt in range(1, attempts + 1):
            inputs = RenderInputs(
                name=opts.name,
                profile=opts.profile,
                target="podman",
                images=refs,
                port=port,
                host_ip=opts.host_ip,
                repos=mounts,
                features=features_for(version),
                dev_source=str(opts.dev_source) if opts.dev_source else None,
                embedder=embedder,
                auth=auth,
                git=git,
            )
            write_private(yaml_file(directory), render(inputs))
            started = self.clock()
            try:
                with ui.step(
                    f"starting pod {opts.name} (podman {version}, profile {opts.profile})"
                ):
                    self.podman.play(yaml_file(directory))
                break
            except CommandFailed as exc:
                if attempt == attempts or "address already in use" not in exc.message:
                    raise
                ui.warn(f"port {port} was taken meanwhile: trying another one")
                port = free_port(opts.host_ip)
        state = PodState(
            name=opts.name,
            profile=opts.profile,
            port=port,
            host_ip=opts.host_ip,
            images=refs,
            repos=repos,
            podman_version=str(version),
            embedder=embedder,
            auth=auth,
            git_hosts=list(git.hosts) if git else [],
            git_files=git_files,
        )
        save_state(directory, state)
        timeout = opts.timeout if opts.timeout is not None else default_timeout(embedder)
        self.wait_healthy(opts.name, timeout=timeout, started=started)
        return state

    def _prepare_git(
        self,
        pod: str,
        directory: Path,
        git: GitInputs | None,
        contents: dict[GitCredential, bytes],
    ) -> None:
        """The git cache volume (owned by the server's uid) and the private credential copy."""
        target = gitcreds.credentials_dir(directory)
        if git is None or not contents:
            gitcreds.remove(self.podman.runner, target, rootless=self.rootless)
        else:
            gitcreds.stage(self.podman.runner, target, contents, rootless=self.rootless)
        if git is not None:
            self.podman.ensure_volume(names_for(pod).git_cache, uid=SERVER_UID, gid=SERVER_UID)

    def _existing_refs(self, names: list[str]) -> dict[str, str]:
        refs = self.planned_refs(names)
        missing = [ref for ref in refs.values() if not self.podman.image_exists(ref)]
        if missing:
            raise ImageNotBuilt(
                f"image(s) not built: {', '.join(missing)}",
                hint="run `codebase-mcp image build` (or `codebase-mcp up` without --no-build)",
            )
        return refs

    @staticmethod
    def _choose_port(opts: UpOptions, previous: PodState | None) -> int:
        if opts.port is not None:
            return opts.port
        if previous is not None:
            return previous.port
        return free_port(opts.host_ip) if opts.profile == "test" else DEFAULT_PORT

    # --- wait ----------------------------------------------------------------
    def wait_healthy(self, pod: str, *, timeout: float, started: float | None = None) -> float:
        """Probe every container until all pass: seconds since ``started``, else PodUnhealthy.

        Each container is probed in its own thread: a slow probe (the server's,
        while its init still waits) must not delay noticing the others.
        """
        names = names_for(pod)
        begin = started if started is not None else self.clock()
        deadline = self.clock() + timeout
        present = {c.name: c for c in self.podman.inspect(pod)}
        for name in CONTAINERS:
            if name not in present:
                raise PodError(
                    f"container {names.container(name)} is missing from pod {pod}",
                    hint="`podman pod ps` and `podman ps -a --pod`; then `codebase-mcp down` "
                    "and `codebase-mcp up`",
                )
        self.timings = {}

        def watch(name: str) -> bool:
            container, test = present[name].container, present[name].probe
            while True:
                if self.podman.probe(container, test):
                    # Record it with podman too (a pass resets its failure count).
                    self.podman.healthcheck(container)
                    self.timings[name] = round(self.clock() - begin, 2)
                    ui.info(f"    {name:<9} healthy after {self.timings[name]:.1f}s")
                    return True
                if self.clock() >= deadline:
                    return False
                self.sleep(0.25)

        with ThreadPoolExecutor(max_workers=len(CONTAINERS)) as pool:
            results = dict(zip(CONTAINERS, pool.map(watch, CONTAINERS), strict=True))
        waiting = [n for n in CONTAINERS if not results[n]]
        if not waiting:
            return self.clock() - begin
        first = names.container(waiting[0])
        tail = self.podman.logs_tail(first)
        raise PodUnhealthy(
            f"pod {pod}: {', '.join(waiting)} not healthy after {timeout:.0f}s"
            + (f"; last lines of {first}:\n{tail}" if tail else ""),
            hint=f"`codebase-mcp logs {waiting[0]}` shows the whole log; "
            "`codebase-mcp status` shows every container",
        )

    # --- down / status -------------------------------------------------------
    def down(self, pod: str, *, volumes: bool, data_dir: Path | None = None) -> list[str]:
        """Stop and remove the pod; with ``volumes`` also its data, secret and state. What went."""
        removed: list[str] = []
        names = names_for(pod)
        if self.podman.pod_exists(pod):
            with ui.step(f"stopping pod {pod}"):
                self.podman.stop(pod)
                self.podman.remove(pod)
            removed.append(f"pod {pod}")
        # /tmp scratch volumes are never worth keeping (podman < 5.0 leaves named ones).
        removed += [f"volume {v}" for v in self.podman.remove_volumes(names.scratch_volumes())]
        # Nor the private copy of the git credentials: the next up copies them again.
        credentials = gitcreds.credentials_dir(pod_dir(pod, data_dir))
        if gitcreds.remove(self.podman.runner, credentials, rootless=self.rootless):
            removed.append(f"git credentials {credentials}")
        if volumes:
            removed += [f"volume {v}" for v in self.podman.remove_volumes(names.data_volumes())]
            for name in (names.secret, names.auth_secret):
                if self.podman.remove_secret(name):
                    removed.append(f"secret {name}")
            directory = pod_dir(pod, data_dir)
            for path in sorted(directory.glob("*"), reverse=True):
                path.unlink()
            if directory.is_dir():
                directory.rmdir()
                removed.append(f"directory {directory}")
        return removed

    def status(self, pod: str, *, probe: bool = True, data_dir: Path | None = None) -> PodStatus:
        state = load_state(pod_dir(pod, data_dir))
        containers = self.podman.inspect(pod) if self.podman.pod_exists(pod) else []
        if probe:
            # Without systemd timers podman never runs the probes itself: run them now
            # (as plain execs first, so a failing one does not count towards a restart).
            refreshed = []
            for c in containers:
                if c.state != "running" or not c.probe:
                    refreshed.append(c)
                elif self.podman.probe(c.container, c.probe):
                    self.podman.healthcheck(c.container)
                    refreshed.append(c.model_copy(update={"health": "healthy"}))
                else:
                    health = "starting" if c.health == "starting" else "unhealthy"
                    refreshed.append(c.model_copy(update={"health": health}))
            containers = refreshed
        return PodStatus(
            name=pod,
            status=overall(containers, CONTAINERS),
            endpoint=state.endpoint if state else None,
            containers=containers,
        )


def version_features(version: PodmanVersion) -> dict[str, bool]:
    return features_for(version).as_dict()
