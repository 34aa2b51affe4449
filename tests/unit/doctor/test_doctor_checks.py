"""The doctor's checks against fake hosts (pure facts), and the one package list."""

from __future__ import annotations

import json
import re
from pathlib import Path

from codebase_mcp import doctor
from codebase_mcp.doctor import HostPaths, Limit, checks
from codebase_mcp.doctor import facts as doctor_facts
from codebase_mcp.doctor.fix import Command, plan
from codebase_mcp.hostpackages import PACKAGES, package_for_program, wanted
from codebase_mcp.proc import missing_tool

from .conftest import ROOTLESS, FakeHost, facts

REPO = Path(__file__).resolve().parents[3]


def by_name(results: list[doctor.CheckResult]) -> dict[str, doctor.CheckResult]:
    return {r.name: r for r in results}


def test_a_healthy_host_passes_and_has_nothing_to_fix() -> None:
    assert [r for r in doctor.evaluate(facts()) if r.status != "ok"] == []
    assert plan(facts()).empty


def test_a_host_without_catatonit_fails_naming_it_and_the_fix_installs_it() -> None:
    host = facts(found={**facts().found, "catatonit": None})
    result = by_name(doctor.evaluate(host))["catatonit"]
    assert result.status == "fail"
    assert "helper_binaries_dir" in result.detail and "$PATH" in result.detail
    assert "/usr/libexec/podman" in result.detail  # where podman looks first
    assert "pause" in result.detail
    assert result.fix == "apt-get install catatonit"
    commands = [a.argv for a in plan(host).actions if isinstance(a, Command)]
    assert commands == [
        ("apt-get", "update", "-q"),
        ("apt-get", "install", "-y", "-q", "--no-install-recommends", "catatonit"),
    ]


def test_a_plain_user_without_catatonit_is_told_the_exact_sudo_command() -> None:
    host = facts(**ROOTLESS, found={**facts().found, "catatonit": None})
    assert by_name(doctor.evaluate(host))["catatonit"].fix == "sudo apt-get install catatonit"
    fixing = plan(host)
    assert fixing.actions == ()  # nothing this user can change about packages
    assert [c.shell(sudo=True) for c in fixing.manual] == [
        "sudo apt-get update -q",
        "sudo apt-get install -y -q --no-install-recommends catatonit",
    ]


def test_rootless_packages_warn_for_root_and_fail_for_a_plain_user() -> None:
    missing = {**facts().found, "newuidmap": None, "slirp4netns": None}
    as_root = by_name(doctor.evaluate(facts(found=missing)))
    assert as_root["newuidmap"].status == as_root["slirp4netns"].status == "warn"
    as_user = by_name(doctor.evaluate(facts(**ROOTLESS, found=missing)))
    assert as_user["newuidmap"].status == as_user["slirp4netns"].status == "fail"
    # root's fix installs them anyway: the host's users need them
    assert "uidmap" in plan(facts(found=missing)).actions[1].argv  # type: ignore[union-attr]


def test_the_test_packages_are_checked_and_installed_only_with_tests() -> None:
    host = facts(found={**facts().found, "docker-registry": None})
    assert "docker-registry" not in by_name(doctor.evaluate(host))
    assert plan(host).empty
    result = by_name(doctor.evaluate(host, tests=True))["docker-registry"]
    assert result.status == "fail" and result.fix == "apt-get install docker-registry"
    assert plan(host, tests=True).actions[1].argv[-1] == "docker-registry"  # type: ignore[union-attr]


def test_an_old_podman_fails_with_its_version() -> None:
    host = facts(versions={**facts().versions, "podman": (4, 2, 0)})
    result = by_name(doctor.evaluate(host))["podman"]
    assert result.status == "fail" and "4.2.0 is older than 4.3" in result.detail


def test_crun_on_hybrid_cgroups_fails_and_the_fix_sets_runc() -> None:
    info = {"host": {"ociRuntime": {"name": "crun"}, "cgroupVersion": "v1"}, "store": {}}
    host = facts(podman_info=info, conf={**facts().conf, "engine": {}})
    result = by_name(doctor.evaluate(host))["oci runtime"]
    assert result.status == "fail" and "hybrid" in result.detail
    assert 'runtime = "runc"' in result.fix and "/fake/etc/containers/containers.conf" in result.fix
    assert checks.conf_settings(host) == {("engine", "runtime"): "runc"}
    # cgroups v2: crun is fine, nothing to set
    v2 = facts(cgroup_mode="v2", podman_info={**info, "host": {"ociRuntime": {"name": "crun"}}})
    assert by_name(doctor.evaluate(v2))["oci runtime"].status == "ok"


def test_capped_limits_without_config_fail_and_the_fix_caps_containers_at_the_host() -> None:
    host = facts(conf={"engine": {"runtime": "runc"}})
    result = by_name(doctor.evaluate(host))["ulimits"]
    assert result.status == "fail" and "nofile, nproc" in result.detail
    assert checks.conf_settings(host) == {
        ("containers", "default_ulimits"): ("nofile=20000:20000", "nproc=32768:32768")
    }


def test_an_nproc_above_pid_max_fails_even_below_the_hard_limit() -> None:
    # What the doctor itself wrote before it knew pid_max: every container failed with
    # "error setting rlimit type 6: operation not permitted".
    host = facts(conf={"containers": {"default_ulimits": ["nofile=20000:20000",
                                                          "nproc=96363:96363"]},
                       "engine": {"runtime": "runc"}})  # fmt: skip
    result = by_name(doctor.evaluate(host))["ulimits"]
    assert result.status == "fail" and "nproc" in result.detail and "pid_max 32768" in result.detail
    assert checks.conf_settings(host) == {
        ("containers", "default_ulimits"): ("nofile=20000:20000", "nproc=32768:32768")
    }


