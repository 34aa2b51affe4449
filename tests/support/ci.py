"""CI must not go green without running the stack: under ``CI=true`` a skipped e2e test fails.

``tests/e2e/conftest.py`` passes every e2e test report through :func:`fail_skips_in_ci`:
an e2e test that cannot run here (podman missing, images that cannot be built, ...)
skips on a developer's machine, saying why, and fails in CI with the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest


def in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def fail_skips_in_ci(report: pytest.TestReport, environ: Mapping[str, str]) -> pytest.TestReport:
    if not (report.skipped and in_ci(environ)) or hasattr(report, "wasxfail"):
        return report
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: this e2e test cannot run here and must not skip ({reason}); "
        "CI has to run the whole stack (run `codebase-mcp doctor --tests` on this machine)"
    )
    return report
