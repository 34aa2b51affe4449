"""Every e2e test: under ``CI=true`` a test that cannot run fails instead of skipping."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from tests.support.ci import fail_skips_in_ci


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    return fail_skips_in_ci(report, os.environ)
