"""Under CI=true an e2e test that skips is reported as failed, with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ci import fail_skips_in_ci

pytest_plugins = ["pytester"]
ARGS = ("-p", "no:cacheprovider", "-p", "no:asyncio", "e2e")

E2E_TEST = """
import pytest

pytestmark = pytest.mark.e2e

def test_needs_the_stack():
    pytest.skip("podman is not installed")
"""


def skipped() -> pytest.TestReport:
    return pytest.TestReport(
        "tests/e2e/test_x.py::test_x", ("x", 1, "x"), {}, "skipped",
        ("tests/e2e/test_x.py", 3, "Skipped: podman is not installed"), "setup",
    )  # fmt: skip


def test_a_skip_fails_in_ci_and_says_why() -> None:
    report = fail_skips_in_ci(skipped(), {"CI": "true"})
    assert report.failed
    assert "podman is not installed" in str(report.longrepr)


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"}])
def test_outside_ci_a_skip_stays_a_skip(environ: dict[str, str]) -> None:
    assert fail_skips_in_ci(skipped(), environ).skipped


def test_the_e2e_conftest_applies_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[2]
    e2e = pytester.mkdir("e2e")
    (e2e / "conftest.py").write_text((repo / "tests/e2e/conftest.py").read_text())
    (e2e / "test_x.py").write_text(E2E_TEST)
    pytester.syspathinsert(repo)
    monkeypatch.setenv("CI", "true")
    pytester.runpytest(*ARGS).assert_outcomes(failed=1)
    monkeypatch.delenv("CI")
    pytester.runpytest(*ARGS).assert_outcomes(skipped=1)
