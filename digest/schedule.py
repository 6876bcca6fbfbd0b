"""The weekly slot: when the next issue is due, in the configured time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from digest.config import Schedule


def slot_on(schedule: Schedule, day: date) -> datetime:
    """The send time on ``day`` as an aware UTC instant.

    A local time that a DST change skips (02:30 on a spring-forward night)
    is taken as the same wall-clock time after the change; one that happens
    twice is taken at its first occurrence.
    """
    local = datetime.combine(day, schedule.clock_time, tzinfo=schedule.zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(schedule.zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        # Skipped by DST: the wall clock jumped over it; send at the first moment after.
        instant = local.replace(fold=1).astimezone(UTC)
    return instant


def next_slot(schedule: Schedule, now: datetime) -> datetime:
    """The first slot at or after ``now`` (UTC)."""
    today = now.astimezone(schedule.zone).date()
    ahead = (schedule.weekday_index - today.weekday()) % 7
    day = today + timedelta(days=ahead)
    slot = slot_on(schedule, day)
    if slot < now:
        slot = slot_on(schedule, day + timedelta(days=7))
    return slot


def next_issue_date(schedule: Schedule, now: datetime) -> date:
    """The local date of the next slot: the default date of a new issue."""
    return next_slot(schedule, now).astimezone(schedule.zone).date()
