"""The foreground scheduler: ``digest scheduler`` runs :func:`run_due`, then sleeps."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from digest import clock
from digest.errors import DigestError
from digest.issue_status import is_due, issue_statuses
from digest.schedule.due import DueOutcome, SendFn, Step, run_due
from digest.schedule.view import CheckFn
from digest.slots import (
    duration_text,
    next_slot,
    previous_slot,
    review_cutoff,
    slot_date,
    wall_clock,
)

if TYPE_CHECKING:
    from digest.workspace import Workspace

RETRY_SECONDS = 60.0  # how soon to look again while something is due or in flight
MAX_SLEEP_SECONDS = 900.0  # wake at least this often to notice edited config and issues


def wake_after(ws: Workspace, outcome: DueOutcome) -> float:
    """Seconds the scheduler may sleep after ``outcome``: until the next slot, or soon."""
    sched = ws.config.schedule
    now = outcome.now
    if any(
        s.kind in ("busy", "interrupted", "error", "not-ready", "missing", "failed-check")
        for s in outcome.steps
    ):
        return RETRY_SECONDS
    statuses = issue_statuses(ws.issues_dir)
    if "sending" in statuses.values():
        return RETRY_SECONDS
    last = previous_slot(sched, now)
    if now - last <= timedelta(seconds=sched.grace_seconds) and is_due(
        statuses.get(slot_date(sched, last))
    ):
        return RETRY_SECONDS
    nxt = next_slot(sched, now + timedelta(microseconds=1))
    wake = [nxt]
    cutoff = review_cutoff(sched, nxt)
    if cutoff is not None and cutoff > now:
        wake.append(cutoff)
    seconds = (min(wake) - now).total_seconds()
    return max(0.5, min(seconds, MAX_SLEEP_SECONDS))


def run_scheduler(
    ws: Workspace,
    stop_event: Any,
    *,
    send: SendFn | None = None,
    check: CheckFn | None = None,
) -> None:
    """``digest scheduler``: run :func:`run_due`, sleep until the next thing, until stopped.

    ``stop_event`` (a threading.Event) is set by SIGTERM: a send in progress
    stops between messages and is resumed by the next run.
    """
    log = logging.getLogger("digest.scheduler")
    sched = ws.config.schedule
    log.info(
        "scheduler started for %s: %s %s %s, grace %s",
        ws.root,
        sched.weekday,
        sched.time,
        sched.timezone,
        sched.grace,
    )
    while not stop_event.is_set():
        try:
            ws = ws.reload()
            outcome = run_due(ws, send=send, check=check, stop_event=stop_event)
        except DigestError as exc:
            log.error("%s", exc)
            outcome = DueOutcome(clock.now(), [Step("error", date.min, str(exc), failed=True)])
        for step in outcome.steps:
            if step.message:
                (log.error if step.failed else log.info)("%s", step.message)
            elif step.kind == "busy":
                log.info("issue %s is being sent by another process; looking again soon", step.day)
        delay = wake_after(ws, outcome)
        if delay > RETRY_SECONDS or outcome.sent:
            nxt = next_slot(ws.config.schedule, outcome.now + timedelta(microseconds=1))
            log.info(
                "next slot %s; sleeping %s",
                wall_clock(ws.config.schedule, nxt),
                duration_text(delay) if delay >= 60 else f"{delay:.0f}s",
            )
        stop_event.wait(delay)
    log.info("scheduler stopped")
