"""The weekly slot: when an issue is due, which one, and sending it exactly once.

Slots are wall-clock times in ``[schedule] timezone``, turned into UTC
instants one date at a time, so a DST change moves nothing the reader sees:
07:00 in Berlin stays 07:00 in winter and summer. Two edge cases follow
java.time and dateutil: a local time that a spring-forward skips (02:30 on
the night the clock jumps 02:00 -> 03:00) is shifted later by the length of
the gap (03:30), and a time that a fall-back repeats is taken at its first
occurrence.

The issue a slot sends is the one dated on the slot's local date
(``issues/2026-12-04.yaml`` for Friday 2026-12-04). :func:`run_due` is what
``digest send --due`` and ``digest scheduler`` call; see its docstring.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.config import WEEKDAYS, Schedule

if TYPE_CHECKING:
    from digest.issue import Issue
    from digest.store import Store
    from digest.workspace import Workspace

# What a slot's issue must pass before it goes: the error lines of `digest check`.
CheckFn = Callable[["Workspace", "Issue"], list[str]]


# -- slots -------------------------------------------------------------------


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


def describe(schedule: Schedule, instant: datetime) -> str:
    """``Friday 2026-12-04 07:00 CET`` in the schedule's zone."""
    local = instant.astimezone(schedule.zone)
    return f"{local:%A %Y-%m-%d %H:%M} {local.tzname()}"


