"""The bounce and complaint policy: every report, from any source, goes through :func:`apply`.

Sources (an SMTP reply during the send, a report read from a mailbox or a file,
a provider's webhook) each turn what they read into a :class:`Report`; this
module decides what it means for the reader, in one transaction:

=====================  ==========================================================
hard bounce            suppressed at once: status ``bounced``, keyed-hash
                       suppression entry, consent event ``bounced``
soft bounce            counted; ``[bounces] soft_limit`` (3) in a row on separate
                       issues suppress as a hard bounce does; an issue that went
                       through without a bounce starts the count again
complaint              suppressed at once and for good: ``complained``
mailbox unsubscribe    consent withdrawn: ``unsubscribed`` (method ``mailto``, or
                       ``provider_webhook``); the reader may subscribe again
anything else          recorded and counted (an auto-reply, a delay notice)
=====================  ==========================================================

The event's evidence is the SHA-256 of the raw report and a short summary
(source, status, diagnostic with addresses masked). A report is recorded under
its key in ``bounce_reports`` in the same transaction, so the same report
processed twice changes nothing the second time. A report for an address we do
not know, or for mail we did not send, is recorded (``unknown`` / ``not ours``)
and changes nobody.

Classification (:func:`classify`) is the rule table of :mod:`digest.bounce_rules`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from digest import addresses, clock
from digest.bounce_rules import Classification as Classification  # re-exported
from digest.bounce_rules import classify as classify
from digest.people import changes, record
from digest.store import Store, schema, stamp

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
IGNORED = "ignored"  # not a bounce: an auto-reply, a delay or delivery notice
KINDS = (HARD, SOFT, COMPLAINT, UNSUBSCRIBE, IGNORED)

# Outcomes recorded per report.
SUPPRESSED = "suppressed"
UNSUBSCRIBED = "unsubscribed"
COUNTED = "counted"
ALREADY = "already"  # the reader was no longer mailable
UNKNOWN = "unknown"  # nobody we know
NOT_OURS = "not ours"  # a known reader, but no proof it was our message
REFUSED = "refused"  # not read at all: too large, too deeply nested, or it broke the reader
DUPLICATE = "duplicate"  # the same report again: nothing changed

reports_t = schema.bounce_reports

# -- reports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One bounce, complaint or unsubscribe for one recipient, as a source read it.

    ``proven`` says the source knows we sent this message to this reader (a
    signed return path, our Message-ID, our provider's message id, our own SMTP
    conversation). ``raw`` is the report as received (message bytes, event
    JSON, the SMTP reply); ``part`` tells recipients of one report apart.
    """

    source: str
    kind: str
    raw: bytes
    subscriber_id: str = ""
    address: str = ""
    issue: str = ""
    status: str = ""
    diagnostic: str = ""
    proven: bool = False
    part: str = ""
    method: str = "bounce_report"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.raw_sha256}\0{self.part}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    outcome: str
    kind: str
    subscriber_id: str = ""
    issue: str = ""

    @property
    def changed(self) -> bool:
        return self.outcome in (SUPPRESSED, UNSUBSCRIBED)


def scrub(text: str, limit: int = 300) -> str:
    """A diagnostic as the ledger keeps it: one line, short, addresses masked."""
    return addresses.mask_all(" ".join(text[: 4 * limit].split()))[:limit]


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()[:255]


def apply(store: Store, report: Report, *, soft_limit: int | None = None) -> Outcome:
    """Apply the policy to one report; idempotent per report (see the module docstring)."""
    limit = soft_limit or store.workspace.config.bounces.soft_limit
    with record.write_transaction(store) as conn:
        key = report.key
        seen = conn.execute(
            select(reports_t.c.outcome, reports_t.c.subscriber_id, reports_t.c.issue).where(
                reports_t.c.key == key
            )
        ).first()
        if seen is not None:
            return Outcome(DUPLICATE, report.kind, seen.subscriber_id or "", seen.issue)
        sub = record.find_in(
            conn, store, subscriber_id=report.subscriber_id, address=report.address
        )
        domain = _domain(report.address or (sub.email if sub and sub.email else ""))
        sid = sub.id if sub else None
        if sub is None:
            outcome = UNKNOWN
        elif report.kind == IGNORED:
            outcome = IGNORED
        elif not report.proven:
            outcome = NOT_OURS
        elif sub.status not in ("pending", "active"):
            outcome = ALREADY
        else:
            outcome = COUNTED
        _record(conn, report, outcome, sid, domain)
        if outcome != COUNTED or sub is None:
            return Outcome(outcome, report.kind, sid or "", report.issue)
        evidence = _evidence(report)
        source = f"{report.source} report {key[:16]}"
        step = {HARD: "bounce", COMPLAINT: "complaint", UNSUBSCRIBE: "unsubscribe"}.get(report.kind)
        if step is not None:
            changes.transition_in(
                conn, store, sub.id, step, method=report.method, source=source, evidence=evidence
            )
            outcome = UNSUBSCRIBED if report.kind == UNSUBSCRIBE else SUPPRESSED
        elif report.kind == SOFT:
            in_a_row = _soft_in_a_row(conn, sub.id, report.issue)
            if in_a_row >= limit:
                evidence["soft_bounces_in_a_row"] = in_a_row
                changes.transition_in(
                    conn,
                    store,
                    sub.id,
                    "bounce",
                    method=report.method,
                    source=source,
                    evidence=evidence,
                )
                outcome = SUPPRESSED
        if outcome != COUNTED:
            conn.execute(reports_t.update().where(reports_t.c.key == key).values(outcome=outcome))
        return Outcome(outcome, report.kind, sub.id, report.issue)


