"""A subscriber's record: the row, finding it, and the transaction every change takes.

Addresses are checked and normalised by :mod:`digest.addresses`. The lookup
and suppression key is the keyed HMAC of the case-folded normalised address
(:func:`email_key`), so ``IVAN@Example.com`` and ``ivan@example.com`` are one
subscriber, and a suppressed or erased address is recognised without being
stored.

A subscriber's status follows from their consent events (see
:mod:`digest.consent`); ``subscribers.status`` caches it and is updated in
the same transaction as the event that changes it (:func:`append_event`).
Every write transaction locks the chain head first
(:func:`write_transaction`), so concurrent sign-ups for one address, on any
number of processes, are applied one after another. The changes themselves
are in :mod:`digest.people.changes`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from digest import clock, consent, lifecycle
from digest.addresses import clean_name, mask, normalise
from digest.consent import Draft
from digest.errors import SubscriberError
from digest.store import Store, schema, stamp

STATUSES = lifecycle.STATUSES
SUPPRESSION_REASONS = ("admin", "bounced", "complained")  # what an operator may name
# Suppressions a report made: the reader may lift them by confirming a new sign-up.
# Any other reason (admin, erased, and an import's "unsubscribed" and "blocked": an
# opt-out at the old tool, an administrator's block or blocklist) is for good.
REPORT_REASONS = ("bounced", "complained")

subs_t = schema.subscribers
supp_t = schema.suppressions


class Subscriber(NamedTuple):
    """One subscriber. A tuple, so the audience builds a million of them cheaply."""

    id: str
    email: str | None  # None once erased
    name: str | None
    status: str
    created_at: str
    attributes_json: str = "{}"  # canonical JSON, as stored

    @property
    def attributes(self) -> dict[str, Any]:
        """The extra columns kept from an import (parsed when asked for, not per row read)."""
        return json.loads(self.attributes_json) if self.attributes_json != "{}" else {}


def new_id() -> str:
    """A random subject id: 22 URL-safe characters (about 128 bits), never starting with
    ``-``, or a command line would read it as an option (`subscribers export -Sx…`)."""
    return _no_dash(secrets.token_urlsafe(16))


def new_ids(count: int) -> list[str]:
    """``count`` random subject ids like :func:`new_id`, from one draw of randomness.

    Each takes 18 random bytes (24 base64 characters) and keeps 22 of them:
    the same length and alphabet, 132 random bits.
    """
    text = base64.urlsafe_b64encode(secrets.token_bytes(18 * count)).decode("ascii")
    return [_no_dash(text[i : i + 22]) for i in range(0, 24 * count, 24)]


def _no_dash(token: str) -> str:
    return "A" + token[1:] if token[0] == "-" else token


def email_key(store: Store, normalized: str) -> str:
    """The lookup and suppression key of a normalised address."""
    return store.pseudonym(normalized.casefold())


def from_row(row: Any) -> Subscriber:
    return Subscriber(row.id, row.email, row.name, row.status, row.created_at, row.attributes)


COLUMNS = (
    subs_t.c.id,
    subs_t.c.email,
    subs_t.c.name,
    subs_t.c.status,
    subs_t.c.created_at,
    subs_t.c.attributes,
    subs_t.c.email_key,
)


def by_id(conn: Connection, subscriber_id: str) -> Any | None:
    return conn.execute(select(*COLUMNS).where(subs_t.c.id == subscriber_id)).first()


def by_key(conn: Connection, key: str) -> Any | None:
    return conn.execute(select(*COLUMNS).where(subs_t.c.email_key == key)).first()


def require(conn: Connection, subscriber_id: str) -> Any:
    """The row of this subscriber, or a clear error."""
    row = by_id(conn, subscriber_id)
    if row is None:
        raise SubscriberError(f"no subscriber {subscriber_id}; see `digest subscribers list`")
    return row


def key_suppressed(conn: Connection, key: str | None) -> bool:
    """True when this key is on the suppression list."""
    if key is None:
        return False
    return conn.execute(select(supp_t.c.key).where(supp_t.c.key == key)).first() is not None


def key_blocked(conn: Connection, key: str | None) -> bool:
    """True when this key is suppressed for good (not by a report the reader may lift)."""
    if key is None:
        return False
    found = conn.execute(select(supp_t.c.reason).where(supp_t.c.key == key)).scalar()
    return found is not None and found not in REPORT_REASONS


def get_subscriber(store: Store, subscriber_id: str) -> Subscriber | None:
    with store.read() as conn:
        row = by_id(conn, subscriber_id)
    return from_row(row) if row else None


def find_by_email(store: Store, email: str) -> Subscriber | None:
    key = email_key(store, normalise(email))
    with store.read() as conn:
        row = by_key(conn, key)
    return from_row(row) if row else None


def lookup(store: Store, email_or_id: str) -> Subscriber:
    """The subscriber with this address or id, or a clear error."""
    found = (
        find_by_email(store, email_or_id)
        if "@" in email_or_id
        else get_subscriber(store, email_or_id)
    )
    if found is None:
        shown = mask(email_or_id) if "@" in email_or_id else email_or_id
        raise SubscriberError(
            f"no subscriber {shown}; see `digest subscribers list`",
            typed=f"no subscriber {email_or_id}; see `digest subscribers list`",
        )
    return found


def is_suppressed(store: Store, email_or_id: str) -> bool:
    """True when the address (or the subscriber's address) is on the suppression list."""
    with store.read() as conn:
        if "@" in email_or_id:
            return key_suppressed(conn, email_key(store, normalise(email_or_id)))
        row = by_id(conn, email_or_id)
        if row is None:
            return False
        return row.status == "erased" or key_suppressed(conn, row.email_key)


def list_subscribers(
    store: Store, status: str | None = None, batch_size: int = 1000
) -> Iterator[Subscriber]:
    """Every subscriber (or those with ``status``; ``suppressed`` for the suppressed), by id."""
    if status is not None and status not in (*STATUSES, "suppressed"):
        raise SubscriberError(
            f"status {status!r} is not one of {', '.join((*STATUSES, 'suppressed'))}"
        )
    query = select(*COLUMNS).order_by(subs_t.c.id).limit(batch_size)
    if status == "suppressed":
        query = query.where(select(supp_t.c.key).where(supp_t.c.key == subs_t.c.email_key).exists())
    elif status is not None:
        query = query.where(subs_t.c.status == status)
    last = ""
    with store.read() as conn:
        while True:
            rows = conn.execute(query.where(subs_t.c.id > last)).all()
            yield from (from_row(row) for row in rows)
            if len(rows) < batch_size:
                return
            last = rows[-1].id


# writing, inside a write transaction (the bounce policy records its report in the same one)


@contextlib.contextmanager
def write_transaction(store: Store) -> Iterator[Connection]:
    """A write transaction with the chain head locked first, as every change takes."""
    with store.begin() as conn:
        consent.lock_head(conn, store.dialect)
        yield conn


def find_in(
    conn: Connection, store: Store, *, subscriber_id: str = "", address: str = ""
) -> Subscriber | None:
    """The subscriber with this id (or else this address), read in ``conn``."""
    row = by_id(conn, subscriber_id) if subscriber_id else None
    if row is None and address:
        try:
            row = by_key(conn, email_key(store, normalise(address)))
        except SubscriberError:
            row = None
    return from_row(row) if row else None


def insert(
    conn: Connection,
    store: Store,
    normalized: str,
    key: str,
    name: str | None,
    status: str,
    attributes: dict[str, Any] | None = None,
) -> Subscriber:
    """A new subscriber's row (their first event is the caller's to append)."""
    now = stamp(clock.now())
    sub = Subscriber(
        new_id(),
        normalized,
        clean_name(name) or None,  # the form's, the CLI's: one rule for every name
        status,
        now,
        consent.canonical(attributes or {}),
    )
    conn.execute(
        subs_t.insert().values(
            id=sub.id,
            email=normalized,
            email_key=key,
            name=sub.name,
            status=status,
            created_at=now,
            updated_at=now,
            attributes=sub.attributes_json,
        )
    )
    return sub


def append_event(
    conn: Connection,
    store: Store,
    row: Any,
    kind: str,
    *,
    method: str,
    source: str,
    evidence: dict[str, Any] | None,
    pseudonym: str | None = None,
    status: str | None = None,
) -> None:
    """Append one event for a subscriber and, with ``status``, cache the new status."""
    pseudonym = pseudonym or _pseudonym_of(conn, row.id)
    consent.append(conn, store, [Draft(kind, row.id, pseudonym, method, source, evidence or {})])
    if status is not None:
        conn.execute(
            subs_t.update()
            .where(subs_t.c.id == row.id)
            .values(status=status, updated_at=stamp(clock.now()))
        )


def _pseudonym_of(conn: Connection, subject_id: str) -> str:
    """The pseudonym the subject's first event recorded (kept after erasure)."""
    found = conn.execute(
        select(consent.events_t.c.pseudonym)
        .where(consent.events_t.c.subject_id == subject_id)
        .order_by(consent.events_t.c.seq)
        .limit(1)
    ).scalar()
    if found is None:  # pragma: no cover - every subscriber is created with an event
        raise SubscriberError(f"subscriber {subject_id} has no consent events")
    return str(found)


def suppress_key(conn: Connection, key: str, kind: str, at: str = "") -> None:
    """Put a key on the suppression list (the caller checked it is not there yet).

    ``at``: when the address was opted out, if earlier than now (an import's
    unsubscribe time at the old tool); now by default.
    """
    conn.execute(supp_t.insert().values(key=key, reason=kind, created_at=at or stamp(clock.now())))


def lift_report_suppression(conn: Connection, key: str | None) -> bool:
    """Take a key off the suppression list if a report put it there; whether it was."""
    if key is None:
        return False
    lifted = conn.execute(
        supp_t.delete().where(supp_t.c.key == key, supp_t.c.reason.in_(REPORT_REASONS))
    )
    return bool(lifted.rowcount)


def hold_for_good(conn: Connection, key: str) -> bool:
    """Make a report's suppression of ``key`` the operator's, which no reader lifts."""
    changed = conn.execute(
        supp_t.update()
        .where(supp_t.c.key == key, supp_t.c.reason.in_(REPORT_REASONS))
        .values(reason="admin")
    )
    return bool(changed.rowcount)
