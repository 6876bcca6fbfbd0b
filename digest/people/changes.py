"""A subscriber's lifecycle: signing up, confirming, leaving, coming back, being suppressed.

Each change is a row of the transition table in :mod:`digest.lifecycle`,
recorded as one consent event in the same transaction that caches the new
status (see :mod:`digest.people.record`)::

    signup_requested ──> pending ──confirmed──> active ──unsubscribed──> unsubscribed
                            ^                                                 │
                            └────────────── resubscribed (fresh consent) ─────┘
    imported (with a consent date) / admin_added --confirmed ──> active
    admin_added ──> pending;  bounced / complained ──> suppressed for good
    erased ──> the address, name, attributes and evidence are gone; a keyed hash stays suppressed

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
    insert,
    key_suppressed,
    require,
    suppress_key,
    write_transaction,
)
from digest.store import Store


def _refuse_suppressed(normalized: str) -> SubscriberError:
    return SubscriberError(
        f"{mask(normalized)} is on the suppression list (bounced, complained, suppressed "
        "or erased) and is never subscribed again"
    )


def request_signup(
    store: Store,
    email: str,
    name: str | None,
    *,
    method: str,
    source: str,
    evidence: dict[str, Any],
) -> Subscriber:
    """Record a sign-up request: a new or unsubscribed address becomes pending.

    An active subscriber stays active and nothing is recorded; a pending one
    records the repeated request. A suppressed address is refused.
    """
    normalized = normalise(email)
    key = email_key(store, normalized)
    with write_transaction(store) as conn:
        if key_suppressed(conn, key):
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
        elif row.status == "unsubscribed":
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
        row = require(conn, subscriber_id)
        step = lifecycle.plan(
            name, row.status, subscriber_id, suppressed=lambda: key_suppressed(conn, row.email_key)
        )
        if step is None:
            return from_row(row)
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
        return from_row(require(conn, subscriber_id))


def confirm(
    store: Store, subscriber_id: str, *, method: str, source: str, evidence: dict[str, Any]
) -> Subscriber:
    """Double opt-in: pending -> active. Confirming an active subscriber changes nothing."""
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
    """A fresh consent from an unsubscribed subscriber: back to pending until confirmed.

    Pending and active subscribers are returned unchanged; a suppressed or
    erased one is refused.
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
            raise SubscriberError(
                f"{mask(normalized)} is already a subscriber ({row.status}, id {row.id}); "
                "only the subscriber can resubscribe after unsubscribing"
            )
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
    """Put an address on the suppression list for good; False if it already was.

    ``kind`` is ``bounced`` or ``complained`` (recorded as that event) or
    ``admin`` (recorded as an unsubscription). An address nobody subscribed
    is suppressed too, by its keyed hash only.
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
        if key is None or key_suppressed(conn, key):
            return False
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
    suppression list. False when the transition changes nothing from the
    subscriber's state (see :mod:`digest.lifecycle`).
    """
    row = require(conn, subscriber_id)
    step = lifecycle.plan(
        name, row.status, subscriber_id, suppressed=lambda: key_suppressed(conn, row.email_key)
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
    return True
