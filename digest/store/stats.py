"""The newsroom's numbers, from digest's own ledgers: aggregate queries, nothing per reader.

:func:`collect` answers "are we growing?" and "how did each issue do?" for the
last N weeks (Monday to Sunday, in the schedule's time zone) with counts over
ranges of indexes (migration 9) and a few small GROUP BY queries: no reader's
row is read into Python, so the cost grows with the number of weeks and issues
(and the events in them), not with the list.

The list, week by week:

* **confirmed**, **added**: entries into the active list: double opt-in
  confirmations; imports and operator additions with consent on record;
* **unsubscribed**, **bounced** (suppressed after a hard bounce or too many
  soft ones), **complained**: those events, whatever the reader's state before;
* **active** at the end of the week: today's active count, walked back week by
  week with the entries and the exits *from the active list* (an exit is an
  unsubscribe, bounce, complaint or erasure whose reader's previous event left
  them active: one indexed look-up per exit, not per reader).

Each sent issue (its audience frozen in the window): audience, sent, failed,
unknown and still waiting, from the deliveries ledger (sent is the audience
less the other states, whose ranges of the (issue, state) index are small);
hard and soft bounces and complaints as ``digest bounces DATE`` counts them;
unsubscribes attributed to it (its signed link, or a mailbox or provider
report naming it); the time from the audience freeze to the send's finish; and
the answers to "why are you leaving?" (:mod:`digest.store.reasons`).

Not counted, because digest never records it: opens, clicks, forwards,
anything a reader does with a message.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, text

from digest import clock
from digest.errors import IssueError
from digest.issue import issue_path, load_issue
from digest.store.reasons import REASONS
from digest.workspace import Workspace

DEFAULT_WEEKS = 12
MAX_WEEKS = 520
MAX_TEXTS = 200

# The lifecycle as the ledger records it (digest.consent.STATUS_AFTER; a test holds
# these to it): the events that put a reader on the active list, and those that
# take one off it.
ENTERING = ("confirmed", "imported")  # and admin_added whose evidence says "confirmed"
LEAVING = ("unsubscribed", "bounced", "complained", "erased")
FLOWS = ("confirmed", "imported", "unsubscribed", "bounced", "complained")
_ADMIN_CONFIRMED = '%"confirmed":true%'  # canonical JSON of admin_added evidence
# Deliveries in any state but sent (digest.send.deliveries.STATES; a test holds it).
NOT_SENT = ("pending", "sending", "deferred", "failed", "skipped", "unknown")
# Bounce report outcomes `digest bounces` leaves out (digest.bounces; a test holds it).
NOT_COUNTED = ("unknown", "not ours", "duplicate", "refused")
# The methods of an unsubscribe by a reader's own link (the page or one-click POST).
LINK_METHODS = ("link", "one_click")

_ISSUE_SOURCE = re.compile(r" \(issue (\d{4}-\d{2}-\d{2})\)$")


def unsubscribe_source(url: str, issue: str) -> str:
    """The ``source`` of an unsubscribe by link: the URL, and the issue the link named."""
    return f"{url} (issue {issue})" if issue else url


def source_issue(source: str) -> str:
    """The issue an unsubscribe's ``source`` names (see :func:`unsubscribe_source`), or ""."""
    found = _ISSUE_SOURCE.search(source)
    return found.group(1) if found else ""


# -- what collect returns ------------------------------------------------------------


@dataclass
class Week:
    start: date  # the Monday, in the schedule's time zone
    active: int = 0  # at the end of the week (for the current week: now)
    confirmed: int = 0
    added: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0

    @property
    def joined(self) -> int:
        return self.confirmed + self.added


@dataclass
class IssueStats:
    issue: str
    subject: str
    frozen_at: str
    finished_at: str | None
    audience: int
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    waiting: int = 0  # pending, being sent, or deferred for a retry
    skipped: int = 0  # unsubscribed or suppressed between the freeze and their turn
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0  # attributed to this issue
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> int | None:
        """From the audience freeze to the send's finish (None while it is not finished)."""
        if not self.finished_at:
            return None
        took = _instant(self.finished_at) - _instant(self.frozen_at)
        return max(0, round(took.total_seconds()))


@dataclass
class Answer:
    issue: str
    reason: str
    text: str


