"""Each test's outcome on its item (`item.rep_call`), so test_ui.py's tab fixture can tell a failed test
from a passed one when it decides whether to keep the tab for the next test."""

from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
