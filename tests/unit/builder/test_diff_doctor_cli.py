from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from codebase_mcp import doctor
from codebase_mcp.builder.diff import compare
from codebase_mcp.builder.store import Store, writable_dir
from codebase_mcp.cli import cli, main
from codebase_mcp.errors import ConfigError


def lock_with(version: str, wheel_version: str) -> dict[str, object]:
    return {
        "source_date_epoch": 1,
        "images": {
            "server": {
                "debian": {"packages": [{"name": "libc6", "version": version, "sha256": "c" * 64}]},
                "python": {
                    "wheels": [{"name": "click", "version": wheel_version, "sha256": "d" * 64}],
                    "no_deps": [],
                    "tools": [],
                },
            }
        },
    }


def test_diff_names_changed_packages() -> None:
    changes = compare(lock_with("2.41-1", "8.1"), lock_with("2.41-2", "8.1"))
    assert [(c["image"], c["kind"], c["name"]) for c in changes] == [("server", "deb", "libc6")]
    assert changes[0]["a"].startswith("2.41-1") and changes[0]["b"].startswith("2.41-2")
    assert compare(lock_with("1", "1"), lock_with("1", "1")) == []


def facts(**over: object) -> doctor.HostFacts:
    base = dict(
        uid=0,
        user="root",
        python=(3, 11),
        programs={n: f"/usr/bin/{n}" for n in doctor.APT_PACKAGES},
        versions={
            "podman": (4, 3, 1),
            "buildah": (1, 28, 2),
            "mmdebstrap": (1, 3, 5),
            "skopeo": (1, 9, 3),
        },
        podman_info={
            "host": {"ociRuntime": {"name": "runc"}, "cgroupVersion": "v2"},
            "store": {"graphDriverName": "overlay"},
        },
        nofile_hard=20000,
        containers_conf='[containers]\ndefault_ulimits = ["nofile=20000:20000"]\n',
        subuid="",
        subgid="",
        tun_mode=0o666,
    )
    base.update(over)
    return doctor.HostFacts(**base)  # type: ignore[arg-type]


def by_name(results: list[doctor.CheckResult]) -> dict[str, doctor.CheckResult]:
    return {r.name: r for r in results}


def test_doctor_healthy_host_passes() -> None:
    assert all(r.status == "ok" for r in doctor.evaluate(facts()))


def test_doctor_ulimit_cap_without_config_fails_with_fix() -> None:
    result = by_name(doctor.evaluate(facts(containers_conf="")))["ulimits"]
    assert result.status == "fail" and "nofile=20000:20000" in result.fix


def test_doctor_crun_on_cgroup_v1_fails() -> None:
    info = {"host": {"ociRuntime": {"name": "crun"}, "cgroupVersion": "v1"}, "store": {}}
    result = by_name(doctor.evaluate(facts(podman_info=info)))["oci runtime"]
    assert result.status == "fail" and 'runtime = "runc"' in result.fix


def test_doctor_missing_tool_says_which_package() -> None:
    programs = {n: f"/usr/bin/{n}" for n in doctor.APT_PACKAGES}
    programs["dpkg-scanpackages"] = None
    result = by_name(doctor.evaluate(facts(programs=programs)))["dpkg-scanpackages"]
    assert result.status == "fail" and result.fix == "sudo apt-get install dpkg-dev"


def test_doctor_rootless_needs_subuid_ranges() -> None:
    results = by_name(doctor.evaluate(facts(uid=1000, user="dev", tun_mode=0o600)))
    assert results["subuid/subgid"].status == "fail"
    assert "usermod" in results["subuid/subgid"].fix
    assert results["rootless network"].status == "warn"
    ok = by_name(
        doctor.evaluate(
            facts(uid=1000, user="dev", subuid="dev:100000:65536\n", subgid="dev:100000:65536\n")
        )
    )
    assert ok["subuid/subgid"].status == "ok"