@dataclass
class Stats:
    generated_at: str
    time_zone: str
    weeks: list[Week]
    issues: list[IssueStats]
    active: int
    active_before: int  # at the start of the first week
    unsubscribes: dict[str, int]  # attributed, earlier_issues, not_attributed (in the window)
    reasons: dict[str, int]  # answers for the listed issues and for links without one
    answers: int
    texts: list[Answer]

    @property
    def start(self) -> date:
        return self.weeks[0].start

    @property
    def end(self) -> date:
        return self.weeks[-1].start + timedelta(days=6)

    def to_dict(self) -> dict[str, Any]:
        """The shape `digest stats --json` prints (documented in docs/stats.md)."""
        return {
            "generated_at": self.generated_at,
            "time_zone": self.time_zone,
            "weeks": len(self.weeks),
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "list": {
                "active": self.active,
                "active_before": self.active_before,
                "weeks": [
                    {
                        "week": w.start.isoformat(),
                        "active": w.active,
                        "confirmed": w.confirmed,
                        "added": w.added,
                        "unsubscribed": w.unsubscribed,
                        "bounced": w.bounced,
                        "complained": w.complained,
                    }
                    for w in self.weeks
                ],
                "unsubscribes": dict(self.unsubscribes),
            },
            "issues": [
                {
                    "issue": i.issue,
                    "subject": i.subject,
                    "frozen_at": i.frozen_at,
                    "finished_at": i.finished_at,
                    "seconds": i.seconds,
                    "audience": i.audience,
                    "sent": i.sent,
                    "failed": i.failed,
                    "unknown": i.unknown,
                    "waiting": i.waiting,
                    "skipped": i.skipped,
                    "bounces": {"hard": i.hard_bounces, "soft": i.soft_bounces},
                    "complaints": i.complaints,
                    "unsubscribes": i.unsubscribes,
                    "reasons": dict(i.reasons),
                }
                for i in self.issues
            ],
            "reasons": {
                "answers": self.answers,
                "counts": dict(self.reasons),
                "texts": [asdict(t) for t in self.texts],
            },
        }


# -- collecting ---------------------------------------------------------------------------


def collect(conn: Connection, ws: Workspace, weeks: int = DEFAULT_WEEKS) -> Stats:
    """The list over the last ``weeks`` weeks (this one included) and the issues sent in them,
    read in the caller's (read) transaction on ``ws``'s store."""
    weeks = max(1, min(weeks, MAX_WEEKS))
    zone_name = ws.config.schedule.timezone
    zone = ZoneInfo(zone_name)
    now = clock.now()
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    starts = [monday - timedelta(weeks=weeks - 1 - n) for n in range(weeks)]
    # Each week's first instant, in UTC; an hour counted at or after edges[i] is in week i.
    edges = [datetime.combine(day, time(0), zone).astimezone(UTC) for day in starts]
    since = stamp(edges[0])
    table = [Week(day) for day in starts]
    active = _scalar(conn, "SELECT count(*) FROM subscribers WHERE status = 'active'")
    entries = [0] * weeks
    exits = [0] * weeks
    bounds = [*(stamp(edge) for edge in edges), _AFTER_ALL]
    imported_active = _IMPORTED_ACTIVE.format(status=_EVIDENCE_STATUS[conn.dialect.name])
    week_sql = text(_WEEK_SQL.format(imported_active=imported_active)).bindparams(
        bindparam("leaving", expanding=True), bindparam("entering", expanding=True)
    )
    for n, week in enumerate(table):
        row = conn.execute(
            week_sql,
            {
                "start": bounds[n],
                "stop": bounds[n + 1],
                "pattern": _ADMIN_CONFIRMED,
                "with_status": _IMPORTED_WITH_STATUS,
                **{f"k_{kind}": kind for kind in FLOWS},
                "leaving": list(LEAVING),
                "entering": list(ENTERING),
            },
        ).one()
        confirmed, imported, unsubscribed, bounced, complained, admin, left = map(int, row)
        week.confirmed, week.added = confirmed, imported + admin
        week.unsubscribed, week.bounced, week.complained = unsubscribed, bounced, complained
        entries[n] = confirmed + imported + admin
        exits[n] = left
    level = active
    for n in range(weeks - 1, -1, -1):
        table[n].active = level
        level += exits[n] - entries[n]
    issues = _issues(conn, since)
    unsubscribes = _unsubscribes(conn, since, issues)
    reasons, answers, texts = _reasons(conn, issues)
    _subjects(ws, issues)
    return Stats(
        generated_at=stamp(now),
        time_zone=zone_name,
        weeks=table,
        issues=sorted(issues.values(), key=lambda i: i.issue),
        active=active,
        active_before=level,
        unsubscribes=unsubscribes,
        reasons=reasons,
        answers=answers,
        texts=texts,
    )