def duration_text(seconds: float) -> str:
    """``2d 3h``, ``5h 10m``, ``4m``: a rough, readable span."""
    minutes = int(abs(seconds) // 60)
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


# -- issue statuses, cheaply --------------------------------------------------

_status_cache: dict[Path, tuple[tuple[int, int], str]] = {}


def issue_statuses(issues_dir: Path) -> dict[date, str]:
    """Each issue file's status, re-read only when the file changed.

    ``digest send --due`` runs every few minutes; a run that finds nothing due
    should cost a directory listing and a stat per file, not a YAML parse.
    A file that does not load has the status ``"broken: <message>"``.
    """
    from digest.errors import IssueError
    from digest.issue import list_issue_paths, load_issue

    found: dict[date, str] = {}
    for path in list_issue_paths(issues_dir):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        key = (info.st_mtime_ns, info.st_size)
        cached = _status_cache.get(path)
        if cached is None or cached[0] != key:
            try:
                status = load_issue(path).status
            except IssueError as exc:
                status = f"broken: {exc}"
            cached = (key, status)
            _status_cache[path] = cached
        found[date.fromisoformat(path.stem)] = cached[1]
    return found


# -- the slot that matters now -------------------------------------------------


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


def _is_due(status: str | None) -> bool:
    return status not in ("sent", "skipped")


def upcoming(
    ws: Workspace,
    now: datetime,
    *,
    check: CheckFn | None = None,
    audience: Callable[[], int] | None = None,
) -> SlotView:
    """The slot that matters at ``now``: one due within grace, else the next unskipped one."""
    from digest.errors import DigestError
    from digest.issue import issue_path, load_issue

    sched = ws.config.schedule
    statuses = issue_statuses(ws.issues_dir)
    warnings: list[str] = []
    last = previous_slot(sched, now)
    last_day = slot_date(sched, last)
    grace = timedelta(seconds=sched.grace_seconds)
    skipped: list[date] = []
    if now - last <= grace and _is_due(statuses.get(last_day)):
        slot, due_now = last, True
    else:
        due_now = False
        slot = next_slot(sched, now + timedelta(microseconds=1) if last == now else now)
        for _ in range(104):  # two years of skipped weeks is surely a mistake
            if statuses.get(slot_date(sched, slot)) != "skipped":
                break
            skipped.append(slot_date(sched, slot))
            slot = next_slot(sched, slot + timedelta(minutes=1))
        if statuses.get(last_day) in ("draft", "ready") and now - last > grace:
            warnings.append(
                f"the slot of {describe(sched, last)} was missed (grace {sched.grace}): "
                f"issue {last_day} is still {statuses[last_day]}; send it by hand with "
                f"`digest send {last_day}` or mark it `digest issue skip {last_day}`"
            )
    day = slot_date(sched, slot)
    path = issue_path(ws.issues_dir, day)
    status = statuses.get(day)
    subject, articles = "", 0
    cutoff = review_cutoff(sched, slot)
    if status is None:
        warnings.append(
            f"no issue for {describe(sched, slot)}: create it with "
            f"`digest issue new --date {day}` or skip the week with `digest issue skip {day}`"
        )
    elif status.startswith("broken: "):
        warnings.append(status.removeprefix("broken: "))
    else:
        issue = load_issue(path)
        subject, articles = issue.subject, len(issue.articles)
        if status == "draft":
            late = cutoff is not None and now >= cutoff
            when = (
                f"the review cutoff ({describe(sched, cutoff)}) has passed"
                if late and cutoff
                else "it will not be sent unless it is ready"
            )
            warnings.append(
                f"issue {day} is still a draft: {when}; "
                f"mark it ready with `digest issue ready {day}`"
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
    count = None
    if audience is not None:
        try:
            count = audience()
        except DigestError as exc:
            warnings.append(f"audience unknown: {exc}")
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
        audience=count,
    )


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
        f"Next slot:  {describe(schedule, view.slot)} ({schedule.timezone}), {when}",
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
        lines.append(f"Cutoff:     {describe(schedule, view.cutoff)} (review_cutoff)")
    if view.skipped:
        lines.append(f"Skipped:    {', '.join(d.isoformat() for d in view.skipped)}")
    for warning in view.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


# -- sending what is due -------------------------------------------------------

# How long a claim on a send stays valid without a heartbeat (SQLite only; on
# PostgreSQL the advisory lock dies with the session that holds it).
LEASE = timedelta(seconds=120)
HEARTBEAT_SECONDS = 30.0

SendFn = Callable[..., Any]  # run_send(ws, issue, *, stop_event=...) -> report


@dataclass
class Step:
    """One thing a ``--due`` run did or refused, with its one-line message."""

    kind: str  # sent resumed interrupted busy already-sent missing not-ready
    #            failed-check missed cutoff error
    day: date
    message: str = ""
    failed: bool = False
    report: Any = None


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
        return [step.message for step in self.steps if step.message]

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
    from digest import clock

    now = clock.now()
    outcome = DueOutcome(now)
    sched = ws.config.schedule
    statuses = issue_statuses(ws.issues_dir)
    db = _Db(ws, store)
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
    db: _Db,
    day: date,
    slot: datetime,
    status: str | None,
    now: datetime,
    send: SendFn | None,
    check: CheckFn | None,
    stop_event: Any,
    owner: str | None,
) -> Step | None:
    from digest.errors import DigestError
    from digest.issue import issue_path, load_issue

    sched = ws.config.schedule
    when = describe(sched, slot)
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
            f"{describe(sched, slot + timedelta(seconds=sched.grace_seconds))})",
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
    ws: Workspace, db: _Db, day: date, slot: datetime, status: str | None, now: datetime
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
        message=f"missed the slot {describe(sched, slot)} by "
        f"{duration_text((now - slot).total_seconds())} (grace {sched.grace}): issue {day} "
        f"({status}) was not sent; send it by hand with `digest send {day}`, "
        f"or `digest issue skip {day}`",
    )


def _cutoff_step(
    ws: Workspace, db: _Db, statuses: dict[date, str], now: datetime, last: datetime
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
        message=f"warning: review cutoff {describe(sched, cutoff)} has passed and issue {day} "
        f"is {what}; it goes out {describe(sched, slot)} only if ready "
        f"(`digest issue ready {day}`)",
    )


