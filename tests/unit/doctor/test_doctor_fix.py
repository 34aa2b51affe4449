"""``doctor --fix`` run for real against a fake host (a temporary root, a fake apt-get and
podman), the containers.conf merge, and the CLI around it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp import doctor
from codebase_mcp.cli import main
from codebase_mcp.doctor import apply, conf, fix
from codebase_mcp.errors import ConfigError
from codebase_mcp.hostpackages import wanted

from .conftest import CAPPED, FakeHost, facts

EXISTING = """\
# The admin's own settings: kept as they are.
[containers]
log_size_max = 1048576   # a comment that stays
default_ulimits = [
  "memlock=-1:-1",
  "nofile=65536:65536",
]

[engine]
runtime = "crun"
events_logger = "file"

[engine.runtimes]
runc = ["/usr/sbin/runc"]
"""


GATHER = doctor.gather


def gather(host: FakeHost, **over: Any) -> doctor.HostFacts:
    return GATHER(host, host.paths, uid=over.pop("uid", 0), user=over.pop("user", "root"),
                         limits=over.pop("limits", dict(CAPPED)))  # fmt: skip


def test_fresh_host_fix_installs_the_list_writes_the_conf_and_a_second_run_changes_nothing(
    host: FakeHost,
) -> None:
    before = gather(host)
    failing = {r.name for r in doctor.evaluate(before) if r.status == "fail"}
    assert {"podman", "catatonit", "skopeo", "oci runtime", "ulimits"} <= failing

    changed = apply.apply(fix.plan(before), host)
    assert sorted(host.installed) == sorted(p.name for p in wanted(tests=False))
    written = host.root / "etc/containers/containers.conf"
    assert changed[-1] == f"set {written}: [engine] runtime = \"runc\"; [containers] " \
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'  # fmt: skip
    assert tomllib.loads(written.read_text()) == {
        "engine": {"runtime": "runc"},
        "containers": {"default_ulimits": ["nofile=20000:20000", "nproc=32768:32768"]},
    }

    after = gather(host)
    assert [r for r in doctor.evaluate(after) if r.status == "fail"] == []
    calls = len(host.calls)
    second = fix.plan(after)
    assert second.empty
    assert apply.apply(second, host) == []
    assert len(host.calls) == calls  # not even apt-get update


def test_fix_merges_into_an_existing_containers_conf(host: FakeHost) -> None:
    host.install(*(p.name for p in wanted(tests=False)))
    path = host.root / "etc/containers/containers.conf"
    path.parent.mkdir(parents=True)
    path.write_text(EXISTING)
    path.chmod(0o640)
    changed = apply.apply(fix.plan(gather(host)), host)
    assert len(changed) == 1
    text = path.read_text()
    assert text.startswith("# The admin's own settings: kept as they are.\n")
    assert "log_size_max = 1048576   # a comment that stays\n" in text
    assert 'runtime = "runc"\nevents_logger = "file"\n' in text
    assert tomllib.loads(text) == {
        "containers": {
            "log_size_max": 1048576,
            "default_ulimits": ["memlock=-1:-1", "nofile=20000:20000", "nproc=32768:32768"],
        },
        "engine": {"runtime": "runc", "events_logger": "file",
                   "runtimes": {"runc": ["/usr/sbin/runc"]}},
    }  # fmt: skip
    assert path.stat().st_mode & 0o777 == 0o640
    assert fix.plan(gather(host)).empty


def test_a_plain_user_fixes_their_own_conf_and_gets_sudo_commands_for_the_rest(
    host: FakeHost,
) -> None:
    (host.root / "etc").mkdir()
    (host.root / "etc/subuid").write_text("alice:100000:65536\n")
    (host.root / "dev/net/tun").write_text("")
    (host.root / "dev/net/tun").chmod(0o600)
    before = gather(host, uid=1000, user="dev")
    plan = fix.plan(before)
    assert [type(a) for a in plan.actions] == [fix.SetConf]
    manual = [c.shell(sudo=True) for c in plan.manual]
    assert manual[0] == "sudo apt-get update -q"
    assert manual[1].startswith("sudo apt-get install -y -q --no-install-recommends podman ")
    assert "sudo usermod --add-subuids 165536-231071 --add-subgids 165536-231071 dev" in manual
    assert "sudo chmod 0666 /dev/net/tun" in manual
    changed = apply.apply(plan, host)
    user_conf = host.root / "home/dev/.config/containers/containers.conf"
    assert changed == [f'set {user_conf}: [engine] runtime = "runc"']
    assert host.installed == []  # a plain user's fix never runs apt-get
    assert not (host.root / "etc/containers/containers.conf").exists()
    assert fix.plan(gather(host, uid=1000, user="dev")).actions == ()


def test_root_through_sudo_sets_up_the_asking_user(host: FakeHost) -> None:
    host.install(*(p.name for p in wanted(tests=False)))
    plan = fix.plan(facts(sudo_user="alice", subuid="", subgid="", tun_mode=0o600,
                          userns_max=0))  # fmt: skip
    argvs = [a.argv for a in plan.actions if isinstance(a, fix.Command)]
    assert ("usermod", "--add-subuids", "100000-165535", "--add-subgids", "100000-165535",
            "alice") in argvs  # fmt: skip
    assert ("chmod", "0666", "/dev/net/tun") in argvs
    assert ("sysctl", "-w", "user.max_user_namespaces=15000") in argvs
    assert any(isinstance(a, fix.WriteFile) and a.path.endswith("50-codebase-mcp.conf")
               for a in plan.actions)  # fmt: skip


# --- the merge itself --------------------------------------------------------------------


def test_merge_adds_missing_tables_and_is_idempotent() -> None:
    settings = {("engine", "runtime"): "runc", ("containers", "default_ulimits"): ("nofile=1:1",)}
    once = conf.merge("", settings)
    assert tomllib.loads(once) == {"engine": {"runtime": "runc"},
                                   "containers": {"default_ulimits": ["nofile=1:1"]}}  # fmt: skip
    assert conf.merge(once, settings) == once
    network = '[network]\nnetwork_backend = "netavark"\n'
    kept = conf.merge(network, {("engine", "runtime"): "runc"})
    assert kept == '[network]\nnetwork_backend = "netavark"\n\n[engine]\nruntime = "runc"\n'


def test_merge_refuses_a_broken_file_instead_of_replacing_it() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        conf.merge("[engine\nruntime = crun\n", {("engine", "runtime"): "runc"})


def test_merge_refuses_a_layout_it_cannot_edit_safely() -> None:
    # A dotted key at the top level sets [engine] runtime without an [engine] header.
    with pytest.raises(ConfigError, match="could not edit"):
        conf.merge('engine.runtime = "crun"\n', {("engine", "runtime"): "runc"})


# --- the CLI -----------------------------------------------------------------------------


@pytest.fixture
def cli_host(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    """`codebase-mcp doctor` seeing the fake host (its runner and paths)."""
    import codebase_mcp.proc

    monkeypatch.setattr(codebase_mcp.proc, "Runner", lambda: host)
    monkeypatch.setattr(doctor, "gather", lambda runner: gather(host))
    return host


def test_cli_fix_reports_what_it_changed_then_nothing(
    cli_host: FakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["doctor"])
    assert info.value.code == 6
    out, err = capsys.readouterr()
    assert "[FAIL] catatonit" in out and "run: codebase-mcp doctor --fix" in err.replace(
        doctor.fix_command(0), "codebase-mcp doctor --fix"
    )
    main(["doctor", "--fix"])
    out = capsys.readouterr().out
    assert "changed: ran DEBIAN_FRONTEND=noninteractive apt-get install" in out
    assert "changed: set " in out and "[FAIL]" not in out
    main(["doctor", "--fix"])
    assert "nothing to change" in capsys.readouterr().out


def test_cli_dry_run_changes_nothing_and_json_lists_the_plan(
    cli_host: FakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["doctor", "--fix", "--dry-run", "--json", "--tests"])
    data = json.loads(capsys.readouterr().out)
    assert cli_host.installed == [] and not (cli_host.root / "etc/containers").exists()
    assert data["ok"] is False
    runs = [step["run"] for step in data["plan"] if "run" in step]
    assert runs[-1].endswith("docker-registry buildah")  # the --tests packages come last
    assert any("set" in step and "runtime" in step["set"] for step in data["plan"])


def test_cli_lists_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    main(["doctor", "--packages"])
    assert capsys.readouterr().out.split() == [p.name for p in wanted(tests=False)]


def test_fix_command_is_spelled_for_this_user() -> None:
    assert doctor.fix_command(0).endswith(" doctor --fix")
    assert doctor.fix_command(1000).startswith("sudo ")


def test_paths_of_a_fake_root_stay_under_it(tmp_path: Path) -> None:
    paths = doctor.HostPaths(root=tmp_path, home=tmp_path / "home")
    assert paths.system_conf == tmp_path / "etc/containers/containers.conf"
    assert paths.user_conf == tmp_path / "home/.config/containers/containers.conf"
