"""Sending what is due, once: what ``digest send --due`` runs from cron.

:func:`run_due` resumes interrupted sends, sends the issue of a slot within
its grace window, reports a missed slot once and warns once when a review
cutoff has passed. Each step is one function returning a :class:`Step`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from digest import clock
from digest.errors import DigestError, SendError
from digest.issue import issue_path, load_issue, save_issue
from digest.issue_status import issue_statuses
from digest.schedule.view import CheckFn, default_check
from digest.send.claims import RunClaims
from digest.send.owners import new_owner
from digest.slots import (
    duration_text,
    next_slot,
    previous_slot,
    review_cutoff,
    slot_date,
    slot_on,
    wall_clock,
)

if TYPE_CHECKING:
    from digest.issue import Issue
    from digest.store import Store
    from digest.workspace import Workspace

SendFn = Callable[..., Any]  # run_send(ws, issue, *, stop_event=...) -> report


@dataclass
class Step:
    """One thing a ``--due`` run did or refused, with its one-line message."""

    kind: str  # sent resumed joined interrupted busy already-sent missing not-ready
    #            failed-check missed cutoff error
    day: date
    message: str = ""
    failed: bool = False
    report: Any = None
    warnings: list[str] = field(default_factory=list)  # printed before the message


@dataclass
class DueOutcome:
    now: datetime
    steps: list[Step] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when something needs the operator (cron mails the output), else 0."""
        return 1 if any(step.failed for step in self.steps) else 0

    @property
    def lines(self) -> list[str]:
        return [line for step in self.steps for line in (*step.warnings, step.message) if line]

    @property
    def sent(self) -> list[date]:
        return [s.day for s in self.steps if s.kind in ("sent", "resumed")]


def run_due(
    ws: Workspace,
    *,
    send: SendFn | None = None,
    check: CheckFn | None = None,
    store: Store | None = None,
    stop_event: Any = None,
    owner: str | None = None,
) -> DueOutcome:
    """Send what is due now, once; what ``digest send --due`` runs from cron.

    In order: resume every issue left ``sending`` by an interrupted run; then
    look at the latest slot at or before now. Within its grace window its
    issue is sent when ``ready`` and passing ``check`` (missing, draft or
    failing: a failed step, so the run exits non-zero); past the window an
    unsent issue is reported once as missed and never sent. Last, a one-time
    warning when the next slot's review cutoff has passed and its issue is
    not ready. A send is claimed in the database first, so overlapping runs
    and other machines never start the same issue twice.
    """
    now = clock.now()
    outcome = DueOutcome(now)
    sched = ws.config.schedule
    statuses = issue_statuses(ws.issues_dir)
    db = RunClaims(ws, store)
    try:
        for day, current in sorted(statuses.items()):
            if current == "sending":
                outcome.steps.append(
                    _send(ws, db, day, now, send=send, stop_event=stop_event, owner=owner)
                )
        last = previous_slot(sched, now)
        day = slot_date(sched, last)
        status = statuses.get(day)
        late = now - last
        if status != "sending":
            if late <= timedelta(seconds=sched.grace_seconds):
                step = _due_step(ws, db, day, last, status, now, send, check, stop_event, owner)
            else:
                step = _missed_step(ws, db, day, last, status, now)
            if step is not None:
                outcome.steps.append(step)
        cutoff_step = _cutoff_step(ws, db, statuses, now, last)
        if cutoff_step is not None:
            outcome.steps.append(cutoff_step)
    finally:
        db.close()
    return outcome


def _due_step(
    ws: Workspace,
    db: RunClaims,
    day: date,
    slot: datetime,
    status: str | None,
    now: datetime,
    send: SendFn | None,
    check: CheckFn | None,
    stop_event: Any,
    owner: str | None,
) -> Step | None:
    sched = ws.config.schedule
    when = wall_clock(sched, slot)
    if status in ("sent", "skipped"):
        return None
    if db.state(day) == "sent":  # sent from another machine sharing the database
        return None
    if status is None:
        return Step(
            "missing",
            day,
            failed=True,
            message=f"{when} is due but there is no issue {issue_path(ws.issues_dir, day)}; "
            f"create it, or skip the week with `digest issue skip {day}`",
        )
    if status.startswith("broken: "):
        return Step("not-ready", day, status.removeprefix("broken: "), failed=True)
    if status != "ready":
        return Step(
            "not-ready",
            day,
            failed=True,
            message=f"issue {day} is due ({when}) but is {status}, not ready; "
            f"mark it ready with `digest issue ready {day}` (grace until "
            f"{wall_clock(sched, slot + timedelta(seconds=sched.grace_seconds))})",
        )
    issue = load_issue(issue_path(ws.issues_dir, day))
    check = check if check is not None else default_check
    try:
        problems = check(ws, issue)
    except DigestError as exc:
        problems = [str(exc)]
    if problems:
        more = (
            f" (and {len(problems) - 1} more; run `digest check {day}`)"
            if len(problems) > 1
            else ""
        )
        return Step(
            "failed-check",
            day,
            failed=True,
            message=f"issue {day} is due but fails its check, not sent: {problems[0]}{more}",
        )
    return _send(ws, db, day, now, send=send, stop_event=stop_event, owner=owner, slot=slot)


