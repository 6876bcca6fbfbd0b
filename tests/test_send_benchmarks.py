"""The sending benchmarks still run: each one, on a handful of messages.

The figures are not checked (a benchmark's numbers mean something only on an idle
machine, docs/speed.md); what is checked is that each command runs to the end and
that what it counts adds up. They need Postfix's smtp-sink and smtp-source
(Debian package postfix, installed by .ci/run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(autouse=True)
def _postfix_tools() -> None:
    if not (os.access("/usr/sbin/smtp-sink", os.X_OK) or _which("smtp-sink")):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("smtp-sink is not installed on CI (.ci/run installs postfix)")
        pytest.skip("Postfix's smtp-sink is not installed (Debian: postfix)")


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def run(name: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DIGEST_NOW", "DIGEST_DATABASE_URL")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_smtp_bench() -> None:
    out = run("smtp_bench.py", "--messages", "60", "--connections", "2", "--sink", "postfix")
    assert re.search(r"digest send \(process start to exit\): [\d,]+ msg/s", out), out
    assert "plain Python (threads)" in out and "smtp-source (2 sessions" in out
    assert "2026-12-04: 60 sent, 0 failed" in out


def test_kill_bench() -> None:
    out = run("kill_bench.py", "--messages", "400", "--connections", "2", "--kills", "1")
    doubts = re.search(r"rows in doubt per kill: \[(\d+)\]", out)
    assert doubts and int(doubts.group(1)) <= 4, out


def test_wan_bench() -> None:
    out = run("wan_bench.py", "--connections", "2", "--per-connection", "6", "--delay", "0.005")
    assert "pipelined across messages" in out and "server without PIPELINING" in out, out


def test_memory_bench() -> None:
    out = run("memory_bench.py", "--readers", "300", "--cases", "sqlite-smtp")
    assert re.search(r"sqlite-smtp\s+300 readers: peak RSS", out), out


@pytest.mark.postgres
def test_scaleout_bench() -> None:
    from _store_fixtures import postgres_server

    server = postgres_server()
    out = run("scaleout_bench.py", "--readers", "300", "--processes", "1,2", "--postgres", server)
    assert out.count("duplicates 0, missed 0") == 2, out
