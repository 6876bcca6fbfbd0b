"""A test whose worker process dies runs once more, on a new worker.

The README's test command runs the suite on two pytest-xdist workers. A worker
can die under a test for reasons outside the test: CI once saw CPython segfault
in aiosmtpd's server thread while the test's own thread was reading a file,
and it never came back in the runs since. A death is not the test's verdict,
so the test is scheduled once more on a fresh worker and the end of the run
lists it with the worker's message (its stack is printed where it died). A
second death fails the test; a failed assertion is never run again.
"""

from __future__ import annotations

from typing import Any

import pytest

CATEGORY = "crashed"

_crashed: set[str] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: Any) -> None:
    """pytest-xdist's hook, called on the controller when a worker dies under a test."""
    if crashitem in _crashed:
        return
    _crashed.add(crashitem)
    sched.mark_test_pending(crashitem)
    report.outcome = CATEGORY  # type: ignore[assignment]


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, Any] | None:
    if report.outcome == CATEGORY:
        return CATEGORY, "C", ("CRASHED, RUNS AGAIN", {"yellow": True})
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reports = terminalreporter.stats.get(CATEGORY, [])
    if reports:
        terminalreporter.section("worker crashes (each test ran again on a new worker)")
        for report in reports:
            terminalreporter.line(str(report.longrepr))
