"""The weekly slot: DST in three kinds of zone, config changes, skip weeks, the
review cutoff, and what `digest schedule` (and its cron/systemd recipes) shows."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Cli
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import slots as slot_math
from digest.config import Schedule
from digest.issue import load_issue, save_issue
from digest.workspace import Workspace


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fridays(sched: Schedule, start: date, weeks: int) -> list[datetime]:
    slots, now = [], datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    for _ in range(weeks):
        slot = slot_math.next_slot(sched, now)
        slots.append(slot)
        now = slot + timedelta(seconds=1)
    return slots


# -- slots across DST -------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "winter_utc", "summer_utc"),
    [("Europe/Berlin", 6, 5), ("America/New_York", 12, 11), ("Asia/Tokyo", 22, 22)],
)
def test_friday_seven_local_all_year(zone: str, winter_utc: int, summer_utc: int) -> None:
    sched = Schedule(timezone=zone)
    slots = fridays(sched, date(2026, 1, 1), 53)
    for slot in slots:
        local = slot.astimezone(ZoneInfo(zone))
        assert (local.strftime("%A"), local.hour, local.minute) == ("Friday", 7, 0)
    hours = {s.astimezone(UTC).hour for s in slots}
    assert hours == {winter_utc, summer_utc}
    # consecutive slots are a week apart, give or take the DST hour
    gaps = {(b - a) for a, b in zip(slots, slots[1:], strict=False)}
    expected = (
        {timedelta(days=7)}
        if zone == "Asia/Tokyo"
        else {timedelta(days=7), timedelta(days=7, hours=-1), timedelta(days=7, hours=1)}
    )
    assert gaps == expected


def test_tokyo_slot_is_thursday_in_utc_but_the_issue_is_fridays() -> None:
    sched = Schedule(timezone="Asia/Tokyo")
    slot = slot_math.next_slot(sched, utc("2026-12-01T00:00:00"))
    assert slot == utc("2026-12-03T22:00:00")
    assert slot_math.slot_date(sched, slot) == date(2026, 12, 4)


def test_berlin_slots_either_side_of_the_spring_and_autumn_changes() -> None:
    sched = Schedule(timezone="Europe/Berlin")
    # clocks go forward Sunday 2026-03-29, back Sunday 2026-10-25
    assert slot_math.next_slot(sched, utc("2026-03-21T00:00:00")) == utc("2026-03-27T06:00:00")
    assert slot_math.next_slot(sched, utc("2026-03-28T00:00:00")) == utc("2026-04-03T05:00:00")
    assert slot_math.next_slot(sched, utc("2026-10-24T00:00:00")) == utc("2026-10-30T06:00:00")


def test_new_york_slots_either_side_of_the_changes() -> None:
    sched = Schedule(timezone="America/New_York")
    # forward Sunday 2026-03-08, back Sunday 2026-11-01
    assert slot_math.next_slot(sched, utc("2026-03-01T00:00:00")) == utc("2026-03-06T12:00:00")
    assert slot_math.next_slot(sched, utc("2026-03-07T00:00:00")) == utc("2026-03-13T11:00:00")
    assert slot_math.next_slot(sched, utc("2026-10-31T00:00:00")) == utc("2026-11-06T12:00:00")


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # 02:30 does not exist: shifted by the gap, to 03:30 summer time
        ("Europe/Berlin", date(2026, 3, 29), "2026-03-29T01:30:00"),
        ("America/New_York", date(2026, 3, 8), "2026-03-08T07:30:00"),
    ],
)
def test_a_skipped_local_time_moves_later_by_the_gap(zone: str, day: date, expected: str) -> None:
    sched = Schedule(timezone=zone, weekday="sunday", time="02:30")
    slot = slot_math.slot_on(sched, day)
    assert slot == utc(expected)
    assert slot.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "03:30"


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected"),
    [
        # 02:30 happens twice: the first one (still summer time) is the slot
        ("Europe/Berlin", date(2026, 10, 25), "02:30", "2026-10-25T00:30:00"),
        ("America/New_York", date(2026, 11, 1), "01:30", "2026-11-01T05:30:00"),
    ],
)
def test_a_repeated_local_time_is_taken_first(zone: str, day: date, at: str, expected: str) -> None:
    sched = Schedule(timezone=zone, weekday="sunday", time=at)
    assert slot_math.slot_on(sched, day) == utc(expected)
    # and only once: the next slot after it is a week later
    assert slot_math.next_slot(sched, utc(expected) + timedelta(seconds=1)) > utc(expected) + (
        timedelta(days=6)
    )


def test_a_friday_that_is_a_dst_day() -> None:
    # Israel moves its clocks forward on the Friday before the last Sunday of March.
    sched = Schedule(timezone="Asia/Jerusalem")
    assert slot_math.slot_on(sched, date(2026, 3, 20)) == utc("2026-03-20T05:00:00")  # +02
    assert slot_math.slot_on(sched, date(2026, 3, 27)) == utc("2026-03-27T04:00:00")  # +03
    early = Schedule(timezone="Asia/Jerusalem", time="02:30")  # inside that Friday's gap
    slot = slot_math.next_slot(early, utc("2026-03-26T12:00:00"))
    assert slot == utc("2026-03-27T00:30:00")
    assert slot.astimezone(early.zone).strftime("%a %H:%M") == "Fri 03:30"
    # Jordan fell back on Friday 2021-10-29 at 01:00: 00:30 came twice; the first counts.
    amman = Schedule(timezone="Asia/Amman", time="00:30")
    assert slot_math.slot_on(amman, date(2021, 10, 29)) == utc("2021-10-28T21:30:00")


ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Asia/Jerusalem", "Australia/Sydney"]


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    weekday=st.sampled_from(["monday", "friday", "sunday"]),
    at=st.sampled_from(["00:30", "02:30", "07:00", "23:59"]),
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
)
def test_previous_and_next_slot_bracket_now(
    zone: str, weekday: str, at: str, now: datetime
) -> None:
    sched = Schedule(timezone=zone, weekday=weekday, time=at)
    now = now.replace(tzinfo=UTC)
    before, after = slot_math.previous_slot(sched, now), slot_math.next_slot(sched, now)
    assert before <= now <= after
    assert timedelta(days=7) - timedelta(hours=1) <= after - before <= timedelta(
        days=7, hours=1
    ) or (before == after == now)
    assert slot_math.slot_date(sched, after).strftime("%A").lower() == weekday
    assert slot_math.next_slot(sched, after) == after  # a slot is "at or after" itself


# -- review cutoff ------------------------------------------------------------------


def test_review_cutoff_is_the_last_one_before_the_slot() -> None:
    sched = Schedule(timezone="Europe/Berlin", review_cutoff="thursday 18:00")
    slot = slot_math.slot_on(sched, date(2026, 12, 4))
    assert slot_math.review_cutoff(sched, slot) == utc("2026-12-03T17:00:00")
    same_day = Schedule(timezone="Europe/Berlin", review_cutoff="Friday 06:00")
    assert slot_math.review_cutoff(same_day, slot) == utc("2026-12-04T05:00:00")
    assert slot_math.review_cutoff(Schedule(), slot) is None


# -- digest schedule -----------------------------------------------------------------


def configure(ws: Workspace, **values: str) -> None:
    path = ws.root / "digest.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, count = re.subn(rf"^{key} = .*$", f'{key} = "{value}"', text, count=1, flags=re.M)
        assert count == 1, key
    path.write_text(text, encoding="utf-8")


def make_issue(
    cli: Cli, ws: Workspace, day: str, status: str = "draft", subject: str = "Hi"
) -> Path:
    assert cli("issue", "new", "--date", day, "--force").exit_code == 0
    path = ws.issues_dir / f"{day}.yaml"
    issue = load_issue(path)
    issue.status, issue.subject = status, subject
    save_issue(issue)
    return path


def show(cli: Cli, now: str) -> dict:
    result = cli("--now", now, "schedule", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_schedule_shows_slot_in_zone_and_utc_and_warns_of_a_missing_issue(
    cli: Cli, workspace: Workspace
) -> None:
    configure(workspace, timezone="Europe/Berlin")
    data = show(cli, "2026-12-01T10:00:00Z")
    assert data["slot"]["local"] == "2026-12-04T07:00:00+01:00"
    assert data["slot"]["utc"] == "2026-12-04T06:00:00Z"
    assert data["issue"] == {
        "date": "2026-12-04",
        "path": str(workspace.issues_dir / "2026-12-04.yaml"),
        "exists": False,
        "status": None,
        "subject": "",
        "articles": 0,
    }
    assert data["audience"] == 0
    assert any("no issue for Friday 2026-12-04 07:00 CET" in w for w in data["warnings"])
    text = cli("--now", "2026-12-01T10:00:00Z", "schedule").output
    assert "Friday 2026-12-04 07:00 CET (Europe/Berlin)" in text
    assert "Friday 2026-12-04 06:00 UTC" in text
    assert "warning: no issue" in text


def test_schedule_warns_of_a_draft_and_follows_config_changes(
    cli: Cli, workspace: Workspace
) -> None:
    make_issue(cli, workspace, "2026-12-04")
    data = show(cli, "2026-12-01T10:00:00Z")
    assert data["issue"]["status"] == "draft"
    assert any("still a draft" in w for w in data["warnings"])
    configure(workspace, weekday="thursday", time="09:30", timezone="America/New_York")
    data = show(cli, "2026-12-01T10:00:00Z")
    assert data["slot"]["local"] == "2026-12-03T09:30:00-05:00"
    assert data["issue"]["date"] == "2026-12-03" and data["issue"]["exists"] is False


def test_skipped_weeks_are_passed_over(cli: Cli, workspace: Workspace) -> None:
    assert cli("issue", "skip", "2026-12-04").exit_code == 0
    assert cli("issue", "skip", "2026-12-11").exit_code == 0
    make_issue(cli, workspace, "2026-12-18", "ready")
    data = show(cli, "2026-12-01T10:00:00Z")
    assert data["skipped"] == ["2026-12-04", "2026-12-11"]
    assert data["issue"]["date"] == "2026-12-18" and data["issue"]["status"] == "ready"
    assert data["slot"]["utc"] == "2026-12-18T07:00:00Z"


def test_cutoff_warning_only_once_it_has_passed(cli: Cli, workspace: Workspace) -> None:
    configure(workspace, review_cutoff="thursday 18:00")
    make_issue(cli, workspace, "2026-12-04")
    before = show(cli, "2026-12-03T17:59:00Z")
    assert before["review_cutoff"] == "2026-12-03T18:00:00+00:00"
    assert not any("cutoff" in w for w in before["warnings"])
    after = show(cli, "2026-12-03T18:00:00Z")
    assert any(
        "review cutoff (Thursday 2026-12-03 18:00 UTC) has passed" in w for w in after["warnings"]
    )


def test_due_now_within_grace_and_missed_after(cli: Cli, workspace: Workspace) -> None:
    make_issue(cli, workspace, "2026-12-04", "draft")
    due = show(cli, "2026-12-04T09:00:00Z")
    assert due["slot"]["due_now"] is True and due["issue"]["date"] == "2026-12-04"
    late = show(cli, "2026-12-04T13:01:00Z")
    assert late["slot"]["due_now"] is False and late["issue"]["date"] == "2026-12-11"
    assert any("2026-12-04" in w and "missed" in w for w in late["warnings"])


def test_cron_and_systemd_recipes_name_absolute_paths_and_secrets(
    cli: Cli, workspace: Workspace
) -> None:
    text = workspace.config_path.read_text(encoding="utf-8")
    text = text.replace('kind = "outbox"', 'kind = "smtp"', 1)
    text = re.sub(r'^password_env = ""', 'password_env = "NEWS_SMTP_PASSWORD"', text, flags=re.M)
    workspace.config_path.write_text(text, encoding="utf-8")
    cron = cli("schedule", "cron").output
    entry = [line for line in cron.splitlines() if not line.startswith("#")]
    assert len(entry) == 1
    fields = entry[0].split()
    assert fields[:5] == ["*/5", "*", "*", "*", "*"]
    assert Path(fields[5]).is_absolute() and fields[-4:] == [
        "-C",
        str(workspace.root),
        "send",
        "--due",
    ]
    assert "NEWS_SMTP_PASSWORD" in cron and "DIGEST_SECRET_KEY" in cron
    units = cli("schedule", "systemd", "--every", "1").output
    assert "# --- /etc/systemd/system/digest-the-weekly-brief.service ---" in units
    assert "# --- /etc/systemd/system/digest-the-weekly-brief.timer ---" in units
    assert f"WorkingDirectory={workspace.root}\n" in units
    assert re.search(
        rf"ExecStart=/\S+ -m digest -C {re.escape(str(workspace.root))} send --due", units
    )
    assert "OnCalendar=*-*-* *:*:00" in units and "NEWS_SMTP_PASSWORD" in units
    assert "=secret" not in units.lower()


def test_after_an_early_manual_send_the_schedule_looks_ahead(
    cli: Cli, workspace: Workspace
) -> None:
    """The 12-11 issue went out by hand on Wednesday: its Friday slot has nothing left to
    send, so `digest schedule` shows the next slot and its draft, and says what went early."""
    make_issue(cli, workspace, "2026-12-11", "sent", subject="Sent by hand")
    make_issue(cli, workspace, "2026-12-18", "draft", subject="Next week")
    data = show(cli, "2026-12-09T10:00:00Z")
    assert data["issue"]["date"] == "2026-12-18" and data["issue"]["status"] == "draft"
    assert data["slot"]["utc"] == "2026-12-18T07:00:00Z"
    assert data["sent_early"] == ["2026-12-11"]
    assert any("2026-12-18 is still a draft" in w for w in data["warnings"])
    text = cli("--now", "2026-12-09T10:00:00Z", "schedule").output
    assert "Issue:      2026-12-18  draft" in text
    assert "Sent early: 2026-12-11" in text
    assert "2026-12-11  sent" not in text
    # A skipped week on the way is passed over too, and listed as skipped.
    assert cli("issue", "skip", "2026-12-18").exit_code == 0
    make_issue(cli, workspace, "2026-12-25", "ready")
    data = show(cli, "2026-12-09T10:00:00Z")
    assert (data["sent_early"], data["skipped"]) == (["2026-12-11"], ["2026-12-18"])
    assert data["issue"]["date"] == "2026-12-25"