def test_cli_unknown_image_exits_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[3]
    monkeypatch.setenv("CODEBASE_MCP_ROOT", str(repo))
    with pytest.raises(SystemExit) as info:
        main(["image", "build", "no-such-image"])
    assert info.value.code == 11
    err = capsys.readouterr().err
    assert "error: no image named 'no-such-image'" in err and "postgres" in err


def test_cli_missing_lock_says_how_to_make_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "build" / "lock.json").unlink()
    with pytest.raises(SystemExit) as info:
        main(["image", "build", "--root", str(project), "demo"])
    assert info.value.code == 12
    assert "codebase-mcp image lock" in capsys.readouterr().err


def test_help_lists_every_image_command() -> None:
    out = CliRunner().invoke(cli, ["image", "--help"]).output
    for command in ("lock", "fetch", "build", "verify", "diff", "list"):
        assert command in out


def test_doctor_json_is_parseable() -> None:
    data = json.loads(doctor.as_json([doctor.CheckResult("x", "ok", "fine")]))
    assert data == {
        "ok": True,
        "checks": [{"name": "x", "status": "ok", "detail": "fine", "fix": ""}],
    }


def test_lock_check_passes_then_names_the_stale_entry(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "lock", "--check", "--root", str(project)]) is None
    toml = project / "images" / "demo" / "image.toml"
    toml.write_text(toml.read_text().replace('"python3"', '"python3", "git"'))
    with pytest.raises(SystemExit) as info:
        main(["image", "lock", "--check", "--root", str(project)])
    assert info.value.code == 13
    assert "images.demo.debian.packages" in capsys.readouterr().err


ROOTLESS = dict(
    uid=1000,
    user="dev",
    subuid="dev:100000:65536\n",
    subgid="dev:100000:65536\n",
    userns_max=15000,
    userns_clone=1,
    podman_info={
        "host": {"ociRuntime": {"name": "runc"}, "cgroupVersion": "v2"},
        "store": {"graphDriverName": "vfs"},
    },
)


def test_doctor_rootless_host_with_vfs_only_warns() -> None:
    results = by_name(doctor.evaluate(facts(**ROOTLESS)))
    assert {n for n, r in results.items() if r.status != "ok"} == {"storage"}
    assert results["storage"].status == "warn"
    assert "same as root's" in results["storage"].detail
    assert results["user namespaces"].status == "ok"


def test_doctor_rootless_subuid_range_too_small_fails() -> None:
    small = {**ROOTLESS, "subuid": "dev:100000:1000\n", "subgid": "1000:100000:65536\n"}
    result = by_name(doctor.evaluate(facts(**small)))["subuid/subgid"]
    assert result.status == "fail" and "/etc/subuid has 1000" in result.detail
    assert "usermod --add-subuids" in result.fix
    assert doctor.subid_count("dev:1:10\nother:5:99\n1000:20:5\n", "dev", 1000) == 15


@pytest.mark.parametrize(
    ("over", "fix"),
    [
        ({"userns_max": 0}, "user.max_user_namespaces"),
        ({"userns_clone": 0}, "kernel.unprivileged_userns_clone=1"),
    ],
)
def test_doctor_rootless_needs_user_namespaces(over: dict[str, int], fix: str) -> None:
    result = by_name(doctor.evaluate(facts(**{**ROOTLESS, **over})))["user namespaces"]
    assert result.status == "fail" and fix in result.fix


def test_doctor_store_not_writable_fails_for_anyone() -> None:
    result = by_name(doctor.evaluate(facts(store="/root/.cache/x", store_writable=False)))["store"]
    assert result.status == "fail" and "CODEBASE_MCP_STORE" in result.fix


def test_store_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert writable_dir(tmp_path / "new" / "store")
    with pytest.raises(ConfigError, match="not writable") as info:
        Store(blocker / "store").ensure_writable()
    assert info.value.hint and "CODEBASE_MCP_STORE" in info.value.hint
