"""The suite's answer to a worker that dies under a test (tests/_crash_rerun.py).

A small suite runs in a pytest of its own on one xdist worker: a test that kills
its worker once and then passes, one that kills it every time, and one whose
assertion fails. Each test counts its runs in a file. (.ci/run prints the stacks
of any core file a test process leaves; these deaths leave none.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

SUITE = {
    "conftest.py": """
import resource

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files from these deaths

from _crash_rerun import (  # noqa: F401
    pytest_handlecrashitem,
    pytest_report_teststatus,
    pytest_terminal_summary,
)
""",
    "test_suite.py": """
import faulthandler
from pathlib import Path

def runs(name):
    path = Path(__file__).with_name(name + ".runs")
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count

def test_dies_once():
    if runs("dies_once") == 1:
        faulthandler._sigsegv()

def test_dies_always():
    runs("dies_always")
    faulthandler._sigsegv()

def test_fails():
    runs("fails")
    assert 1 == 2
""",
}


def run_suite(folder: Path, *select: str) -> subprocess.CompletedProcess[str]:
    for name, text in SUITE.items():
        (folder / name).write_text(text.lstrip(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    args = ["-n", "1", "-p", "no:randomly", "-p", "no:cacheprovider", "-rA"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, *[f"test_suite.py::{t}" for t in select]],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def runs(folder: Path, name: str) -> int:
    path = folder / f"{name}.runs"
    return int(path.read_text()) if path.exists() else 0


def test_a_test_whose_worker_dies_once_runs_again_and_passes(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "test_dies_once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs(tmp_path, "dies_once") == 2
    assert "1 passed, 1 crashed" in done.stdout
    assert "worker crashes (each test ran again on a new worker)" in done.stdout
    assert "crashed while running 'test_suite.py::test_dies_once'" in done.stdout


def test_a_second_death_fails_the_test_and_a_failed_assertion_runs_once(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "test_dies_always", "test_fails")
    assert done.returncode == 1, done.stdout + done.stderr
    assert runs(tmp_path, "dies_always") == 2
    assert runs(tmp_path, "fails") == 1
    assert "2 failed, 1 crashed" in done.stdout