def _send(
    ws: Workspace,
    db: _Db,
    day: date,
    now: datetime,
    *,
    send: SendFn | None,
    stop_event: Any,
    owner: str | None,
    slot: datetime | None = None,
) -> Step:
    from digest.errors import SendError
    from digest.issue import issue_path, load_issue, save_issue

    sched = ws.config.schedule
    slot = slot or slot_on(sched, day)
    claim = db.claim(day, slot, now, owner or default_owner())
    if isinstance(claim, str):
        # "sent": another run finished it; else the owner of a live claim.
        return Step("already-sent" if claim == "sent" else "busy", day)
    issue = load_issue(issue_path(ws.issues_dir, day))
    resumed = issue.status == "sending" or claim.resumed
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
        )
    except BaseException:
        claim.release(done=False)
        raise
    done = _finished(report)
    claim.release(done=done)
    fatal = getattr(report, "fatal", "")
    if fatal:
        return Step(
            "error",
            day,
            report=report,
            failed=True,
            message=f"sending issue {day} stopped: {fatal}; the next `digest send --due` "
            "resumes it",
        )
    if not done:
        return Step(
            "interrupted",
            day,
            report=report,
            message=f"issue {day}: sending paused ({_summary(report)}); "
            "the next `digest send --due` resumes it",
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
    )


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


def default_owner() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


# -- the database side: who is sending what ------------------------------------


class _Claim:
    """A held claim on sending one issue; :meth:`release` ends it."""

    def __init__(self, db: _Db, day: date, owner: str, resumed: bool, pg_conn: Any) -> None:
        import threading

        self.db, self.day, self.owner, self.resumed = db, day, owner, resumed
        self._pg_conn = pg_conn
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if pg_conn is None:  # SQLite: keep the lease fresh while the send runs
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.db.renew(self.day, self.owner)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                pass

    def release(self, *, done: bool) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            self.db.finish(self.day, self.owner, done=done)
        finally:
            if self._pg_conn is not None:
                self._pg_conn.exec_driver_sql(
                    "SELECT pg_advisory_unlock(%s, %s)", (_PG_LOCK_CLASS, self.day.toordinal())
                )
                self._pg_conn.commit()
                self._pg_conn.close()