def _missed_step(
    ws: Workspace, db: RunClaims, day: date, slot: datetime, status: str | None, now: datetime
) -> Step | None:
    if status not in ("draft", "ready"):
        return None
    if not db.note_once(day, slot, "missed_at", now):
        return None
    sched = ws.config.schedule
    return Step(
        "missed",
        day,
        failed=True,
        message=f"missed the slot {wall_clock(sched, slot)} by "
        f"{duration_text((now - slot).total_seconds())} (grace {sched.grace}): issue {day} "
        f"({status}) was not sent; send it by hand with `digest send {day}`, "
        f"or `digest issue skip {day}`",
    )


def _cutoff_step(
    ws: Workspace, db: RunClaims, statuses: dict[date, str], now: datetime, last: datetime
) -> Step | None:
    sched = ws.config.schedule
    if not sched.review_cutoff:
        return None
    slot = next_slot(sched, now)
    if slot == last:
        return None  # due right now: the due step has spoken
    cutoff = review_cutoff(sched, slot)
    day = slot_date(sched, slot)
    status = statuses.get(day)
    if cutoff is None or now < cutoff or status in ("ready", "sending", "sent", "skipped"):
        return None
    if not db.note_once(day, slot, "cutoff_warned_at", now):
        return None
    what = "missing" if status is None else f"still {status.split(':')[0]}"
    return Step(
        "cutoff",
        day,
        message=f"warning: review cutoff {wall_clock(sched, cutoff)} has passed and issue {day} "
        f"is {what}; it goes out {wall_clock(sched, slot)} only if ready "
        f"(`digest issue ready {day}`)",
    )


def _send(
    ws: Workspace,
    db: RunClaims,
    day: date,
    now: datetime,
    *,
    send: SendFn | None,
    stop_event: Any,
    owner: str | None,
    slot: datetime | None = None,
) -> Step:
    sched = ws.config.schedule
    slot = slot or slot_on(sched, day)
    claim = db.claim(day, slot, now, owner or new_owner())
    if isinstance(claim, str):
        # "sent": another run finished it; else the owner of a live claim.
        return Step("already-sent" if claim == "sent" else "busy", day)
    issue = load_issue(issue_path(ws.issues_dir, day))
    resumed = issue.status == "sending" or claim.resumed
    # The interactive send's warning about the issue before, for cron's mail too.
    warnings = [w for w in (_bounce_warning(db.store, issue.slug),) if w]
    try:
        if issue.status == "ready":
            issue.status = "sending"  # an interruption stays visible, and is resumed
            save_issue(issue)
        sender = send if send is not None else default_send
        report = sender(ws, issue, stop_event=stop_event)
    except SendError as exc:
        claim.release(done=False)
        return Step(
            "error",
            day,
            failed=True,
            message=f"sending issue {day} stopped: {exc}; the next `digest send --due` resumes it",
            warnings=warnings,
        )
    except BaseException:
        claim.release(done=False)
        raise
    done = _finished(report)
    claim.release(done=done)
    refused = getattr(report, "unbound_warning", "")  # rows whose address is not the consented
    if refused:
        warnings.append(refused)
    fatal = getattr(report, "fatal", "")
    if claim.joined and not fatal and not getattr(report, "stopped", False):
        # Another run (on PostgreSQL, maybe another machine) started this send and
        # reports it; this one helped, quietly.
        return Step("joined", day, report=report)
    if fatal:
        return Step(
            "error",
            day,
            report=report,
            failed=True,
            message=f"sending issue {day} stopped: {fatal}; the next `digest send --due` "
            "resumes it",
            warnings=warnings,
        )
    if not done:
        return Step(
            "interrupted",
            day,
            report=report,
            message=f"issue {day}: sending paused ({_summary(report)}); "
            "the next `digest send --due` resumes it",
            warnings=warnings,
        )
    issue = load_issue(issue_path(ws.issues_dir, day))
    if issue.status != "sent":
        issue.status = "sent"
        save_issue(issue)
    return Step(
        "resumed" if resumed else "sent",
        day,
        report=report,
        message=f"{'resumed and ' if resumed else ''}sent issue {day}: {_summary(report)}",
        warnings=warnings,
    )


def _bounce_warning(store: Store, slug: str) -> str:
    """`digest send`'s warning when the issue before bounced or drew complaints too often."""
    from digest.bounces import send_warning  # deferred: only a run that sends needs it

    return send_warning(store, slug)


def _finished(report: Any) -> bool:
    """Whether a send report says the issue is completely sent."""
    for name in ("complete", "finished", "done"):
        value = getattr(report, name, None)
        if value is not None:
            return bool(value() if callable(value) else value)
    return True


def _summary(report: Any) -> str:
    counts = getattr(report, "counts", None)
    if isinstance(counts, dict):
        shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "nothing to send"
        return f"{shown} (audience {getattr(report, 'audience', '?')})"
    for name in ("summary", "describe"):
        value = getattr(report, name, None)
        if value is not None:
            return str(value() if callable(value) else value)
    return str(report)


def default_send(ws: Workspace, issue: Issue, *, stop_event: Any = None) -> Any:
    """The send engine: freeze the audience, deliver, resume where a run stopped."""
    from digest.send.engine import run_send  # deferred: the engine loads the store and render

    return run_send(ws, issue, stop_event=stop_event)