def test_pid_max_is_read_from_the_host(tmp_path: Path) -> None:
    kernel = tmp_path / "proc/sys/kernel"
    kernel.mkdir(parents=True)
    (kernel / "pid_max").write_text("32768\n")
    limits = doctor_facts._limits(FakeHost(), HostPaths(root=tmp_path))
    assert limits["nproc"].ceiling == 32768 and limits["nofile"].ceiling is None


def test_limits_root_can_raise_need_no_config() -> None:
    raisable = {n: Limit(hard=524288, can_raise=True) for n in ("nofile", "nproc")}
    assert checks.conf_settings(facts(conf={"engine": {"runtime": "runc"}}, limits=raisable)) == {}


def test_a_configured_limit_above_the_cap_is_replaced_and_other_entries_kept() -> None:
    host = facts(conf={"containers": {"default_ulimits": ["memlock=-1:-1", "nofile=65536:65536"]},
                       "engine": {"runtime": "runc"}})  # fmt: skip
    wanted_ulimits = checks.conf_settings(host)[("containers", "default_ulimits")]
    assert wanted_ulimits == ("memlock=-1:-1", "nofile=20000:20000", "nproc=32768:32768")


def test_rootless_podman_clamps_unconfigured_limits_itself() -> None:
    host = facts(**ROOTLESS)
    assert by_name(doctor.evaluate(host))["ulimits"].status == "ok"


def test_rootless_checks_subuid_ranges_userns_and_tun() -> None:
    results = by_name(doctor.evaluate(facts(**{**ROOTLESS, "subuid": "", "tun_mode": 0o600})))
    assert results["subuid/subgid"].status == "fail"
    assert "usermod --add-subuids 165536-231071 --add-subgids 165536-231071 dev" in (
        results["subuid/subgid"].fix
    )
    assert results["rootless network"].status == "warn"
    assert "chmod 0666 /dev/net/tun" in results["rootless network"].fix
    assert by_name(doctor.evaluate(facts(**ROOTLESS)))["subuid/subgid"].status == "ok"


def test_rootless_with_vfs_only_warns() -> None:
    results = by_name(doctor.evaluate(facts(**ROOTLESS)))
    assert {n for n, r in results.items() if r.status != "ok"} == {"storage"}
    assert "same as root's" in results["storage"].detail


def test_subuid_range_too_small_fails() -> None:
    small = {**ROOTLESS, "subuid": "dev:100000:1000\n", "subgid": "1000:100000:65536\n"}
    result = by_name(doctor.evaluate(facts(**small)))["subuid/subgid"]
    assert result.status == "fail" and "/etc/subuid has 1000" in result.detail
    assert doctor.subid_count("dev:1:10\nother:5:99\n1000:20:5\n", "dev", 1000) == 15


def test_free_subid_range_is_past_every_range_in_use() -> None:
    assert doctor.free_subid_range("", "") == (100000, 165535)
    used = "a:100000:65536\nb:165536:65536\n"
    assert doctor.free_subid_range(used, "c:300000:10\n") == (300010, 365545)


def test_user_namespaces_and_store() -> None:
    result = by_name(doctor.evaluate(facts(**{**ROOTLESS, "userns_max": 0})))["user namespaces"]
    assert result.status == "fail" and "user.max_user_namespaces" in result.fix
    store = by_name(doctor.evaluate(facts(store="/root/.cache/x", store_writable=False)))["store"]
    assert store.status == "fail" and "CODEBASE_MCP_STORE" in store.fix


def test_json_is_parseable() -> None:
    data = json.loads(doctor.as_json([doctor.CheckResult("x", "ok", "fine")]))
    assert data == {"ok": True, "checks": [{"name": "x", "status": "ok", "detail": "fine",
                                            "fix": ""}]}  # fmt: skip


# --- the one package list ----------------------------------------------------------------


def test_missing_tool_hints_come_from_the_package_list() -> None:
    assert package_for_program("dpkg-scanpackages") == "dpkg-dev"
    assert package_for_program("newuidmap") == "uidmap"
    hint = missing_tool("/usr/bin/dpkg-scanpackages").hint or ""
    assert "apt-get install dpkg-dev" in hint and "doctor --fix" in hint


def test_ci_and_readme_name_the_doctor_not_a_copy_of_the_list() -> None:
    ci = (REPO / ".ci/run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "codebase-mcp doctor --fix --tests" in ci
    assert "doctor --fix" in readme
    # No package of the list is installed by name anywhere else.
    apt_lines = [line for line in (ci + readme).splitlines() if "apt-get install" in line]
    named = {word for line in apt_lines for word in re.findall(r"[a-z0-9][a-z0-9.+-]+", line)}
    assert named & {p.name for p in PACKAGES} == set(), apt_lines


def test_the_ci_bootstrap_is_what_the_readme_says() -> None:
    ci = (REPO / ".ci/run").read_text()
    readme = (REPO / "README.md").read_text()
    (bootstrap,) = re.findall(r'^BOOTSTRAP="([^"]+)"', ci, re.MULTILINE)
    (said,) = re.findall(r"sudo apt-get install ([a-z0-9 .-]+)`", readme)
    assert sorted(said.split()) == sorted(bootstrap.split())


def test_every_package_has_a_purpose_and_one_entry() -> None:
    names = [p.name for p in PACKAGES]
    assert len(names) == len(set(names))
    assert all(p.purpose for p in PACKAGES)
    assert {p.name for p in wanted(tests=True)} - {p.name for p in wanted(tests=False)} == {
        "docker-registry",
        "buildah",
    }