_PG_LOCK_CLASS = 0x64676573  # "dges": the advisory-lock class of scheduled sends


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _alive(owner: str) -> bool:
    """Whether the process named ``host:pid`` may still run (unknowable elsewhere)."""
    import os
    import socket

    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Db:
    """The workspace's store, opened only when a run needs it."""

    def __init__(self, ws: Workspace, store: Store | None) -> None:
        self.ws = ws
        self._store = store
        self._own = store is None

    @property
    def store(self) -> Store:
        if self._store is None:
            from digest.store import open_store

            self._store = open_store(self.ws)
        return self._store

    def close(self) -> None:
        if self._own and self._store is not None:
            self._store.close()
            self._store = None

    @property
    def table(self) -> Any:
        from digest.store.schema import schedule_runs

        return schedule_runs

    def _ensure(self, conn: Any, day: date, slot: datetime) -> None:
        values = {"issue_date": day.isoformat(), "slot_at": _stamp(slot), "state": "", "owner": ""}
        if self.store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(self.table).values(**values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            conn.execute(lite_insert(self.table).values(**values).on_conflict_do_nothing())

    def _row(self, conn: Any, day: date, *, lock: bool = False) -> Any:
        from sqlalchemy import select

        query = select(self.table).where(self.table.c.issue_date == day.isoformat())
        if lock:
            query = query.with_for_update()
        return conn.execute(query).mappings().first()

    def state(self, day: date) -> str:
        with self.store.read() as conn:
            row = self._row(conn, day)
        return str(row["state"]) if row else ""

    def note_once(self, day: date, slot: datetime, column: str, now: datetime) -> bool:
        """Record a one-time notice (missed, cutoff); False when it was already given."""
        with self.store.begin() as conn:
            self._ensure(conn, day, slot)
            row = self._row(conn, day, lock=True)
            if row[column] or row["state"] == "sent":
                return False
            conn.execute(
                self.table.update()
                .where(self.table.c.issue_date == day.isoformat())
                .values({column: _stamp(now)})
            )
        return True

    def claim(self, day: date, slot: datetime, now: datetime, owner: str) -> _Claim | str:
        """Claim sending ``day``'s issue: a :class:`_Claim`, or why not ("sent", or the owner).

        PostgreSQL: a session advisory lock keyed by the issue date, held on its
        own connection for the whole send, then the row is checked and marked.
        SQLite: one ``BEGIN IMMEDIATE`` transaction (one writer at a time)
        reads the row and takes a lease unless a live process holds one.
        """
        pg_conn = None
        if self.store.dialect == "postgresql":
            pg_conn = self.store.engine.connect()
            got = pg_conn.exec_driver_sql(
                "SELECT pg_try_advisory_lock(%s, %s)", (_PG_LOCK_CLASS, day.toordinal())
            ).scalar()
            pg_conn.commit()
            if not got:
                pg_conn.close()
                return self.state_owner(day) or "another process"
        try:
            with self.store.begin() as conn:
                self._ensure(conn, day, slot)
                row = self._row(conn, day, lock=True)
                if row["state"] == "sent":
                    raise _Refused("sent")
                resumed = row["state"] == "sending"
                if (
                    pg_conn is None
                    and resumed
                    and row["owner"] != owner
                    and row["lease_until"] > _stamp(now)
                    and _alive(row["owner"])
                ):
                    raise _Refused(row["owner"])
                conn.execute(
                    self.table.update()
                    .where(self.table.c.issue_date == day.isoformat())
                    .values(
                        state="sending",
                        owner=owner,
                        lease_until=_stamp(now + LEASE),
                        started_at=row["started_at"] or _stamp(now),
                    )
                )
        except _Refused as refused:
            if pg_conn is not None:
                pg_conn.exec_driver_sql(
                    "SELECT pg_advisory_unlock(%s, %s)", (_PG_LOCK_CLASS, day.toordinal())
                )
                pg_conn.commit()
                pg_conn.close()
            return refused.reason
        except BaseException:
            if pg_conn is not None:
                pg_conn.close()
            raise
        return _Claim(self, day, owner, resumed, pg_conn)

    def state_owner(self, day: date) -> str:
        with self.store.read() as conn:
            row = self._row(conn, day)
        return str(row["owner"]) if row else ""

    def renew(self, day: date, owner: str) -> None:
        from digest import clock

        with self.store.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.issue_date == day.isoformat(), self.table.c.owner == owner)
                .values(lease_until=_stamp(clock.now() + LEASE))
            )

    def finish(self, day: date, owner: str, *, done: bool) -> None:
        from digest import clock

        values: dict[str, Any] = {"lease_until": ""}
        if done:
            values.update(state="sent", finished_at=_stamp(clock.now()))
        with self.store.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.issue_date == day.isoformat(), self.table.c.owner == owner)
                .values(**values)
            )


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def audience_size(ws: Workspace) -> int:
    """How many subscribers a send would go to now (confirmed, not suppressed)."""
    from digest.store import open_store
    from digest.subscribers import audience

    with open_store(ws) as store:
        return sum(1 for _ in audience(store, batch_size=10_000))


def default_check(ws: Workspace, issue: Issue) -> list[str]:
    """The errors `digest check` finds in ``issue`` (warnings do not stop a send)."""
    from digest.check import check_issue

    return [f"{f.code}: {f.message}" for f in check_issue(ws, issue).errors]


def default_send(ws: Workspace, issue: Issue, *, stop_event: Any = None) -> Any:
    """The send engine: freeze the audience, deliver, resume where a run stopped."""
    from digest.send.engine import run_send

    return run_send(ws, issue, stop_event=stop_event)


