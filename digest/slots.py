"""Slot arithmetic: when the weekly issue is due, in the schedule's time zone.

Slots are wall-clock times in ``[schedule] timezone``, turned into UTC
instants one date at a time, so a DST change moves nothing the reader sees:
07:00 in Berlin stays 07:00 in winter and summer. Two edge cases follow
java.time and dateutil: a local time that a spring-forward skips (02:30 on
the night the clock jumps 02:00 -> 03:00) is shifted later by the length of
the gap (03:30), and a time that a fall-back repeats is taken at its first
occurrence.

The issue a slot sends is the one dated on the slot's local date
(``issues/2026-12-04.yaml`` for Friday 2026-12-04). A leaf module: it reads
only the ``[schedule]`` settings.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from digest.config import WEEKDAYS, Schedule


def local_instant(schedule: Schedule, day: date, at: time) -> datetime:
    """``day`` at wall-clock ``at`` in the schedule's zone, as an aware UTC instant."""
    zone = schedule.zone
    wall = datetime.combine(day, at)
    # fold=0 (PEP 495) gives the first of two readings of a repeated time, and for a
    # time inside a spring-forward gap applies the offset in force before the gap,
    # which lands the instant the length of the gap later: exactly the rule above.
    return wall.replace(tzinfo=zone).astimezone(UTC)


def slot_on(schedule: Schedule, day: date) -> datetime:
    """The send time on ``day`` as an aware UTC instant."""
    return local_instant(schedule, day, schedule.clock_time)


def _slot_day_on_or_before(schedule: Schedule, day: date) -> date:
    return day - timedelta(days=(day.weekday() - schedule.weekday_index) % 7)


def next_slot(schedule: Schedule, now: datetime) -> datetime:
    """The first slot at or after ``now`` (UTC)."""
    today = now.astimezone(schedule.zone).date()
    day = today + timedelta(days=(schedule.weekday_index - today.weekday()) % 7)
    slot = slot_on(schedule, day)
    if slot < now:
        slot = slot_on(schedule, day + timedelta(days=7))
    return slot


def previous_slot(schedule: Schedule, now: datetime) -> datetime:
    """The last slot at or before ``now`` (UTC)."""
    day = _slot_day_on_or_before(schedule, now.astimezone(schedule.zone).date())
    slot = slot_on(schedule, day)
    if slot > now:
        slot = slot_on(schedule, day - timedelta(days=7))
    return slot


def slot_date(schedule: Schedule, slot: datetime) -> date:
    """The local date of a slot: the date of the issue it sends."""
    return slot.astimezone(schedule.zone).date()


def next_issue_date(schedule: Schedule, now: datetime) -> date:
    """The local date of the next slot: the default date of a new issue."""
    return slot_date(schedule, next_slot(schedule, now))


def review_cutoff(schedule: Schedule, slot: datetime) -> datetime | None:
    """The configured review cutoff before ``slot`` (the latest one at or before it)."""
    text = schedule.review_cutoff.strip().lower()
    if not text:
        return None
    match = re.fullmatch(r"(\w+)\s+(\d{1,2}):(\d{2})", text)
    if not match:  # pragma: no cover - config.load validates the form
        return None
    weekday = WEEKDAYS.index(match.group(1))
    at = time(int(match.group(2)), int(match.group(3)))
    day = slot_date(schedule, slot)
    day -= timedelta(days=(day.weekday() - weekday) % 7)
    cutoff = local_instant(schedule, day, at)
    if cutoff > slot:
        cutoff = local_instant(schedule, day - timedelta(days=7), at)
    return cutoff


def wall_clock(schedule: Schedule, instant: datetime) -> str:
    """``Friday 2026-12-04 07:00 CET`` in the schedule's zone."""
    local = instant.astimezone(schedule.zone)
    return f"{local:%A %Y-%m-%d %H:%M} {local.tzname()}"


def duration_text(seconds: float) -> str:
    """``2d 3h``, ``5h 10m``, ``4m``: a rough, readable span, to the nearest minute."""
    minutes = round(abs(seconds) / 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    if not days:
        parts.append(f"{mins}m")
    return " ".join(parts[:2])


def ahead_of_slot(schedule: Schedule, day: date, now: datetime) -> str:
    """``slot Fri 4 Dec 07:00 Europe/Moscow, in 1d 12h`` when the issue dated ``day`` is
    sent before its slot; empty when the slot has come."""
    slot = slot_on(schedule, day)
    if slot <= now:
        return ""
    local = slot.astimezone(schedule.zone)
    when = f"{local:%a} {local.day} {local:%b %H:%M}"
    return f"slot {when} {schedule.timezone}, in {duration_text((slot - now).total_seconds())}"
