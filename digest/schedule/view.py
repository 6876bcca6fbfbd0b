"""What ``digest schedule`` shows: the slot that matters now and its issue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.config import Schedule
from digest.errors import DigestError
from digest.issue import issue_path, load_issue
from digest.issue_status import is_due, issue_statuses
from digest.slots import (
    duration_text,
    next_slot,
    previous_slot,
    review_cutoff,
    slot_date,
    wall_clock,
)

if TYPE_CHECKING:
    from digest.issue import Issue
    from digest.workspace import Workspace

# What a slot's issue must pass before it goes: the error lines of `digest check`.
CheckFn = Callable[["Workspace", "Issue"], list[str]]


@dataclass(frozen=True)
class SlotView:
    """What ``digest schedule`` shows: the slot that matters now and its issue."""

    slot: datetime
    due_now: bool  # the slot has passed and is within its grace window, unsent
    issue_date: date
    issue_path: Path
    status: str | None  # None: no issue file
    subject: str
    articles: int
    cutoff: datetime | None
    skipped: list[date]
    warnings: list[str]
    audience: int | None = None

    def to_dict(self, schedule: Schedule) -> dict[str, Any]:
        local = self.slot.astimezone(schedule.zone)
        return {
            "slot": {
                "local": local.isoformat(),
                "utc": self.slot.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "timezone": schedule.timezone,
                "weekday": schedule.weekday,
                "time": schedule.time,
                "due_now": self.due_now,
            },
            "issue": {
                "date": self.issue_date.isoformat(),
                "path": str(self.issue_path),
                "exists": self.status is not None,
                "status": self.status,
                "subject": self.subject,
                "articles": self.articles,
            },
            "audience": self.audience,
            "grace": schedule.grace,
            "review_cutoff": (
                self.cutoff.astimezone(schedule.zone).isoformat() if self.cutoff else None
            ),
            "skipped": [d.isoformat() for d in self.skipped],
            "warnings": self.warnings,
        }


def upcoming(
    ws: Workspace,
    now: datetime,
    *,
    check: CheckFn | None = None,
    audience: Callable[[], int] | None = None,
) -> SlotView:
    """The slot that matters at ``now``: one due within grace, else the next unskipped one."""
    sched = ws.config.schedule
    statuses = issue_statuses(ws.issues_dir)
    warnings: list[str] = []
    slot, due_now, skipped = _slot_that_matters(sched, statuses, now, warnings)
    day = slot_date(sched, slot)
    path = issue_path(ws.issues_dir, day)
    status = statuses.get(day)
    cutoff = review_cutoff(sched, slot)
    subject, articles = "", 0
    if status is None:
        warnings.append(
            f"no issue for {wall_clock(sched, slot)}: create it with "
            f"`digest issue new --date {day}` or skip the week with `digest issue skip {day}`"
        )
    elif status.startswith("broken: "):
        warnings.append(status.removeprefix("broken: "))
    else:
        issue = load_issue(path)
        subject, articles = issue.subject, len(issue.articles)
        warnings += _issue_warnings(ws, issue, day, status, now, cutoff, check)
    return SlotView(
        slot=slot,
        due_now=due_now,
        issue_date=day,
        issue_path=path,
        status=status,
        subject=subject,
        articles=articles,
        cutoff=cutoff,
        skipped=skipped,
        warnings=warnings,
        audience=_count(audience, warnings),
    )


def _slot_that_matters(
    sched: Schedule, statuses: dict[date, str], now: datetime, warnings: list[str]
) -> tuple[datetime, bool, list[date]]:
    """``(slot, due now, skipped dates)``; a missed slot adds its warning."""
    last = previous_slot(sched, now)
    last_day = slot_date(sched, last)
    grace = timedelta(seconds=sched.grace_seconds)
    if now - last <= grace and is_due(statuses.get(last_day)):
        return last, True, []
    skipped: list[date] = []
    slot = next_slot(sched, now + timedelta(microseconds=1) if last == now else now)
    for _ in range(104):  # two years of skipped weeks is surely a mistake
        if statuses.get(slot_date(sched, slot)) != "skipped":
            break
        skipped.append(slot_date(sched, slot))
        slot = next_slot(sched, slot + timedelta(minutes=1))
    if statuses.get(last_day) in ("draft", "ready") and now - last > grace:
        warnings.append(
            f"the slot of {wall_clock(sched, last)} was missed (grace {sched.grace}): "
            f"issue {last_day} is still {statuses[last_day]}; send it by hand with "
            f"`digest send {last_day}` or mark it `digest issue skip {last_day}`"
        )
    return slot, False, skipped


def _issue_warnings(
    ws: Workspace,
    issue: Issue,
    day: date,
    status: str,
    now: datetime,
    cutoff: datetime | None,
    check: CheckFn | None,
) -> list[str]:
    """A draft's reminder and the first `digest check` error of an unsent issue."""
    sched = ws.config.schedule
    warnings = []
    if status == "draft":
        when = (
            f"the review cutoff ({wall_clock(sched, cutoff)}) has passed"
            if cutoff is not None and now >= cutoff
            else "it will not be sent unless it is ready"
        )
        warnings.append(
            f"issue {day} is still a draft: {when}; mark it ready with `digest issue ready {day}`"
        )
    if status in ("draft", "ready") and check is not None:
        try:
            problems = check(ws, issue)
        except DigestError as exc:
            problems = [str(exc)]
        if problems:
            warnings.append(
                f"issue {day} fails `digest check`: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
    return warnings


def _count(audience: Callable[[], int] | None, warnings: list[str]) -> int | None:
    if audience is None:
        return None
    try:
        return audience()
    except DigestError as exc:
        warnings.append(f"audience unknown: {exc}")
        return None


def format_view(view: SlotView, schedule: Schedule, now: datetime) -> str:
    """The human text of ``digest schedule``."""
    until = view.slot - now
    when = (
        f"due now ({duration_text(until.total_seconds())} late, grace {schedule.grace})"
        if view.due_now
        else f"in {duration_text(until.total_seconds())}"
    )
    utc = view.slot.astimezone(UTC)
    lines = [
        f"Next slot:  {wall_clock(schedule, view.slot)} ({schedule.timezone}), {when}",
        f"            {utc:%A %Y-%m-%d %H:%M} UTC",
    ]
    if view.status is None:
        lines.append(f"Issue:      {view.issue_date}: missing ({view.issue_path})")
    else:
        lines.append(
            f"Issue:      {view.issue_date}  {view.status.split(':')[0]}  "
            f"{view.articles} article{'s' * (view.articles != 1)}  "
            f"{view.subject or '(no subject)'}"
        )
    if view.audience is not None:
        lines.append(f"Audience:   {view.audience} subscriber{'s' * (view.audience != 1)}")
    if view.cutoff is not None:
        lines.append(f"Cutoff:     {wall_clock(schedule, view.cutoff)} (review_cutoff)")
    if view.skipped:
        lines.append(f"Skipped:    {', '.join(d.isoformat() for d in view.skipped)}")
    for warning in view.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def current_audience(ws: Workspace) -> int:
    """How many subscribers a send would go to now (confirmed, not suppressed)."""
    from digest.people.audience import audience_count  # deferred, as above
    from digest.store import open_store  # deferred: SQLAlchemy, only when a count is asked for

    with open_store(ws) as store:
        return audience_count(store)


def default_check(ws: Workspace, issue: Issue) -> list[str]:
    """The errors `digest check` finds in ``issue`` (warnings do not stop a send)."""
    from digest.check import check_issue  # deferred: render, premailer and lxml are heavy

    return [f"{f.code}: {f.message}" for f in check_issue(ws, issue).errors]