def record_refused(store: Store, source: str, digest: str, reason: str) -> Outcome:
    """Record a message that was not read (over a cap, or it broke the reader); counted.

    ``digest`` is the SHA-256 of the message as received; the same message again is a
    duplicate.
    """
    key = hashlib.sha256(f"{digest}\0refused".encode()).hexdigest()
    with store.begin() as conn:
        seen = conn.execute(select(reports_t.c.key).where(reports_t.c.key == key)).first()
        if seen is not None:
            return Outcome(DUPLICATE, IGNORED)
        conn.execute(
            reports_t.insert().values(
                key=key,
                received_at=stamp(clock.now()),
                source=source,
                kind=IGNORED,
                outcome=REFUSED,
                subscriber_id=None,
                issue="",
                status="",
                reason=scrub(reason),
                domain="",
                report_sha256=digest,
            )
        )
    return Outcome(REFUSED, IGNORED)


def _record(conn: Connection, report: Report, outcome: str, sid: str | None, domain: str) -> None:
    conn.execute(
        reports_t.insert().values(
            key=report.key,
            received_at=stamp(clock.now()),
            source=report.source,
            kind=report.kind,
            outcome=outcome,
            subscriber_id=sid,
            issue=report.issue,
            status=report.status[:16],
            reason=scrub(report.diagnostic),
            domain=domain,
            report_sha256=report.raw_sha256,
        )
    )


def _evidence(report: Report) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "report_sha256": report.raw_sha256,
        "source": report.source,
        "kind": report.kind,
        "status": report.status,
        "diagnostic": scrub(report.diagnostic),
    }
    if report.issue:
        summary["issue"] = report.issue
    summary.update({k: scrub(str(v), 120) for k, v in report.details.items()})
    return summary


def _soft_in_a_row(conn: Connection, subscriber_id: str, issue: str) -> int:
    """Issues in a row, up to ``issue``, whose message to the reader soft-bounced.

    The issues mailed to the reader come from the deliveries ledger (and the
    reports themselves); the first one, going back, without a bounce ends the run.
    A soft bounce without an issue counts once, alone.
    """
    bounced = {
        row.issue
        for row in conn.execute(
            select(reports_t.c.issue).where(
                reports_t.c.subscriber_id == subscriber_id,
                reports_t.c.kind == SOFT,
                reports_t.c.issue != "",
                # proven reports only: a forged one must not build up the streak
                reports_t.c.outcome.in_((COUNTED, SUPPRESSED)),
            )
        )
    }
    if not issue:
        return 1
    deliveries = schema.deliveries
    mailed = set(bounced)
    mailed.update(
        day
        for (day,) in conn.execute(
            select(deliveries.c.issue).where(
                deliveries.c.subscriber_id == subscriber_id,
                deliveries.c.state.in_(("sent", "failed")),
            )
        )
    )
    count = 0
    for day in sorted((d for d in mailed if d <= issue), reverse=True):
        if day not in bounced:
            break
        count += 1
    return count


# -- reading ----------------------------------------------------------------------------


