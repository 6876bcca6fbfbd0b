"""The quick commands stay quick: they load none of the heavy libraries they do not need.

Start-up time itself is measured by benchmarks/startup_bench.py; these tests
check what each command imports, which is what decides it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from digest.issue import save_issue, workspace_issue
from digest.workspace import Workspace

HEAVY = (
    "starlette",
    "uvicorn",
    "premailer",
    "sqlalchemy",
    "httpx",
    "feedparser",
    "jinja2",
    "lxml",
    "babel",
)
NOTHING_DUE = "2026-12-01T10:00:00Z"  # a Tuesday; the slot is Friday 07:00


def imported(ws: Workspace, *args: str) -> set[str]:
    """The top-level packages ``digest ARGS`` imports, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "digest", "-C", str(ws.root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, done.stderr  # -X importtime reported
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--now", NOTHING_DUE, "send", "--due"), ("issue", "list")],
    ids=["help", "send-due-nothing-due", "issue-list"],
)
def test_quick_commands_load_no_heavy_library(workspace: Workspace, args: tuple[str, ...]) -> None:
    save_issue(workspace_issue(workspace, None, create=True))
    loaded = imported(workspace, *args)
    assert "digest" in loaded
    assert sorted(set(HEAVY) & loaded) == []


def test_schedule_loads_no_web_stack_nor_network_client(workspace: Workspace) -> None:
    loaded = imported(workspace, "--now", NOTHING_DUE, "schedule")
    assert sorted({"starlette", "uvicorn", "httpx", "feedparser"} & loaded) == []


# That the grouped listing of `digest --help` says what each command says is checked in
# tests/test_help.py (HELP_SECTIONS).
