"""The one clock: a rehearsal's time runs forward; a test may freeze it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import NOW

from digest import clock
from digest.errors import ConfigError

START = datetime(2027, 3, 26, 7, 5, tzinfo=UTC)


def _pause(seconds: float) -> None:
    threading.Event().wait(seconds)  # works under libfaketime, as time.sleep may not


def test_the_suite_runs_at_its_own_fixed_moment() -> None:
    # Whatever the day the suite runs, "now" starts at the fixture's instant.
    assert NOW <= clock.now() < NOW + timedelta(minutes=30)
    assert clock.pinned() is not None


def test_a_frozen_clock_stays_put() -> None:
    clock.set_now(START)
    _pause(0.05)
    assert clock.now() == START == clock.pinned()


def test_a_rehearsal_clock_runs_forward_from_its_instant() -> None:
    clock.set_now(START, running=True)
    first = clock.now()
    _pause(0.05)
    second = clock.now()
    assert START <= first < second < START + timedelta(seconds=5)
    assert second - first >= timedelta(seconds=0.04)


def test_digest_now_in_the_environment_runs_forward_too(monkeypatch: pytest.MonkeyPatch) -> None:
    clock.set_now(None)
    monkeypatch.setenv("DIGEST_NOW", "2027-03-26T08:05:00+01:00")
    first = clock.now()
    _pause(0.05)
    second = clock.now()
    assert START <= first < second < START + timedelta(seconds=5)
    assert first.tzinfo is UTC


def test_without_a_pin_the_clock_is_real(monkeypatch: pytest.MonkeyPatch) -> None:
    clock.set_now(None)
    monkeypatch.delenv("DIGEST_NOW")
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)
    assert clock.pinned() is None


def test_a_bad_instant_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match="write e.g. 2026-12-04T07:00:00"):
        clock.parse_instant("next friday")
