"""A subscriber's lifecycle: signing up, confirming, leaving, coming back, being suppressed.

Each change is a row of the transition table in :mod:`digest.lifecycle`,
recorded as one consent event in the same transaction that caches the new
status (see :mod:`digest.people.record`)::

    signup_requested ──> pending ──confirmed──> active ──unsubscribed──> unsubscribed
                            ^                                                 │
                            └────────────── resubscribed (fresh consent) ─────┘
    imported (with a consent date) / admin_added --confirmed ──> active
    admin_added ──> pending
    bounced / complained ──> suppressed, until the reader resubscribes and confirms again
    suppressed by the operator ──> for good
    erased ──> the address, name, attributes and evidence are gone; a keyed hash stays suppressed

A report's suppression (bounced, complained) is lifted only by a confirmation,
which only the mailbox's owner can give: until then the reader is pending and
still suppressed, so no issue reaches them.

Imports are :mod:`digest.people.imports`; erasure is :mod:`digest.people.rights`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from digest import lifecycle
from digest.addresses import mask, normalise
from digest.errors import SubscriberError
from digest.people.record import (
    SUPPRESSION_REASONS,
    Subscriber,
    append_event,
    by_key,
    email_key,
    from_row,
    hold_for_good,
    insert,
    key_blocked,
    key_suppressed,
    lift_report_suppression,
    require,
    suppress_key,
    write_transaction,
)
from digest.store import Store


def _refuse_suppressed(normalized: str) -> SubscriberError:
    said = (
        "is on the suppression list (suppressed by the operator or erased) and is "
        "never subscribed again"
    )
    return SubscriberError(f"{mask(normalized)} {said}", typed=f"{normalized} {said}")


def request_signup(
    store: Store,
    email: str,
    name: str | None,
    *,
    method: str,
    source: str,
    evidence: dict[str, Any],
) -> Subscriber:
    """Record a sign-up request: a new, unsubscribed, bounced or complained address
    becomes pending (the latter two stay suppressed until they confirm).

    An active subscriber stays active and nothing is recorded; a pending one
    records the repeated request. An address suppressed for good is refused.
    """
    normalized = normalise(email)
    key = email_key(store, normalized)
    with write_transaction(store) as conn:
        if key_blocked(conn, key):
            raise _refuse_suppressed(normalized)
        row = by_key(conn, key)
        if row is None:
            sub = insert(conn, store, normalized, key, name, "pending")
            append_event(
                conn,
                store,
                sub,
                "signup_requested",
                method=method,
                source=source,
                evidence=evidence,
                pseudonym=key,
            )
            return sub
        if row.status == "active":
            return from_row(row)
        if row.status == "pending":
            append_event(
                conn,
                store,
                row,
                "signup_requested",
                method=method,
                source=source,
                evidence=evidence,
            )
        elif row.status in lifecycle.TRANSITIONS["resubscribe"].sources:
            step = lifecycle.TRANSITIONS["resubscribe"]
            append_event(
                conn,
                store,
                row,
                step.event,
                method=method,
                source=source,
                evidence=evidence,
                status=step.target,
            )
        else:
            raise _refuse_suppressed(normalized)
        return from_row(require(conn, row.id))


def _transition(
    store: Store,
    subscriber_id: str,
    name: str,
    *,
    method: str,
    source: str,
    evidence: dict[str, Any],
) -> Subscriber:
    """Apply lifecycle transition ``name`` (see :mod:`digest.lifecycle`) to one subscriber."""
    with write_transaction(store) as conn:
        transition_in(
            conn, store, subscriber_id, name, method=method, source=source, evidence=evidence
        )
        return from_row(require(conn, subscriber_id))


def confirm(
    store: Store, subscriber_id: str, *, method: str, source: str, evidence: dict[str, Any]
) -> Subscriber:
    """Double opt-in: pending -> active. Confirming an active subscriber changes nothing.

    A suppression a report made (bounced, complained) is lifted: the reader
    confirmed from the mailbox the report said was gone or unwilling.
    """
    return _transition(
        store, subscriber_id, "confirm", method=method, source=source, evidence=evidence
    )


def unsubscribe(
    store: Store,
    subscriber_id: str,
    *,
    method: str,
    source: str,
    evidence: dict[str, Any],
    reason: str | None = None,
) -> Subscriber:
    """Withdraw consent at once. A second unsubscribe records nothing and is harmless."""
    details = {**evidence, **({"reason": reason} if reason else {})}
    return _transition(
        store, subscriber_id, "unsubscribe", method=method, source=source, evidence=details
    )


def resubscribe(
    store: Store, subscriber_id: str, *, method: str, source: str, evidence: dict[str, Any]
) -> Subscriber:
    """A fresh consent from an unsubscribed, bounced or complained subscriber: back to
    pending until confirmed.

    Pending and active subscribers are returned unchanged; one suppressed for
    good (by the operator) or erased is refused.
    """
    return _transition(
        store, subscriber_id, "resubscribe", method=method, source=source, evidence=evidence
    )


def admin_add(
    store: Store,
    email: str,
    name: str | None = None,
    *,
    source: str,
    confirmed: bool = False,
    evidence: dict[str, Any] | None = None,
) -> Subscriber:
    """An operator adds an address: pending, or active when ``confirmed`` (consent held)."""
    normalized = normalise(email)
    key = email_key(store, normalized)
    with write_transaction(store) as conn:
        if key_suppressed(conn, key):
            raise _refuse_suppressed(normalized)
        row = by_key(conn, key)
        if row is not None:
            said = (
                f"is already a subscriber ({row.status}, id {row.id}); "
                "only the subscriber can resubscribe after unsubscribing"
            )
            raise SubscriberError(f"{mask(normalized)} {said}", typed=f"{normalized} {said}")
        sub = insert(conn, store, normalized, key, name, "active" if confirmed else "pending")
        details = {**(evidence or {}), "confirmed": confirmed}
        append_event(
            conn,
            store,
            sub,
            "admin_added",
            method="admin",
            source=source,
            evidence=details,
            pseudonym=key,
        )
        return sub


def suppress(
    store: Store,
    email_or_id: str,
    *,
    reason: str,
    kind: str = "admin",
    method: str = "admin",
    source: str,
    evidence: dict[str, Any] | None = None,
) -> bool:
    """Put an address on the suppression list; False if it already was.

    ``kind`` is ``bounced`` or ``complained`` (recorded as that event; the
    reader may lift it by confirming again) or ``admin`` (recorded as an
    unsubscription; for good, and it makes a report's suppression of the
    same address for good too). An address nobody subscribed is suppressed
    too, by its keyed hash only.
    """
    if kind not in SUPPRESSION_REASONS:
        raise SubscriberError(
            f"suppression kind {kind!r} is not one of {', '.join(SUPPRESSION_REASONS)}"
        )
    with write_transaction(store) as conn:
        if "@" in email_or_id:
            key = email_key(store, normalise(email_or_id))
            row = by_key(conn, key)
        else:
            row = require(conn, email_or_id)
            key = row.email_key
        if key is None:
            return False
        if key_suppressed(conn, key):
            if kind != "admin" or not hold_for_good(conn, key):
                return False
        else:
            suppress_key(conn, key, kind)
        if row is not None:
            name = {"admin": "suppress", "bounced": "bounce", "complained": "complaint"}[kind]
            step = lifecycle.plan(name, row.status, row.id, suppressed=lambda: True)
            if step is not None:
                append_event(
                    conn,
                    store,
                    row,
                    step.event,
                    method=method,
                    source=source,
                    evidence={**(evidence or {}), "reason": reason},
                    status=step.target,
                )
        return True


def transition_in(
    conn: Connection,
    store: Store,
    subscriber_id: str,
    name: str,
    *,
    method: str,
    source: str,
    evidence: dict[str, Any],
) -> bool:
    """Apply lifecycle transition ``name`` in the caller's
    :func:`~digest.people.record.write_transaction`.

    A bounce or a complaint also puts the address's keyed hash on the
    suppression list; a confirmation takes a report's suppression off it.
    False when the transition changes nothing from the subscriber's state (see
    :mod:`digest.lifecycle`).
    """
    row = require(conn, subscriber_id)
    step = lifecycle.plan(
        name, row.status, subscriber_id, suppressed=lambda: key_blocked(conn, row.email_key)
    )
    if step is None:
        return False
    if step.target in SUPPRESSION_REASONS and row.email_key is not None:
        if not key_suppressed(conn, row.email_key):
            suppress_key(conn, row.email_key, step.target)
    append_event(
        conn,
        store,
        row,
        step.event,
        method=method,
        source=source,
        evidence=evidence,
        status=step.target,
    )
    if step.target == "active":  # after the event: the database lets it go only then
        lift_report_suppression(conn, row.email_key)
    return True
