"""SpamAssassin (Debian's `spamassassin -L -t`, local rules) scores the demo's mail at most 0.1."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from _email_fixtures import CONFIRM_URL

from digest import confirmation
from digest.message import parts_to_mime
from digest.workspace import Workspace

MAX_SCORE = 0.1


def spamassassin() -> str:
    path = shutil.which("spamassassin")
    if path is None:
        from conftest import on_ci

        if on_ci():
            pytest.fail("spamassassin is missing on CI (.ci/run installs Debian's package)")
        pytest.skip("no spamassassin (apt-get install spamassassin)")
    return path


def score(raw: bytes) -> tuple[float, list[str]]:
    """The score and the rules that fired, with local tests only (no network)."""
    report = subprocess.run(
        [spamassassin(), "-L", "-t"], input=raw, capture_output=True, timeout=120, check=True
    ).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.M)
    assert status, report[:2000]
    fired = re.findall(r"^\s*(-?\d+\.\d+) ([A-Z0-9_]+)\s", report, re.M)
    return float(status.group(1)), [f"{points} {name}" for points, name in fired]


def test_the_demo_issue_scores_at_most_a_tenth(demo_ws: Workspace) -> None:
    spamassassin()
    messages = sorted((demo_ws.outbox_dir).glob("*/*.eml"))
    assert len(messages) == 9
    # Two readers: one with a plain name, one with accents (an encoded To).
    for path in (messages[0], messages[-1]):
        points, fired = score(path.read_bytes())
        assert points <= MAX_SCORE, f"{path.name}: {points} points: {fired}"


def test_the_confirmation_email_scores_at_most_a_tenth(demo_ws: Workspace) -> None:
    spamassassin()
    parts = confirmation.build(demo_ws, "reader@example.com", "Zoë Müller", CONFIRM_URL)
    points, fired = score(parts_to_mime(parts))
    assert points <= MAX_SCORE, f"{points} points: {fired}"