_AFTER_ALL = "9999"  # sorts after every stored time: the current week has no end yet

# An import puts a reader on the active list unless its evidence names another status
# (pending: no evidence of consent; or an opt-out at the old tool): most name none, so
# the evidence is parsed only where it holds a "status" key (see digest.consent).
_IMPORTED_WITH_STATUS = '%"status":%'
_EVIDENCE_STATUS = {
    "sqlite": "json_extract(v.body, '$.status')",
    "postgresql": "(v.body::json ->> 'status')",
}
_IMPORTED_ACTIVE = (
    "(v.body IS NULL OR v.body NOT LIKE :with_status OR coalesce({status}, 'active') = 'active')"
)

# One week's flows, each a count over one range of ix_consent_events_kind_time (a
# GROUP BY over the hour or day of every event costs ten times more). Operator
# additions with consent on record go straight to active. An exit from the active
# list is a leaving event whose subject's previous event (an export changes nothing)
# left them active: one index look-up per leaving event.
_WEEK_SQL = """
SELECT
  (SELECT count(*) FROM consent_events
   WHERE kind = :k_confirmed AND occurred_at >= :start AND occurred_at < :stop),
  (SELECT count(*) FROM consent_events e LEFT JOIN consent_evidence v ON v.seq = e.seq
   WHERE e.kind = :k_imported AND e.occurred_at >= :start AND e.occurred_at < :stop
     AND {imported_active}),
  (SELECT count(*) FROM consent_events
   WHERE kind = :k_unsubscribed AND occurred_at >= :start AND occurred_at < :stop),
  (SELECT count(*) FROM consent_events
   WHERE kind = :k_bounced AND occurred_at >= :start AND occurred_at < :stop),
  (SELECT count(*) FROM consent_events
   WHERE kind = :k_complained AND occurred_at >= :start AND occurred_at < :stop),
  (SELECT count(*) FROM consent_events e JOIN consent_evidence v ON v.seq = e.seq
   WHERE e.kind = 'admin_added' AND e.occurred_at >= :start AND e.occurred_at < :stop
     AND v.body LIKE :pattern),
  (SELECT count(*) FROM consent_events e
   JOIN consent_events p ON p.seq = (
       SELECT max(q.seq) FROM consent_events q
       WHERE q.subject_id = e.subject_id AND q.seq < e.seq AND q.kind <> 'exported'
   )
   LEFT JOIN consent_evidence v ON v.seq = p.seq AND p.kind IN ('admin_added', 'imported')
   WHERE e.kind IN :leaving AND e.occurred_at >= :start AND e.occurred_at < :stop
     AND ((p.kind IN :entering AND p.kind <> 'imported')
          OR (p.kind = 'imported' AND {imported_active})
          OR (p.kind = 'admin_added' AND v.body LIKE :pattern)))
"""