# -- the foreground scheduler ---------------------------------------------------

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
    if now - last <= timedelta(seconds=sched.grace_seconds) and _is_due(
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
    tick: Callable[[], None] | None = None,
) -> None:
    """``digest scheduler``: run :func:`run_due`, sleep until the next thing, until stopped.

    ``stop_event`` (a threading.Event) is set by SIGTERM: a send in progress
    stops between messages and is resumed by the next run. ``tick`` is called
    before every round (the CLI uses it to move a ``--now`` clock forward).
    """
    import logging

    from digest import clock
    from digest.errors import DigestError

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
        if tick is not None:
            tick()
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
                describe(ws.config.schedule, nxt),
                duration_text(delay) if delay >= 60 else f"{delay:.0f}s",
            )
        stop_event.wait(delay)
    log.info("scheduler stopped")


# -- cron and systemd recipes ---------------------------------------------------


def needed_env(ws: Workspace) -> list[tuple[str, str]]:
    """The environment variables a send from this workspace reads: (name, what)."""
    import os

    config = ws.config
    names: list[tuple[str, str]] = []
    if os.environ.get("DIGEST_DATABASE_URL"):
        names.append(("DIGEST_DATABASE_URL", "the database (it is set where you ran this)"))
    sender = config.sender
    if sender.kind == "smtp":
        if sender.smtp.username_env:
            names.append((sender.smtp.username_env, "SMTP user name"))
        if sender.smtp.password_env:
            names.append((sender.smtp.password_env, "SMTP password"))
    if sender.kind == "http" and sender.http.token_env:
        names.append((sender.http.token_env, f"{sender.http.provider} API token"))
    if config.dkim.enabled and config.dkim.private_key_env:
        names.append((config.dkim.private_key_env, "DKIM private key"))
    optional = "(optional on one machine: else a key file under subscribers/.keys/)"
    names.append((config.web.secret_key_env, f"signing key of unsubscribe links {optional}"))
    names.append((config.consent.pseudonym_key_env, f"pseudonym key {optional}"))
    return names


def _command(ws: Workspace) -> str:
    import shlex
    import sys

    return f"{shlex.quote(sys.executable)} -m digest -C {shlex.quote(str(ws.root))} send --due"


def cron_entry(ws: Workspace, every: int = 5) -> str:
    """A crontab entry running ``digest send --due`` every ``every`` minutes."""
    minute = "*" if every == 1 else f"*/{every}"
    lines = [
        f"# {ws.config.newsletter.name}: send the issue when its slot comes "
        f"({ws.config.schedule.weekday} {ws.config.schedule.time} "
        f"{ws.config.schedule.timezone}).",
        "# Silent when nothing is due; any output is a problem cron mails you.",
        "# Set these above the entry (NAME=value lines) or in cron's environment:",
    ]
    lines += [f"#   {name:<22} {what}" for name, what in needed_env(ws)]
    lines.append(f"{minute} * * * * {_command(ws)}")
    return "\n".join(lines) + "\n"


def systemd_units(ws: Workspace, every: int = 5) -> dict[str, str]:
    """A oneshot service and the timer that starts it every ``every`` minutes."""
    name = f"digest-{ws.config.newsletter.slug}"
    env_lines = [f"#   {name_:<22} {what}" for name_, what in needed_env(ws)]
    service = "\n".join(
        [
            "[Unit]",
            f"Description={ws.config.newsletter.name}: send the issue when it is due",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={ws.root}",
            f"ExecStart={_command(ws)}",
            "# Secrets: put NAME=value lines in this file (mode 600), one per variable:",
            *env_lines,
            f"EnvironmentFile=-/etc/digest/{name}.env",
            "",
        ]
    )
    timer = "\n".join(
        [
            "[Unit]",
            f"Description=Run {name}.service every {every} minutes",
            "",
            "[Timer]",
            f"OnCalendar=*-*-* *:{'*' if every == 1 else f'00/{every}'}:00",
            "AccuracySec=1s",
            "Persistent=true",
            f"Unit={name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return {f"{name}.service": service, f"{name}.timer": timer}
