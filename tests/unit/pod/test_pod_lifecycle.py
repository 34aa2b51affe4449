"""up/down/status against a scripted podman: the order of commands and what they leave."""

from __future__ import annotations

import json
import os
import shutil
import stat
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codebase_mcp.errors import (
    CommandFailed,
    CredentialFileError,
    HostCheckFailed,
    ImageNotBuilt,
    PodUnhealthy,
    UsageError,
)
from codebase_mcp.pod.lifecycle import Lifecycle, UpOptions, run_doctor
from codebase_mcp.pod.models import repo_container_path
from codebase_mcp.pod.podman import Podman
from codebase_mcp.pod.state import load_state, pod_dir, yaml_file
from codebase_mcp.proc import Result


@dataclass
class FakePodman:
    """Just enough podman state for the lifecycle: pods, volumes, secrets, probe results."""

    runner: object
    pods: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    healthy_after: dict[str, int] = field(default_factory=dict)  # container -> probe calls
    probes: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)  # podman's health status

    def install(self) -> None:
        r = self.runner
        r.reply(["podman", "version"], '{"Client":{"Version":"4.3.1"}}')  # type: ignore[attr-defined]
        r.on(["podman", "secret", "inspect"], self._exists(self.secrets))  # type: ignore[attr-defined]
        r.on(["podman", "secret", "create"], self._add(self.secrets, 3))  # type: ignore[attr-defined]
        r.on(["podman", "secret", "rm"], self._remove(self.secrets, 3))  # type: ignore[attr-defined]
        r.on(["podman", "kube", "play"], self._play)  # type: ignore[attr-defined]
        r.on(["podman", "pod", "exists"], self._exists(self.pods))  # type: ignore[attr-defined]
        r.on(["podman", "pod", "rm"], self._remove(self.pods, 4))  # type: ignore[attr-defined]
        r.on(["podman", "ps"], self._ps)  # type: ignore[attr-defined]
        r.on(["podman", "container", "inspect"], self._inspect)  # type: ignore[attr-defined]
        r.on(["podman", "healthcheck", "run"], self._healthcheck)  # type: ignore[attr-defined]
        r.on(["podman", "exec"], self._probe)  # type: ignore[attr-defined]
        r.on(["podman", "volume", "exists"], self._exists(self.volumes))  # type: ignore[attr-defined]
        r.on(["podman", "volume", "rm"], self._remove_many)  # type: ignore[attr-defined]
        r.on(["podman", "volume", "create"], self._add(self.volumes, -1))  # type: ignore[attr-defined]
        r.reply(["podman", "logs"], "FATAL: something broke\n")  # type: ignore[attr-defined]

    @staticmethod
    def _exists(where: set[str]):  # type: ignore[no-untyped-def]
        return lambda argv, _in: Result(argv, 0 if argv[-1] in where else 1)

    @staticmethod
    def _add(where: set[str], index: int):  # type: ignore[no-untyped-def]
        def add(argv, _in):  # type: ignore[no-untyped-def]
            where.add(argv[index])
            return Result(argv, 0)

        return add

    @staticmethod
    def _remove(where: set[str], index: int):  # type: ignore[no-untyped-def]
        def remove(argv, _in):  # type: ignore[no-untyped-def]
            where.discard(argv[index])
            return Result(argv, 0)

        return remove

    def _remove_many(self, argv, _in):  # type: ignore[no-untyped-def]
        self.volumes.difference_update(argv[4:])
        return Result(argv, 0)

    def _play(self, argv, _in):  # type: ignore[no-untyped-def]
        spec = Path(argv[-1]).read_text()
        name = next(line.split('"')[1] for line in spec.splitlines() if line.startswith("  name:"))
        self.pods.add(name)
        self.pod = name
        self.volumes.update({f"{name}-pgdata", f"{name}-models", f"{name}-server-tmp"})
        return Result(argv, 0)

    def _ps(self, argv, _in):  # type: ignore[no-untyped-def]
        pod = argv[argv.index("--filter") + 1].split("=", 1)[1]
        if pod not in self.pods:
            return Result(argv, 0, "")
        names = [f"{pod}-{c}" for c in ("embedder", "postgres", "server")]
        return Result(argv, 0, "\n".join(["abc-infra true", *(f"{n} false" for n in names)]))

    def _inspect(self, argv, _in):  # type: ignore[no-untyped-def]
        items = []
        for name in argv[5:]:
            items.append({
                "Name": name, "ImageName": "img", "RestartCount": 0,
                "State": {"Status": "running",
                          "Health": {"Status": self.recorded.get(name, "starting")}},
                "Config": {"Healthcheck": {"Test": ["CMD-SHELL", "probe", name, "||", "exit",
                                                    "1"]}},
            })  # fmt: skip
        return Result(argv, 0, json.dumps(items))

    def _passes(self, name: str) -> bool:
        return self.probes.get(name, 0) >= self.healthy_after.get(name, 1)

    def _probe(self, argv, _in):  # type: ignore[no-untyped-def]
        # podman exec NAME /bin/sh -c "probe NAME || exit 1"
        name = argv[2]
        assert argv[3:5] == ("/bin/sh", "-c") and argv[5] == f"probe {name} || exit 1"
        self.probes[name] = self.probes.get(name, 0) + 1
        return Result(argv, 0 if self._passes(name) else 1)

    def _healthcheck(self, argv, _in):  # type: ignore[no-untyped-def]
        # Counting failures here is what restarts a container on podman 4.3: never fail it.
        name = argv[-1]
        assert self._passes(name), f"podman healthcheck run {name} while it fails"
        self.recorded[name] = "healthy"
        return Result(argv, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def world(fake_runner, images, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CODEBASE_MCP_DATA_DIR", str(tmp_path / "data"))
    podman = FakePodman(fake_runner)
    podman.install()
    clock = FakeClock()
    lifecycle = Lifecycle(
        podman=Podman(fake_runner),
        build_images=lambda names: {n: images[n] for n in names},
        planned_refs=lambda names: {n: images[n] for n in names},
        doctor=lambda: None,
        clock=clock,
        sleep=clock.sleep,
    )
    return types.SimpleNamespace(podman=podman, runner=fake_runner, life=lifecycle, clock=clock)


def test_up_creates_the_secret_plays_the_spec_and_waits(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world.podman.healthy_after = {"cm-server": 3}
    state = world.life.up(UpOptions(name="cm", repos=[str(tmp_path)], build=True))
    verbs = [c[:3] for c in world.runner.calls if c[1] in ("version", "secret", "kube")]
    assert verbs == [
        ("podman", "version", "--format"),
        ("podman", "secret", "inspect"),
        ("podman", "secret", "create"),
        ("podman", "kube", "play"),
    ]
    (play,) = world.runner.called("podman", "kube", "play")
    assert play[3] == "--replace"
    spec = Path(play[4])
    assert spec == pod_dir("cm") / "pod.yaml"
    assert stat.S_IMODE(spec.stat().st_mode) == 0o600
    assert "localhost/codebase-mcp-server:3333333333333333" in spec.read_text()
    assert str(tmp_path) in spec.read_text()
    # the server needed three probes: up kept probing until it passed, and only then
    # recorded the result with podman (a failing `healthcheck run` counts towards a restart)
    assert world.podman.probes["cm-server"] == 3
    assert world.podman.recorded == dict.fromkeys(
        ["cm-embedder", "cm-postgres", "cm-server"], "healthy"
    )
    assert state.endpoint == "http://127.0.0.1:8000/mcp"
    assert load_state(pod_dir("cm")) == state


def test_second_up_reuses_secret_port_and_repos(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = world.life.up(UpOptions(name="cm-test", profile="test", repos=[str(tmp_path)]))
    assert first.port != 8000
    second = world.life.up(UpOptions(name="cm-test", profile="test"))
    assert (second.port, second.repos) == (first.port, first.repos)
    assert len(world.runner.called("podman", "secret", "create")) == 1


def test_up_without_build_refuses_missing_images(world) -> None:  # type: ignore[no-untyped-def]
    world.runner.reply(["podman", "image", "exists"], "", returncode=1)
    with pytest.raises(ImageNotBuilt, match="not built: localhost/codebase-mcp-embedder") as caught:
        world.life.up(UpOptions(name="cm", build=False))
    assert "codebase-mcp image build" in (caught.value.hint or "")
    assert world.runner.called("podman", "kube", "play") == []


def test_a_container_that_never_gets_healthy_times_out_with_its_log(world) -> None:  # type: ignore[no-untyped-def]
    world.podman.healthy_after = {"cm-embedder": 10**6}
    with pytest.raises(PodUnhealthy) as caught:
        world.life.up(UpOptions(name="cm", timeout=5))
    assert "embedder not healthy after 5s" in caught.value.message
    assert "FATAL: something broke" in caught.value.message
    assert "codebase-mcp logs embedder" in (caught.value.hint or "")
    assert world.clock.now >= 1005


def test_down_keeps_data_unless_asked(world) -> None:  # type: ignore[no-untyped-def]
    world.life.up(UpOptions(name="cm"))
    removed = world.life.down("cm", volumes=False)
    assert removed == ["pod cm", "volume cm-server-tmp"]
    (stop,) = world.runner.called("podman", "pod", "stop")
    assert stop == ("podman", "pod", "stop", "--time", "30", "cm")
    assert world.podman.volumes == {"cm-pgdata", "cm-models"}
    assert world.podman.secrets == {"cm-db"}
    assert pod_dir("cm").is_dir()


def test_down_volumes_leaves_nothing(world) -> None:  # type: ignore[no-untyped-def]
    world.life.up(UpOptions(name="cm"))
    removed = world.life.down("cm", volumes=True)
    assert "volume cm-pgdata" in removed
    assert "secret cm-db" in removed
    assert world.podman.volumes == set()
    assert world.podman.secrets == set()
    assert world.podman.pods == set()
    assert not pod_dir("cm").exists()


def test_down_of_a_missing_pod_removes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    assert world.life.down("ghost", volumes=False) == []
    assert world.runner.called("podman", "pod", "stop") == []


def test_status_runs_the_probes_and_reports_the_endpoint(world) -> None:  # type: ignore[no-untyped-def]
    world.life.up(UpOptions(name="cm", port=8123))
    before = dict(world.podman.probes)
    report = world.life.status("cm")
    assert report.status == "healthy"
    assert report.endpoint == "http://127.0.0.1:8123/mcp"
    assert [c.name for c in report.containers] == ["embedder", "postgres", "server"]
    assert all(world.podman.probes[k] == v + 1 for k, v in before.items())


def test_status_of_a_missing_pod(world) -> None:  # type: ignore[no-untyped-def]
    report = world.life.status("ghost")
    assert (report.status, report.containers, report.endpoint) == ("missing", [], None)


def test_doctor_failures_stop_up_with_their_fix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from codebase_mcp import doctor
    from codebase_mcp.doctor import CheckResult

    results = [
        CheckResult(name="podman", status="ok", detail="4.3.1"),
        CheckResult(name="runtime", status="fail", detail="crun", fix="apt-get install runc"),
    ]
    monkeypatch.setattr(doctor, "run_checks", lambda: results)
    with pytest.raises(HostCheckFailed, match=r"runtime \(crun\)") as caught:
        run_doctor()
    assert (caught.value.hint or "").startswith(f"run: {doctor.fix_command(os.getuid())}")
    results.pop()
    run_doctor()


def test_test_profile_picks_another_port_when_its_port_was_taken(world) -> None:  # type: ignore[no-untyped-def]
    plays = []

    def play(argv, stdin):  # type: ignore[no-untyped-def]
        plays.append(Path(argv[-1]).read_text())
        if len(plays) == 1:
            return Result(
                argv, 125, "", "cannot listen on the TCP port: bind: address already in use"
            )
        return world.podman._play(argv, stdin)

    world.runner.on(["podman", "kube", "play"], play)
    state = world.life.up(UpOptions(name="cm-t", profile="test"))
    assert len(plays) == 2
    assert f"hostPort: {state.port}" in plays[1]
    assert f"hostPort: {state.port}" not in plays[0]


def test_a_chosen_port_in_use_is_an_error_not_a_surprise(world) -> None:  # type: ignore[no-untyped-def]
    world.runner.reply(["podman", "kube", "play"], "", returncode=125)
    with pytest.raises(CommandFailed):
        world.life.up(UpOptions(name="cm", port=8123))
    assert len(world.runner.called("podman", "kube", "play")) == 1


OLLAMA_REF = "docker.io/ollama/ollama@sha256:" + "cd" * 32


def test_ollama_up_builds_two_images_pulls_the_pinned_one_and_remembers_it(world) -> None:  # type: ignore[no-untyped-def]
    built: list[list[str]] = []
    images = world.life.build_images

    def build(names: list[str]) -> dict[str, str]:
        built.append(list(names))
        return images(names)  # type: ignore[no-any-return]

    world.life.build_images = build
    world.life.upstream_ref = {"ollama": OLLAMA_REF}.__getitem__
    world.runner.reply(["podman", "image", "exists"], "", returncode=1)
    state = world.life.up(UpOptions(name="cm", embedder="ollama"))
    assert built == [["postgres", "server"]]  # the embedder image is not built
    assert world.runner.called("podman", "pull") == [("podman", "pull", OLLAMA_REF)]
    (play,) = world.runner.called("podman", "kube", "play")
    spec = Path(play[4]).read_text()
    assert f'image: "{OLLAMA_REF}"' in spec and '"nomic-embed-text"' in spec
    assert state.embedder == "ollama" and state.images["embedder"] == OLLAMA_REF
    # A later `up` without --embedder keeps ollama; the image is there now: no pull.
    world.runner.reply(["podman", "image", "exists"], "", returncode=0)
    assert world.life.up(UpOptions(name="cm")).embedder == "ollama"
    assert len(world.runner.called("podman", "pull")) == 1


def test_unpinned_ollama_stops_up_before_anything_runs(world) -> None:  # type: ignore[no-untyped-def]
    from codebase_mcp.errors import LockOutOfDate

    def unpinned(name: str) -> str:
        raise LockOutOfDate(f"upstream image '{name}' is not pinned by digest in the lock")

    world.life.upstream_ref = unpinned
    world.life.build_images = lambda names: pytest.fail("built despite the unpinned image")
    with pytest.raises(LockOutOfDate, match="not pinned"):
        world.life.up(UpOptions(name="cm", embedder="ollama"))
    assert world.runner.calls == []


def test_without_build_ollama_needs_only_the_built_images(world) -> None:  # type: ignore[no-untyped-def]
    world.life.upstream_ref = {"ollama": OLLAMA_REF}.__getitem__
    world.runner.on(
        ["podman", "image", "exists"],
        lambda argv, _in: Result(argv, 1 if "embedder" in argv[-1] else 0),
    )
    state = world.life.up(UpOptions(name="cm", embedder="ollama", build=False))
    assert state.images["embedder"] == OLLAMA_REF
    # the built embedder image was never asked for
    assert not any("codebase-mcp-embedder" in c[-1] for c in world.runner.called("podman", "image"))


def test_up_skips_a_remembered_repository_that_is_gone_and_keeps_the_others_paths(
    world, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = world.life.up(UpOptions(name="cm", repos=[str(a), str(b)]))
    assert world.life.skipped_repos == []
    a.rmdir()
    capsys.readouterr()
    second = world.life.up(UpOptions(name="cm"))
    err = capsys.readouterr().err
    assert f"warning: repository {a} no longer exists" in err
    assert f"`codebase-mcp repo remove {a}` forgets it" in err
    assert world.life.skipped_repos == [str(a)]
    assert second.repos == first.repos  # still remembered
    spec = (pod_dir("cm") / "pod.yaml").read_text()
    assert str(a) not in spec
    assert (
        f"{b}={repo_container_path(str(b))}" in spec
    )  # b keeps its container path: its index still maps


def test_up_auth_makes_a_token_once_and_a_podman_secret_from_stdin(world) -> None:  # type: ignore[no-untyped-def]
    state = world.life.up(UpOptions(name="cm", auth=True))
    assert state.auth is True
    token_file = pod_dir("cm") / "auth-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(token) >= 40
    assert world.podman.secrets == {"cm-db", "cm-auth"}
    # the body went through stdin, as {"token": base64}; the token is in no argv
    created = [
        (call, body)
        for call, body in zip(world.runner.calls, world.runner.inputs, strict=True)
        if call[:3] == ("podman", "secret", "create")
    ]
    bodies = {call[3]: json.loads(body) for call, body in created}
    assert set(bodies["cm-auth"]) == {"token"}
    assert all(token not in " ".join(call) for call in world.runner.calls)
    spec = (pod_dir("cm") / "pod.yaml").read_text()
    assert "cm-auth" in spec and token not in spec
    # the next up remembers auth and keeps the same token; --no-auth turns it off
    again = world.life.up(UpOptions(name="cm"))
    assert again.auth is True and token_file.read_text().strip() == token
    off = world.life.up(UpOptions(name="cm", auth=False))
    assert off.auth is False
    assert "cm-auth" not in (pod_dir("cm") / "pod.yaml").read_text()


def test_down_volumes_removes_the_auth_secret_too(world) -> None:  # type: ignore[no-untyped-def]
    world.life.up(UpOptions(name="cm", auth=True))
    removed = world.life.down("cm", volumes=True)
    assert {"secret cm-db", "secret cm-auth"} <= set(removed)
    assert world.podman.secrets == set()
    assert not pod_dir("cm").exists()


# --- git sources ---------------------------------------------------------------
KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nbm90LWEta2V5\n-----END OPENSSH PRIVATE KEY-----\n"
KNOWN_HOSTS = b"git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINotARealKeyAtAll\n"


def credential_files(tmp_path: Path, key_mode: int = 0o600) -> dict[str, str]:
    (tmp_path / "id").write_bytes(KEY)
    (tmp_path / "id").chmod(key_mode)
    (tmp_path / "kh").write_bytes(KNOWN_HOSTS)
    return {"ssh-key": str(tmp_path / "id"), "known-hosts": str(tmp_path / "kh")}


def real_rm(argv, _stdin):  # type: ignore[no-untyped-def]
    target = Path(argv[-1])
    target.chmod(0o700)
    shutil.rmtree(target)
    return Result(argv, 0)


def test_up_with_git_copies_the_credentials_privately_and_mounts_them(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world.runner.on(["rm", "-rf", "--"], real_rm)
    files = credential_files(tmp_path)
    state = world.life.up(UpOptions(name="cm", git_hosts=["git.example.com"], git_files=files))
    copy = pod_dir("cm") / "git"
    assert sorted(p.name for p in copy.iterdir()) == ["known-hosts", "ssh-key"]
    assert stat.S_IMODE((copy / "ssh-key").stat().st_mode) == 0o400
    assert (copy / "ssh-key").read_bytes() == KEY
    assert world.runner.called("chown") == [("chown", "-R", "10001:10001", "--", str(copy))]
    # the cache volume, created owned by the server's uid before kube play
    (create,) = world.runner.called("podman", "volume", "create")
    assert create == ("podman", "volume", "create", "--opt", "o=uid=10001,gid=10001", "cm-git")
    order = [
        c[:3] for c in world.runner.calls if c[:2] in (("podman", "volume"), ("podman", "kube"))
    ]
    assert order.index(("podman", "volume", "create")) < order.index(("podman", "kube", "play"))
    spec = yaml_file(pod_dir("cm")).read_text()
    assert f'path: "{copy}"' in spec
    assert '"/run/secrets/git/ssh-key"' in spec
    # no key material in the spec, any argv or any stdin
    assert "bm90LWEta2V5" not in spec
    assert not any("bm90LWEta2V5" in " ".join(c) for c in world.runner.calls)
    assert not any(i and "bm90LWEta2V5" in i for i in world.runner.inputs)
    assert (state.git_hosts, state.git_files) == (["git.example.com"], files)
    # a second up remembers both, copies the (rotated) key again, keeps the volume
    Path(files["ssh-key"]).chmod(0o600)
    Path(files["ssh-key"]).write_bytes(KEY.replace(b"bm90LWEta2V5", b"cm90YXRlZA=="))
    again = world.life.up(UpOptions(name="cm"))
    assert (again.git_hosts, again.git_files) == (["git.example.com"], files)
    assert b"cm90YXRlZA==" in (copy / "ssh-key").read_bytes()
    assert len(world.runner.called("podman", "volume", "create")) == 1


def test_a_bad_credential_file_stops_up_before_anything_runs(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = credential_files(tmp_path, key_mode=0o644)
    with pytest.raises(CredentialFileError, match="chmod 600|mode 0644") as caught:
        world.life.up(UpOptions(name="cm", git_hosts=["h.example"], git_files=files))
    assert "--git-ssh-key" in caught.value.message
    assert world.runner.calls == []
    missing = {"token": str(tmp_path / "no-such-token")}
    with pytest.raises(CredentialFileError, match="no such file"):
        world.life.up(UpOptions(name="cm", git_hosts=["h.example"], git_files=missing))
    assert world.runner.calls == []


def test_credentials_without_a_git_host_are_refused(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="no git host"):
        world.life.up(UpOptions(name="cm", git_files=credential_files(tmp_path)))
    assert world.runner.calls == []


def test_no_git_forgets_hosts_and_deletes_the_copy(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world.runner.on(["rm", "-rf", "--"], real_rm)
    files = credential_files(tmp_path)
    world.life.up(UpOptions(name="cm", git_hosts=["h.example"], git_files=files))
    state = world.life.up(UpOptions(name="cm", no_git=True))
    assert (state.git_hosts, state.git_files) == ([], {})
    assert not (pod_dir("cm") / "git").exists()
    assert "CODEBASE_MCP_GIT" not in yaml_file(pod_dir("cm")).read_text()


def test_down_deletes_the_copy_and_down_volumes_the_cache(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world.runner.on(["rm", "-rf", "--"], real_rm)
    world.life.up(
        UpOptions(name="cm", git_hosts=["h.example"], git_files=credential_files(tmp_path))
    )
    removed = world.life.down("cm", volumes=False)
    assert f"git credentials {pod_dir('cm') / 'git'}" in removed
    assert "cm-git" in world.podman.volumes  # the cache is data: kept
    world.life.up(UpOptions(name="cm"))  # copied again from the remembered files
    assert (pod_dir("cm") / "git" / "ssh-key").read_bytes() == KEY
    removed = world.life.down("cm", volumes=True)
    assert "volume cm-git" in removed
    assert not pod_dir("cm").exists()


def test_rootless_up_hands_the_copy_over_inside_podmans_user_namespace(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world.life.rootless = True
    world.runner.on(["podman", "unshare", "rm", "-rf", "--"], real_rm)
    world.life.up(
        UpOptions(name="cm", git_hosts=["h.example"], git_files=credential_files(tmp_path))
    )
    copy = pod_dir("cm") / "git"
    assert world.runner.called("podman", "unshare", "chown") == [
        ("podman", "unshare", "chown", "-R", "10001:10001", "--", str(copy))
    ]
    assert world.runner.called("chown") == []
    world.life.down("cm", volumes=False)
    assert world.runner.called("podman", "unshare", "rm") == [
        ("podman", "unshare", "rm", "-rf", "--", str(copy))
    ]