def _issues(conn: Connection, since: str) -> dict[str, IssueStats]:
    """The issues whose audience was frozen in the window, with their deliveries and bounces."""
    issues = {
        issue: IssueStats(issue, "", frozen_at, finished_at, int(audience or 0))
        for issue, frozen_at, audience, finished_at in _rows(
            conn,
            "SELECT issue, frozen_at, audience, finished_at FROM issue_sends"
            " WHERE frozen_at >= :since",
            since=since,
        )
    }
    if not issues:
        return issues
    names = sorted(issues)
    # Sent is the audience less every other state: those ranges of the index are small.
    for issue, state, count in _rows(
        conn,
        "SELECT issue, state, count(*) FROM deliveries"
        " WHERE issue IN :issues AND state IN :states GROUP BY issue, state",
        issues=names,
        states=list(NOT_SENT),
    ):
        row = issues[issue]
        if state in ("failed", "unknown", "skipped"):
            setattr(row, state, getattr(row, state) + count)
        else:
            row.waiting += count
    for row in issues.values():
        row.sent = max(0, row.audience - row.failed - row.unknown - row.skipped - row.waiting)
    for issue, kind, outcome, count in _rows(
        conn,
        "SELECT issue, kind, outcome, count(*) FROM bounce_reports"
        " WHERE issue IN :issues GROUP BY issue, kind, outcome",
        issues=names,
    ):
        row = issues[issue]
        if outcome in NOT_COUNTED:
            continue
        if kind == "hard":
            row.hard_bounces += count
        elif kind == "soft":
            row.soft_bounces += count
        elif kind == "complaint":
            row.complaints += count
        elif kind == "unsubscribe" and outcome == "unsubscribed":
            row.unsubscribes += count
    return issues


def _unsubscribes(conn: Connection, since: str, issues: dict[str, IssueStats]) -> dict[str, int]:
    """Unsubscribes by link since the window's start, attributed to the issue the link named.

    Adds each listed issue's count to it; returns the window's totals: attributed
    to a listed issue, to an earlier issue, or to none (a link mailed before
    links named their issue, or a mailbox report naming none).
    """
    totals = {"attributed": 0, "earlier_issues": 0, "not_attributed": 0}
    totals["attributed"] = sum(row.unsubscribes for row in issues.values())  # by report
    for source, count in _rows(
        conn,
        "SELECT source, count(*) FROM consent_events"
        " WHERE kind = 'unsubscribed' AND occurred_at >= :since AND method IN :methods"
        " GROUP BY source",
        since=since,
        methods=list(LINK_METHODS),
    ):
        issue = source_issue(source)
        if issue in issues:
            issues[issue].unsubscribes += count
            totals["attributed"] += count
        elif issue:
            totals["earlier_issues"] += count
        else:
            totals["not_attributed"] += count
    totals["not_attributed"] += _scalar(
        conn,
        "SELECT count(*) FROM bounce_reports WHERE issue = '' AND kind = 'unsubscribe'"
        " AND outcome = 'unsubscribed' AND received_at >= :since",
        since=since,
    )
    return totals


def _reasons(
    conn: Connection, issues: dict[str, IssueStats]
) -> tuple[dict[str, int], int, list[Answer]]:
    """The answers for the listed issues and for links that named none (those carry no date)."""
    totals = dict.fromkeys((*REASONS, ""), 0)
    answers = 0
    for issue, reason, count in _rows(
        conn, "SELECT issue, reason, count(*) FROM unsubscribe_reasons GROUP BY issue, reason"
    ):
        if issue and issue not in issues:
            continue
        answers += count
        totals[reason] = totals.get(reason, 0) + count
        if issue:
            counted = issues[issue].reasons
            counted[reason] = counted.get(reason, 0) + count
    listed = [*sorted(issues), ""]
    texts = [
        Answer(issue, reason, body)
        for issue, reason, body in _rows(
            conn,
            "SELECT issue, reason, text FROM unsubscribe_reasons"
            " WHERE text <> '' AND issue IN :issues"
            f" ORDER BY issue DESC, answer_key LIMIT {MAX_TEXTS}",
            issues=listed,
        )
    ]
    return {k: v for k, v in totals.items() if v}, answers, texts


def _subjects(ws: Workspace, issues: dict[str, IssueStats]) -> None:
    """Each issue's subject, from its file (left empty when the file is gone or broken)."""
    folder = ws.issues_dir
    for row in issues.values():
        try:
            row.subject = load_issue(issue_path(folder, date.fromisoformat(row.issue))).subject
        except (IssueError, OSError, ValueError):
            row.subject = ""


# -- helpers --------------------------------------------------------------------------------


def _rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    statement = text(sql)
    for name, value in params.items():
        if isinstance(value, list):
            statement = statement.bindparams(bindparam(name, expanding=True))
    return [tuple(row) for row in conn.execute(statement, params)]


def _scalar(conn: Connection, sql: str, **params: Any) -> int:
    return int(conn.execute(text(sql), params).scalar() or 0)


def stamp(moment: datetime) -> str:
    """A UTC instant as the tables store it (digest.store.stamp)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