def issue_summary(store: Store, issue: str) -> dict[str, Any]:
    """Counts for one issue: by kind, by kind and reason, by kind and recipient domain."""
    counted = reports_t.c.outcome.notin_((UNKNOWN, NOT_OURS, DUPLICATE, REFUSED))
    with store.read() as conn:
        kinds = dict.fromkeys(KINDS, 0)
        for kind, n in conn.execute(
            select(reports_t.c.kind, func.count())
            .where(reports_t.c.issue == issue, counted)
            .group_by(reports_t.c.kind)
        ):
            kinds[kind] = int(n)
        reasons = [
            {"kind": kind, "status": status, "reason": reason, "count": int(n)}
            for kind, status, reason, n in conn.execute(
                select(reports_t.c.kind, reports_t.c.status, reports_t.c.reason, func.count())
                .where(reports_t.c.issue == issue, counted)
                .group_by(reports_t.c.kind, reports_t.c.status, reports_t.c.reason)
                .order_by(func.count().desc(), reports_t.c.kind)
            )
        ]
        domains = [
            {"kind": kind, "domain": domain, "count": int(n)}
            for kind, domain, n in conn.execute(
                select(reports_t.c.kind, reports_t.c.domain, func.count())
                .where(reports_t.c.issue == issue, counted)
                .group_by(reports_t.c.kind, reports_t.c.domain)
                .order_by(func.count().desc(), reports_t.c.domain)
            )
        ]
        ignored = {
            outcome: int(n)
            for outcome, n in conn.execute(
                select(reports_t.c.outcome, func.count())
                .where(reports_t.c.issue == issue, ~counted)
                .group_by(reports_t.c.outcome)
            )
        }
    return {
        "issue": issue,
        "hard": kinds[HARD],
        "soft": kinds[SOFT],
        "complaints": kinds[COMPLAINT],
        "mailbox_unsubscribes": kinds[UNSUBSCRIBE],
        "other": kinds[IGNORED],
        "by_reason": reasons,
        "by_domain": domains,
        "not_counted": ignored,
    }


def unattributed(store: Store) -> dict[str, int]:
    """Reports that named no issue we sent, by outcome (unknown readers, not our mail)."""
    with store.read() as conn:
        return {
            outcome: int(n)
            for outcome, n in conn.execute(
                select(reports_t.c.outcome, func.count())
                .where(reports_t.c.issue == "")
                .group_by(reports_t.c.outcome)
            )
        }


def latest_issue(store: Store, *, other_than: str = "") -> str | None:
    """The issue whose send started last (its audience frozen), if any."""
    sends = schema.issue_sends
    with store.read() as conn:
        found = conn.execute(
            select(sends.c.issue)
            .where(sends.c.issue != other_than)
            .order_by(sends.c.frozen_at.desc(), sends.c.issue.desc())
            .limit(1)
        ).scalar()
    return str(found) if found else None


def rates(store: Store, issue: str) -> dict[str, Any]:
    """An issue's hard-bounce and complaint rates over its frozen audience."""
    sends = schema.issue_sends
    with store.read() as conn:
        audience = (
            conn.execute(select(sends.c.audience).where(sends.c.issue == issue)).scalar() or 0
        )
    summary = issue_summary(store, issue)
    return {
        "issue": issue,
        "audience": int(audience),
        "hard": summary["hard"],
        "complaints": summary["complaints"],
        "hard_rate": summary["hard"] / audience if audience else 0.0,
        "complaint_rate": summary["complaints"] / audience if audience else 0.0,
    }


def send_warning(store: Store, issue_to_send: str = "") -> str:
    """A warning before a send when the last issue bounced or drew complaints too often.

    The thresholds (``[bounces] hard_rate_warning``, 2%, and
    ``complaint_rate_warning``, 0.1%) are the ones mailbox providers publish
    for bulk senders; above them, mail starts going to spam or is refused.
    """
    issue = latest_issue(store, other_than=issue_to_send)
    if issue is None:
        return ""
    settings = store.workspace.config.bounces
    found = rates(store, issue)
    problems = []
    if found["hard_rate"] > settings.hard_rate_warning:
        problems.append(
            f"{found['hard_rate']:.1%} hard bounces ({found['hard']} of {found['audience']}; "
            f"over {settings.hard_rate_warning:.0%})"
        )
    if found["complaint_rate"] > settings.complaint_rate_warning:
        problems.append(
            f"{found['complaint_rate']:.2%} complaints ({found['complaints']} of "
            f"{found['audience']}; over {settings.complaint_rate_warning:.1%})"
        )
    if not problems:
        return ""
    return (
        f"warning: issue {issue} had {' and '.join(problems)}; mailbox providers send such "
        f"lists to spam. Look at `digest bounces {issue}` (by reason and domain) and clean "
        "the list before sending"
    )


def report(store: Store, issue: str | None = None) -> dict[str, Any]:
    """What `digest bounces` shows: an issue's summary (default: the last sent) and rates."""
    issue = issue or latest_issue(store)
    if issue is None:
        return {"issue": None, "unattributed": unattributed(store)}
    return {
        **issue_summary(store, issue),
        **rates(store, issue),
        "unattributed": unattributed(store),
    }
