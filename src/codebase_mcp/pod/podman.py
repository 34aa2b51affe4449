"""The podman commands the pod needs: argv builders plus a thin class that runs them.

The builders are pure (unit tested for their exact argv); :class:`Podman`
only runs them through a :class:`~codebase_mcp.proc.Runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codebase_mcp.errors import PodError
from codebase_mcp.pod.status import ContainerStatus, parse_inspect
from codebase_mcp.proc import Result, Runner

STOP_TIMEOUT = 30  # seconds podman waits after the stop signal (Postgres: SIGINT)


def play_argv(yaml_path: Path) -> list[str]:
    return ["podman", "kube", "play", "--replace", str(yaml_path)]


def stop_argv(pod: str, timeout: int = STOP_TIMEOUT) -> list[str]:
    return ["podman", "pod", "stop", "--time", str(timeout), pod]


def rm_argv(pod: str) -> list[str]:
    return ["podman", "pod", "rm", "--force", pod]


def ps_names_argv(pod: str) -> list[str]:
    # The infra container is not ours to report.
    return [
        "podman", "ps", "--all", "--filter", f"pod={pod}", "--format", "{{.Names}} {{.IsInfra}}",
    ]  # fmt: skip


def inspect_argv(containers: list[str]) -> list[str]:
    return ["podman", "container", "inspect", "--format", "json", *containers]


def healthcheck_argv(container: str) -> list[str]:
    return ["podman", "healthcheck", "run", container]


def exec_probe_argv(container: str, test: list[str]) -> list[str] | None:
    """The container's healthcheck as a plain ``podman exec`` (None: it has no probe).

    Running the probe this way leaves podman's failing streak alone: kube play on
    4.3 sets ``HealthcheckOnFailureAction=restart``, so polling with
    ``podman healthcheck run`` while Postgres still runs initdb could get it
    killed half-initialised.
    """
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["podman", "exec", container, "/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return ["podman", "exec", container, *test[1:]]
    return ["podman", "exec", container, "/bin/sh", "-c", " ".join(test)]


def logs_argv(container: str, *, follow: bool, tail: int | None) -> list[str]:
    argv = ["podman", "logs"]
    if follow:
        argv.append("--follow")
    if tail is not None:
        argv += ["--tail", str(tail)]
    return [*argv, container]


def pod_logs_argv(pod: str, *, follow: bool, tail: int | None) -> list[str]:
    argv = ["podman", "pod", "logs"]
    if follow:
        argv.append("--follow")
    if tail is not None:
        argv += ["--tail", str(tail)]
    return [*argv, pod]


def volume_create_argv(volume: str, *, uid: int, gid: int) -> list[str]:
    return ["podman", "volume", "create", "--opt", f"o=uid={uid},gid={gid}", volume]


def volume_rm_argv(volumes: list[str]) -> list[str]:
    return ["podman", "volume", "rm", "--force", *volumes]


@dataclass
class Podman:
    runner: Runner = field(default_factory=Runner)

    def play(self, yaml_path: Path) -> Result:
        return self.runner.run(
            play_argv(yaml_path),
            timeout=300,
            hint=f"the rendered spec is {yaml_path}; `codebase-mcp doctor` checks podman",
        )

    def pod_exists(self, pod: str) -> bool:
        return self.runner.run(["podman", "pod", "exists", pod], check=False).returncode == 0

    def containers(self, pod: str) -> list[str]:
        out = self.runner.run(ps_names_argv(pod)).stdout
        names = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == "false":
                names.append(parts[0])
        return sorted(names)

    def inspect(self, pod: str) -> list[ContainerStatus]:
        names = self.containers(pod)
        if not names:
            return []
        return parse_inspect(self.runner.run(inspect_argv(names)).stdout, pod)

    def healthcheck(self, container: str) -> bool:
        """podman's own check (updates the recorded health): True when it passes."""
        result = self.runner.run(healthcheck_argv(container), check=False, timeout=60)
        return result.returncode == 0

    def probe(self, container: str, test: list[str]) -> bool:
        """Run the container's probe without touching podman's failure count."""
        argv = exec_probe_argv(container, test)
        if argv is None:
            return True
        return self.runner.run(argv, check=False, timeout=60).returncode == 0

    def logs_tail(self, container: str, lines: int = 20) -> str:
        result = self.runner.run(logs_argv(container, follow=False, tail=lines), check=False)
        return (result.stdout + result.stderr).strip()

    def stop(self, pod: str) -> None:
        self.runner.run(stop_argv(pod), timeout=STOP_TIMEOUT + 60)

    def remove(self, pod: str) -> None:
        self.runner.run(rm_argv(pod), timeout=120)

    def volume_exists(self, volume: str) -> bool:
        return self.runner.run(["podman", "volume", "exists", volume], check=False).returncode == 0

    def ensure_volume(self, volume: str, *, uid: int, gid: int) -> bool:
        """Create ``volume`` owned by uid:gid unless it exists; True if created.

        A volume ``kube play`` creates is owned by root: a path the image does not
        have (nothing to copy ownership from) would not be writable by a non-root user.
        """
        if self.volume_exists(volume):
            return False
        self.runner.run(volume_create_argv(volume, uid=uid, gid=gid))
        return True

    def remove_volumes(self, volumes: list[str]) -> list[str]:
        existing = [v for v in volumes if self.volume_exists(v)]
        if existing:
            self.runner.run(volume_rm_argv(existing))
        return existing

    def remove_secret(self, name: str) -> bool:
        result = self.runner.run(["podman", "secret", "rm", name], check=False)
        return result.returncode == 0

    def image_exists(self, ref: str) -> bool:
        return self.runner.run(["podman", "image", "exists", ref], check=False).returncode == 0

    def pull(self, ref: str) -> None:
        """Pull an upstream image (by digest) before ``kube play``, with progress on stderr."""
        self.runner.run(
            ["podman", "pull", ref],
            capture=False,
            timeout=3600,
            hint="this image comes from a registry: the host needs registry access "
            "(`podman pull` it where there is, then `podman save`/`podman load`), "
            "or use the built-in embedder (`--embedder builtin`)",
        )

    def require_pod(self, pod: str) -> None:
        if not self.pod_exists(pod):
            raise PodError(
                f"no pod named '{pod}' is running here",
                hint="`codebase-mcp up` starts it; `podman pod ps` lists the pods",
            )
