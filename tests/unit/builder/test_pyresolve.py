from __future__ import annotations

from pathlib import Path

from codebase_mcp.builder.pyresolve import Target, parse_report, report_argv


def test_trixie_target_accepts_older_manylinux_tags() -> None:
    tags = Target("3.13", "manylinux_2_41_x86_64").platforms()
    assert tags[0] == "manylinux_2_41_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_42_x86_64" not in tags


def test_report_argv_targets_another_interpreter() -> None:
    argv = report_argv(
        "py", ["click>=8"], Target("3.13", "manylinux_2_28_x86_64"), Path("/t/report.json")
    )
    assert argv[:3] == ["py", "-m", "pip"]
    assert "--dry-run" in argv and "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert argv[argv.index("--abi") + 1] == "cp313"
    assert argv[argv.index("--index-url") + 1] == "https://pypi.org/simple"
    assert argv[-1] == "click>=8"


def test_parse_report_reads_name_version_url_hash() -> None:
    report = {
        "install": [
            {
                "metadata": {"name": "Foo_Bar", "version": "1.2"},
                "download_info": {
                    "url": "https://files/foo_bar-1.2-py3-none-any.whl",
                    "archive_info": {"hash": "sha256=" + "a" * 64},
                },
            },
            {
                "metadata": {"name": "click", "version": "8.3"},
                "download_info": {
                    "url": "https://files/click-8.3-py3-none-any.whl#sha256=x",
                    "archive_info": {"hashes": {"sha256": "b" * 64}},
                },
            },
        ]
    }
    wheels = parse_report(report)
    assert [(w.name, w.version, w.sha256[:1]) for w in wheels] == [
        ("click", "8.3", "b"),
        ("foo-bar", "1.2", "a"),
    ]
    assert wheels[0].url == "https://files/click-8.3-py3-none-any.whl"
    assert wheels[0].filename == "click-8.3-py3-none-any.whl"
