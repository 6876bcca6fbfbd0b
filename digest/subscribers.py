"""Subscribers: addresses, lifecycle, import, export, erasure and the audience.

A subscriber's status follows from their consent events (see
:mod:`digest.consent`); ``subscribers.status`` caches it and is updated in
the same transaction as the event that changes it::

    signup_requested ──> pending ──confirmed──> active ──unsubscribed──> unsubscribed
                            ^                                                 │
                            └────────────── resubscribed (fresh consent) ─────┘
    imported (with a consent date) / admin_added --confirmed ──> active
    admin_added ──> pending;  bounced / complained ──> suppressed for good
    erased ──> the address, name, attributes and evidence are gone; a keyed hash stays suppressed

Every status change is a row of the transition table in :mod:`digest.lifecycle`.

Every write transaction locks the chain head first, so concurrent sign-ups
for one address, on any number of processes, are applied one after another.

Addresses are checked and normalised by :mod:`digest.addresses`. The lookup
and suppression key is the keyed HMAC of the case-folded normalised address, so ``IVAN@Example.com``
and ``ivan@example.com`` are one subscriber, and a suppressed or erased
address is recognised without being stored.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import ipaddress
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, select

from digest import clock, consent, lifecycle
from digest.addresses import clean_name, mask, normalise
from digest.atomic import write_text
from digest.consent import Draft
from digest.csvfile import CsvFile
from digest.errors import ConfigError, CsvFileError, DigestError, SubscriberError
from digest.store import Store, schema, stamp
from digest.workspace import outbox_file_name

STATUSES = lifecycle.STATUSES
SUPPRESSION_REASONS = ("admin", "bounced", "complained")

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
    """A random subject id: 22 URL-safe characters (128 bits)."""
    return secrets.token_urlsafe(16)


def new_ids(count: int) -> list[str]:
    """``count`` random subject ids like :func:`new_id`, from one draw of randomness.

    Each takes 18 random bytes (24 base64 characters) and keeps 22 of them:
    the same length and alphabet, 132 random bits.
    """
    text = base64.urlsafe_b64encode(secrets.token_bytes(18 * count)).decode("ascii")
    return [text[i : i + 22] for i in range(0, 24 * count, 24)]


def _key(store: Store, normalized: str) -> str:
    return store.pseudonym(normalized.casefold())


def _from_row(row: Any) -> Subscriber:
    return Subscriber(row.id, row.email, row.name, row.status, row.created_at, row.attributes)


_COLUMNS = (
    subs_t.c.id,
    subs_t.c.email,
    subs_t.c.name,
    subs_t.c.status,
    subs_t.c.created_at,
    subs_t.c.attributes,
    subs_t.c.email_key,
)


def _by_id(conn: Connection, subscriber_id: str) -> Any | None:
    return conn.execute(select(*_COLUMNS).where(subs_t.c.id == subscriber_id)).first()


def _by_key(conn: Connection, key: str) -> Any | None:
    return conn.execute(select(*_COLUMNS).where(subs_t.c.email_key == key)).first()


def _suppressed(conn: Connection, key: str | None) -> bool:
    if key is None:
        return False
    return conn.execute(select(supp_t.c.key).where(supp_t.c.key == key)).first() is not None


def get_subscriber(store: Store, subscriber_id: str) -> Subscriber | None:
    with store.read() as conn:
        row = _by_id(conn, subscriber_id)
    return _from_row(row) if row else None


def find_by_email(store: Store, email: str) -> Subscriber | None:
    key = _key(store, normalise(email))
    with store.read() as conn:
        row = _by_key(conn, key)
    return _from_row(row) if row else None


def lookup(store: Store, email_or_id: str) -> Subscriber:
    """The subscriber with this address or id, or a clear error."""
    found = (
        find_by_email(store, email_or_id)
        if "@" in email_or_id
        else get_subscriber(store, email_or_id)
    )
    if found is None:
        shown = mask(email_or_id) if "@" in email_or_id else email_or_id
        raise SubscriberError(f"no subscriber {shown}; see `digest subscribers list`")
    return found


def is_suppressed(store: Store, email_or_id: str) -> bool:
    """True when the address (or the subscriber's address) is on the suppression list."""
    with store.read() as conn:
        if "@" in email_or_id:
            return _suppressed(conn, _key(store, normalise(email_or_id)))
        row = _by_id(conn, email_or_id)
        if row is None:
            return False
        return row.status == "erased" or _suppressed(conn, row.email_key)


# lifecycle ------------------------------------------------------------------------


def _event(
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


def _insert(
    conn: Connection,
    store: Store,
    normalized: str,
    key: str,
    name: str | None,
    status: str,
    attributes: dict[str, Any] | None = None,
) -> Subscriber:
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


@contextlib.contextmanager
def _write(store: Store) -> Iterator[Connection]:
    """A write transaction with the chain head locked first (see the module docstring)."""
    with store.begin() as conn:
        consent.lock_head(conn, store.dialect)
        yield conn


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
    key = _key(store, normalized)
    with _write(store) as conn:
        if _suppressed(conn, key):
            raise _refuse_suppressed(normalized)
        row = _by_key(conn, key)
        if row is None:
            sub = _insert(conn, store, normalized, key, name, "pending")
            _event(
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
            return _from_row(row)
        if row.status == "pending":
            _event(
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
            _event(
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
        return _from_row(_require(conn, row.id))


def _require(conn: Connection, subscriber_id: str) -> Any:
    row = _by_id(conn, subscriber_id)
    if row is None:
        raise SubscriberError(f"no subscriber {subscriber_id}; see `digest subscribers list`")
    return row


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
    with _write(store) as conn:
        row = _require(conn, subscriber_id)
        step = lifecycle.plan(
            name, row.status, subscriber_id, suppressed=lambda: _suppressed(conn, row.email_key)
        )
        if step is None:
            return _from_row(row)
        _event(
            conn,
            store,
            row,
            step.event,
            method=method,
            source=source,
            evidence=evidence,
            status=step.target,
        )
        return _from_row(_require(conn, subscriber_id))


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
    key = _key(store, normalized)
    with _write(store) as conn:
        if _suppressed(conn, key):
            raise _refuse_suppressed(normalized)
        row = _by_key(conn, key)
        if row is not None:
            raise SubscriberError(
                f"{mask(normalized)} is already a subscriber ({row.status}, id {row.id}); "
                "only the subscriber can resubscribe after unsubscribing"
            )
        sub = _insert(conn, store, normalized, key, name, "active" if confirmed else "pending")
        details = {**(evidence or {}), "confirmed": confirmed}
        _event(
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
    with _write(store) as conn:
        if "@" in email_or_id:
            key = _key(store, normalise(email_or_id))
            row = _by_key(conn, key)
        else:
            row = _require(conn, email_or_id)
            key = row.email_key
        if key is None or _suppressed(conn, key):
            return False
        _suppress_key(conn, key, kind)
        if row is not None:
            name = {"admin": "suppress", "bounced": "bounce", "complained": "complaint"}[kind]
            step = lifecycle.plan(name, row.status, row.id, suppressed=lambda: True)
            if step is not None:
                _event(
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


def _suppress_key(conn: Connection, key: str, kind: str) -> None:
    conn.execute(supp_t.insert().values(key=key, reason=kind, created_at=stamp(clock.now())))


# inside a caller's write transaction (the bounce policy records its report in the same one)


def write_transaction(store: Store) -> contextlib.AbstractContextManager[Connection]:
    """A write transaction with the chain head locked, as every lifecycle change takes."""
    return _write(store)


def find_in(
    conn: Connection, store: Store, *, subscriber_id: str = "", address: str = ""
) -> Subscriber | None:
    """The subscriber with this id (or else this address), read in ``conn``."""
    row = _by_id(conn, subscriber_id) if subscriber_id else None
    if row is None and address:
        try:
            row = _by_key(conn, _key(store, normalise(address)))
        except SubscriberError:
            row = None
    return _from_row(row) if row else None


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
    """Apply lifecycle transition ``name`` in the caller's :func:`write_transaction`.

    A bounce or a complaint also puts the address's keyed hash on the
    suppression list. False when the transition changes nothing from the
    subscriber's state (see :mod:`digest.lifecycle`).
    """
    row = _require(conn, subscriber_id)
    step = lifecycle.plan(
        name, row.status, subscriber_id, suppressed=lambda: _suppressed(conn, row.email_key)
    )
    if step is None:
        return False
    if step.target in SUPPRESSION_REASONS and row.email_key is not None:
        if not _suppressed(conn, row.email_key):
            _suppress_key(conn, row.email_key, step.target)
    _event(
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


# reading ---------------------------------------------------------------------------


_MAILABLE = (
    " FROM subscribers WHERE status = 'active'"
    " AND NOT EXISTS (SELECT 1 FROM suppressions WHERE suppressions.key = subscribers.email_key)"
)
_AUDIENCE = "SELECT id, email, name, status, created_at, attributes" + _MAILABLE + " ORDER BY id"
# The audience's ids as one SELECT, for a statement that copies them in the database.
AUDIENCE_IDS = "SELECT id" + _MAILABLE


def audience_count(store: Store) -> int:
    """How many :func:`audience` would stream, counted by the database."""
    with store.read() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*)" + _MAILABLE).scalar_one())


def audience(store: Store, batch_size: int = 1000) -> Iterator[Subscriber]:
    """Stream the mailable audience: active (confirmed), not suppressed, by id.

    One query in one read transaction (one consistent snapshot), read
    ``batch_size`` rows at a time: a server-side cursor on PostgreSQL, a
    stepping cursor on SQLite, so memory stays flat whatever the list's size.
    The driver's rows become :class:`Subscriber` tuples directly; attributes
    are parsed only when asked for.
    """
    make = Subscriber._make
    with store.read() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        if store.dialect == "postgresql":
            cursor = driver.cursor(name=f"digest_audience_{secrets.token_hex(4)}")
            cursor.itersize = batch_size
        else:
            cursor = driver.cursor()
        try:
            cursor.execute(_AUDIENCE)
            while rows := cursor.fetchmany(batch_size):
                yield from map(make, rows)
        finally:
            cursor.close()


def list_subscribers(
    store: Store, status: str | None = None, batch_size: int = 1000
) -> Iterator[Subscriber]:
    """Every subscriber (or those with ``status``; ``suppressed`` for the suppressed), by id."""
    if status is not None and status not in (*STATUSES, "suppressed"):
        raise SubscriberError(
            f"status {status!r} is not one of {', '.join((*STATUSES, 'suppressed'))}"
        )
    query = select(*_COLUMNS).order_by(subs_t.c.id).limit(batch_size)
    if status == "suppressed":
        query = query.where(select(supp_t.c.key).where(supp_t.c.key == subs_t.c.email_key).exists())
    elif status is not None:
        query = query.where(subs_t.c.status == status)
    last = ""
    with store.read() as conn:
        while True:
            rows = conn.execute(query.where(subs_t.c.id > last)).all()
            yield from (_from_row(row) for row in rows)
            if len(rows) < batch_size:
                return
            last = rows[-1].id


def stats(store: Store) -> dict[str, int]:
    """Counts by status, plus the suppression list, the audience and the ledger's length."""
    with store.read() as conn:
        counts = dict.fromkeys(STATUSES, 0)
        for status, count in conn.execute(
            select(subs_t.c.status, func.count()).group_by(subs_t.c.status)
        ):
            counts[status] = int(count)
        counts["suppressed"] = int(
            conn.execute(select(func.count()).select_from(supp_t)).scalar_one()
        )
        counts["events"] = int(conn.execute(select(schema.chain_head.c.seq)).scalar_one())
    counts["audience"] = sum(1 for _ in audience(store, batch_size=10_000))
    return counts


def history(store: Store, subscriber: Subscriber) -> list[consent.Event]:
    with store.read() as conn:
        return consent.history(conn, subscriber.id)


def show(store: Store, email_or_id: str) -> dict[str, Any]:
    """A subscriber and their whole consent history, for the operator who asked."""
    sub = lookup(store, email_or_id)
    texts = consent.texts(store)
    return {
        "subscriber": _profile(sub),
        "suppressed": is_suppressed(store, sub.id),
        "events": [_event_dict(event, texts) for event in history(store, sub)],
    }


def _profile(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "created_at": sub.created_at,
        "attributes": sub.attributes,
    }


def _event_dict(event: consent.Event, texts: dict[int, consent.Text]) -> dict[str, Any]:
    statement, policy = texts[event.statement_id], texts[event.policy_id]
    return {
        "seq": event.seq,
        "at": event.occurred_at,
        "event": event.kind,
        "method": event.method,
        "source": event.source,
        "statement": {
            "version": statement.version,
            "text": statement.body,
            "sha256": statement.sha256,
        },
        "policy": {"version": policy.version, "url": policy.url, "sha256": policy.sha256},
        "evidence": event.evidence,
        "evidence_sha256": event.evidence_sha256,
        "hash": event.hash,
    }


RETENTION = {
    "consent events": "kept for as long as we must prove consent (GDPR Art. 7(1)); they name you "
    "only by a random id and a keyed pseudonym of your address",
    "evidence": "kept with the events to prove consent; deleted when you ask for erasure",
    "profile": "kept while you are subscribed, to send the newsletter; deleted on erasure",
    "suppression entry": "after an unsubscribe by bounce or complaint, or an erasure, a keyed hash "
    "of your address is kept so that it is never mailed again by accident",
}


def export(store: Store, email_or_id: str, *, source: str) -> dict[str, Any]:
    """Everything held about one subscriber (GDPR Art. 15/20); records ``exported``."""
    sub = lookup(store, email_or_id)
    with _write(store) as conn:
        _event(conn, store, sub, "exported", method="admin", source=source, evidence={})
    data = show(store, sub.id)
    return {
        "exported_at": stamp(clock.now()),
        "newsletter": store.workspace.config.newsletter.name,
        "profile": data["subscriber"],
        "suppressed": data["suppressed"],
        "consent_events": data["events"],
        "deliveries": [],  # filled by the deliveries ledger once sending exists
        "retention": RETENTION,
    }


def export_to_file(store: Store, email_or_id: str, path: Path, *, source: str) -> Path:
    """:func:`export` written to ``path`` (mode 600), remembered so that erasure deletes it."""
    data = export(store, email_or_id, source=source)
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=0o600)
    record = store.workspace.exports_record
    written = _exports(record)
    paths = written.setdefault(data["profile"]["id"], [])
    if str(path.resolve()) not in paths:
        paths.append(str(path.resolve()))
    write_text(record, json.dumps(written, indent=1) + "\n", mode=0o600)
    return path


LIST_EXPORTS = "*"  # the key of the exports record under which whole-list exports are kept


def remember_list_export(store: Store, path: Path) -> None:
    """Note a whole-list export, so that erasing anyone in it rewrites it without them."""
    record = store.workspace.exports_record
    written = _exports(record)
    paths = written.setdefault(LIST_EXPORTS, [])
    if str(path.resolve()) not in paths:
        paths.append(str(path.resolve()))
    write_text(record, json.dumps(written, indent=1) + "\n", mode=0o600)


def _without(path: Path, subscriber_id: str) -> bool:
    """Rewrite a whole-list export (CSV with an ``id`` column, or a JSON array of
    objects with ``id``) without one subscriber's row; whether the row was there."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        rows = json.loads(text)
        kept = [row for row in rows if row.get("id") != subscriber_id]
        if len(kept) == len(rows):
            return False
        body = (
            "[" + ",\n".join("\n" + json.dumps(row) for row in kept) + ("\n]\n" if kept else "]\n")
        )
    else:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        kept = [row for row in rows if not row or row[0].lstrip("'") != subscriber_id]
        if len(kept) == len(rows):
            return False
        out = io.StringIO(newline="")
        csv.writer(out).writerows(kept)
        body = out.getvalue()
    write_text(path, body, mode=0o600)
    return True


def _exports(record: Path) -> dict[str, list[str]]:
    try:
        loaded = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SubscriberError(
            f"{record}: cannot read the record of export files ({exc}); "
            "fix or delete it (it lists files `subscribers export -o` wrote)"
        ) from None
    return loaded if isinstance(loaded, dict) else {}


def _erase_files(store: Store, subscriber_id: str) -> tuple[list[str], list[str]]:
    """Delete what digest wrote for one subscriber under the workspace.

    The outbox copies (every issue's folder and ``outbox/confirmations``,
    named by id), the export files on record, and their row in whole-list
    exports. Returns the deleted paths
    (relative to the workspace) and the exports outside it, left for the
    operator to delete.
    """
    ws = store.workspace
    root = ws.root.resolve()
    deleted: list[str] = []
    outside: list[str] = []
    candidates: list[Path] = []
    if ws.outbox_dir.is_dir():
        name = outbox_file_name(subscriber_id)
        candidates += [
            folder / name for folder in sorted(ws.outbox_dir.iterdir()) if folder.is_dir()
        ]
    record = ws.exports_record
    written = _exports(record)
    for text in written.pop(subscriber_id, []):
        path = Path(text)
        if path.is_relative_to(root):
            candidates.append(path)
        elif path.exists():
            outside.append(text)
    for path in candidates:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(path.resolve().relative_to(root).as_posix())
    for text in written.get(LIST_EXPORTS, []):
        path = Path(text)
        if not path.exists():
            continue
        if not path.is_relative_to(root):
            outside.append(text)
        elif _without(path, subscriber_id):
            deleted.append(f"{path.relative_to(root).as_posix()} (their row)")
    if record.exists():
        write_text(record, json.dumps(written, indent=1) + "\n", mode=0o600)
    return deleted, outside


def erase(store: Store, email_or_id: str, *, source: str) -> dict[str, Any]:
    """Erase a subscriber (GDPR Art. 17) and return a receipt of what went and what stayed.

    Deleted: address, name, attributes and every piece of evidence. Kept: the
    pseudonymous consent events (the chain still verifies) and a suppression
    entry holding only the keyed hash, so the address is never re-added.
    On SQLite the file is then checkpointed and truncated so no old copy of
    the address survives in the WAL; ``secure_delete`` zeroes freed space.
    """
    sub = lookup(store, email_or_id)
    if sub.status == "erased":
        raise SubscriberError(f"subscriber {sub.id} is already erased")
    with _write(store) as conn:
        row = _require(conn, sub.id)
        key = row.email_key
        _event(conn, store, row, "erased", method="admin", source=source, evidence={})
        seqs = select(consent.events_t.c.seq).where(consent.events_t.c.subject_id == sub.id)
        deleted = conn.execute(
            consent.evidence_t.delete().where(consent.evidence_t.c.seq.in_(seqs))
        )
        events = len(conn.execute(seqs).all())
        # Bounce reports keep counting, but no longer say whose domain or reply they were.
        reports_t = schema.bounce_reports
        conn.execute(
            reports_t.update()
            .where(reports_t.c.subscriber_id == sub.id)
            .values(reason="", domain="")
        )
        if key is not None and not _suppressed(conn, key):
            conn.execute(
                supp_t.insert().values(key=key, reason="erased", created_at=stamp(clock.now()))
            )
        conn.execute(
            subs_t.update()
            .where(subs_t.c.id == sub.id)
            .values(
                email=None,
                email_key=None,
                name=None,
                attributes="{}",
                status="erased",
                updated_at=stamp(clock.now()),
            )
        )
    _scrub(store)
    files, outside = _erase_files(store, sub.id)
    return {
        "subscriber": sub.id,
        "erased_at": stamp(clock.now()),
        "deleted": {
            "address": True,
            "name": sub.name is not None,
            "attributes": len(sub.attributes),
            "evidence records": deleted.rowcount,
            "files": files,
        },
        "kept": {
            "files outside the workspace": outside,
            "consent events": f"{events} pseudonymous events (random id and keyed hash only), "
            "so the ledger still verifies",
            "suppression entry": "a keyed hash of the address: never mailed or imported again",
        },
    }


def _scrub(store: Store) -> None:
    """Leave no old copy of erased data in the database files."""
    if store.dialect == "sqlite":
        raw = store.engine.raw_connection()  # outside any transaction
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    else:
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM subscribers, consent_evidence")


# import ----------------------------------------------------------------------------

REQUIRED = ("email", "consented_at", "policy_version")
KNOWN = ("email", "name", "consented_at", "source", "policy_version", "ip")
_BATCH = 20_000
_MAX_LISTED = 200


@dataclass
class ImportReport:
    path: str
    rows: int = 0
    imported: int = 0
    merged: int = 0
    suppressed: int = 0
    invalid: int = 0
    written: bool = False
    dry_run: bool = False
    problems: list[str] = field(default_factory=list)  # "line N: ..." for bad rows
    notes: list[str] = field(default_factory=list)  # merged duplicates and suppressed rows
    delimiter: str = "comma"

    def note(self, target: list[str], line: str) -> None:
        if len(target) < _MAX_LISTED:
            target.append(line)

    def in_file_order(self) -> list[str]:
        """Bad rows and notes together, by line number, as the file has them."""
        return sorted(self.problems + self.notes, key=_line_number)


def _line_number(text: str) -> int:
    match = re.match(r"line (\d+):", text)
    return int(match.group(1)) if match else 0


class _Abort(Exception):
    """Rolls the import's transaction back (dry run, or bad rows without --skip-invalid)."""


def import_csv(
    store: Store,
    path: Path,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    source: str | None = None,
    policy_version: str | None = None,
) -> ImportReport:
    """Import subscribers who consented elsewhere, all or nothing.

    Every bad row (invalid address, missing or unreadable consent date,
    unknown policy version) is reported with its line number and nothing is
    written, unless ``skip_invalid``. Duplicates in the file and against the
    store are merged (the first consent is kept); suppressed addresses are
    never re-added. One transaction, batched inserts and one bulk chain
    append per batch. ``policy_version`` stands in for a missing
    ``policy_version`` column (and for empty cells of one).
    """
    report = ImportReport(str(path), dry_run=dry_run)
    source = source or path.name
    try:
        with CsvFile(path) as file, _write(store) as conn:
            report.delimiter = file.delimiter_name
            _run_import(conn, store, file, report, source, skip_invalid, policy_version)
            if dry_run or (report.invalid and not skip_invalid):
                raise _Abort
            report.written = True
    except _Abort:
        pass
    except CsvFileError as exc:
        raise SubscriberError(str(exc)) from None
    return report


def _run_import(
    conn: Connection,
    store: Store,
    file: CsvFile,
    report: ImportReport,
    source: str,
    skip_invalid: bool,
    policy_version: str | None,
) -> None:
    header = file.header
    consent.texts_in_force(conn, store.workspace.config)
    policies = consent.policy_ids(conn)
    known = ", ".join(sorted(policies))
    if policy_version is not None and policy_version not in policies:
        raise SubscriberError(
            f"--policy-version {policy_version!r} is unknown (known: {known}); "
            "set [privacy] policy_version to record a new one"
        )
    if "email" not in header:
        found = ", ".join(repr(h) for h in header if h) or "none"
        raise SubscriberError(
            f"{report.path}:1: no `email` column; read with a {file.delimiter_name} as the "
            f"delimiter, the header has the columns {found}; expected {', '.join(KNOWN)} "
            "(others are kept as attributes)"
        )
    needed = [n for n in REQUIRED if n not in header]
    if policy_version is not None and "policy_version" in needed:
        needed.remove("policy_version")
    if needed:
        way = (
            f"; add the column, or pass --policy-version V (known: {known})"
            if needed == ["policy_version"]
            else ""
        )
        raise SubscriberError(
            f"{report.path}:1: the header lacks {', '.join(needed)}; "
            f"expected columns {', '.join(KNOWN)} (others are kept as attributes){way}"
        )
    if policy_version is not None and "policy_version" not in header:
        header = [*header, "policy_version"]  # a column of its own, filled by _check_row
    columns = _Columns.of(header)
    width = len(header)
    batch: dict[str, _Pending] = {}
    duplicates: dict[str, list[int]] = {}  # key -> later lines of an address in this batch
    start_seq, _ = consent.lock_head(conn, store.dialect)  # events after it are this import's
    pseudonym = store.pseudonym
    write = True
    previous_line = file.line
    for row in file.rows:
        line, previous_line = previous_line + 1, file.line
        try:
            address, consented = _check_row(row, width, columns, policies, policy_version)
        except SubscriberError as exc:
            if not "".join(row).strip():
                continue  # a blank line (it has no address, so only a failed row can be one)
            report.rows += 1
            report.invalid += 1
            report.note(report.problems, f"line {line}: {exc}")
            write = skip_invalid  # the import will be rolled back: only keep checking
            continue
        report.rows += 1
        key = pseudonym(address.casefold())
        if key in batch:
            duplicates.setdefault(key, []).append(line)
            continue
        batch[key] = (line, address, row, consented)
        if len(batch) >= _BATCH:
            _flush(
                conn,
                store,
                batch,
                duplicates,
                report,
                source,
                columns,
                policies,
                start_seq,
                write=write,
            )
            batch, duplicates = {}, {}
    _flush(
        conn, store, batch, duplicates, report, source, columns, policies, start_seq, write=write
    )


# A checked row waiting for its batch: line, normalised address, cells, consent stamp.
_Pending = tuple[int, str, list[str], str]


class _Columns(NamedTuple):
    """Where each known column sits; an absent optional one points at the padding cell."""

    email: int
    name: int
    consented_at: int
    source: int
    policy_version: int
    ip: int
    extras: tuple[tuple[int, str], ...]  # (index, name) kept as attributes; by name, the last

    @classmethod
    def of(cls, header: list[str]) -> _Columns:
        pad = len(header)
        where = {name: header.index(name) if name in header else pad for name in KNOWN}
        last = {name: i for i, name in enumerate(header) if name not in KNOWN and name}
        return cls(**where, extras=tuple(sorted(((i, n) for n, i in last.items()), key=_second)))


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _second(pair: tuple[int, str]) -> str:
    return pair[1]


_PLAIN_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _instant(text: str) -> str:
    """An ISO-8601 time as a stored UTC stamp; the common ``…Z`` form without strftime."""
    if _PLAIN_UTC.fullmatch(text):
        datetime.fromisoformat(text[:19])  # the calendar check (month 13, 30 February)
        return text[:19] + ".000000Z"
    return stamp(clock.parse_instant(text).astimezone(UTC))


def _check_row(
    row: list[str],
    width: int,
    columns: _Columns,
    policies: dict[str, int],
    default_policy: str | None = None,
) -> tuple[str, str]:
    """Check and normalise one row; pad it to ``width + 1`` cells (see :class:`_Columns`)."""
    count = len(row)
    if count > width:
        raise SubscriberError(f"{count} fields but the header has {width}")
    row += [""] * (width + 1 - count)
    raw = row[columns.email].strip()
    if not raw:
        raise SubscriberError("no email address")
    if "\ufffd" in raw:
        raise SubscriberError(
            "the address holds U+FFFD replacement characters (\ufffd): the file lost letters "
            "in a conversion from another encoding; export it again as UTF-8"
        )
    address = normalise(raw)
    ip = row[columns.ip].strip()
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise SubscriberError(
                f"{mask(address)}: ip {ip[:60]!r} is not an IPv4 or IPv6 address"
            ) from None
    when = row[columns.consented_at].strip()
    if not when:
        raise SubscriberError(f"{mask(address)} has no consent date (consented_at)")
    try:
        consented = _instant(when)
    except (ConfigError, ValueError):
        raise SubscriberError(
            f"consented_at {when!r} is not an ISO-8601 time (write e.g. 2026-10-02T08:15:00Z)"
        ) from None
    if default_policy is not None and not row[columns.policy_version].strip():
        row[columns.policy_version] = default_policy  # after the checks, so a blank line stays one
    policy = row[columns.policy_version].strip()
    if policy not in policies:
        raise SubscriberError(
            f"policy_version {policy!r} is unknown (known: {', '.join(sorted(policies))}); "
            "set [privacy] policy_version to record a new one"
        )
    return address, consented


def _flush(
    conn: Connection,
    store: Store,
    batch: dict[str, _Pending],
    duplicates: dict[str, list[int]],
    report: ImportReport,
    source: str,
    columns: _Columns,
    policies: dict[str, int],
    start_seq: int,
    *,
    write: bool,
) -> None:
    if not batch:
        return
    keys = list(batch)
    suppressed = _present(conn, store.dialect, "suppressions", "key", keys)
    existing = _present(conn, store.dialect, "subscribers", "email_key", keys)
    ours = _created_since(conn, existing, start_seq) if existing else set()
    fresh: list[tuple[str, _Pending]] = []
    for key, item in batch.items():
        later = duplicates.get(key, ())
        if not later and key not in suppressed and key not in existing:
            fresh.append((key, item))  # the common case: new, once in the file
            continue
        line, shown = item[0], mask(item[1])
        if key in suppressed:
            report.suppressed += 1 + len(later)
            for each in (line, *later):
                report.note(report.notes, f"line {each}: {shown} is suppressed; not added")
            continue
        report.merged += len(later)
        for each in later:
            report.note(
                report.notes,
                f"line {each}: {shown} merged into line {line} "
                "(duplicate in the file; the first consent is kept)",
            )
        if key in existing:
            report.merged += 1
            where = "an earlier line" if key in ours else "an existing subscriber"
            report.note(
                report.notes,
                f"line {line}: {shown} merged into {where} (the first consent is kept)",
            )
            continue
        fresh.append((key, item))
    report.imported += len(fresh)
    if write and fresh:
        _write_imported(conn, store, fresh, source, columns, policies)


# One JSON string as canonical() spells it (ensure_ascii=False): the json module's
# own C escaper, called directly rather than through an encoder object per value.
_text = json.encoder.encode_basestring


def _write_imported(
    conn: Connection,
    store: Store,
    fresh: list[tuple[str, _Pending]],
    source: str,
    columns: _Columns,
    policies: dict[str, int],
) -> None:
    """Insert the batch's new subscribers and their ``imported`` events with evidence.

    The evidence is spelled here directly, key by key in sorted order, byte for
    byte what :func:`~digest.consent.canonical` makes of the same dict (a test
    holds it to that), without building and sorting a dict per row.

    The rows go in by pseudonym, and the batch's random ids are drawn at once
    and handed out in sorted order, so every index (address key, id, status
    and id, the events' subject) grows in order within the batch instead of
    at random pages: with a million rows the indexes outgrow SQLite's cache,
    and random inserts would read and spill a page each. The events of one
    batch follow that order too; each holds its CSV line in its evidence.
    """
    fresh.sort(key=_first)
    now = stamp(clock.now())
    text = _text
    file = text(source)
    name_at, source_at, ip_at, policy_at = (
        columns.name,
        columns.source,
        columns.ip,
        columns.policy_version,
    )
    extras = [(i, text(label)) for i, label in columns.extras]  # (index, JSON name), sorted
    rows: list[tuple[Any, ...]] = []
    items: list[tuple[str, str, int, str]] = []
    for sid, (key, (line, address, row, consented)) in zip(
        sorted(new_ids(len(fresh))), fresh, strict=True
    ):
        given = row[name_at].strip()  # the evidence keeps the file's cell
        name = clean_name(given) or None
        policy = row[policy_at].strip()
        if extras and (kept_cells := [f"{label}:{text(row[i])}" for i, label in extras if row[i]]):
            kept = f"{{{','.join(kept_cells)}}}"
            opening = f'{{"attributes":{kept},'
        else:
            kept, opening = "{}", "{"
        rows.append((sid, address, key, name, "active", now, now, kept))
        evidence = (
            f'{opening}"consented_at":"{consented}","email":{text(address)},"file":{file},'
            f'"ip":{text(row[ip_at].strip())},"line":{line},'
            f'"name":{text(given) if given else "null"},"policy_version":{text(policy)},'
            f'"source":{text(row[source_at].strip())}}}'
        )
        items.append((sid, key, policies[policy], evidence))
    consent.bulk_insert(conn, store.dialect, "subscribers", _SUBSCRIBER_COLUMNS, rows)
    consent.append_many(conn, store, "imported", "import", source, items)


def _present(conn: Connection, dialect: str, table: str, column: str, keys: list[str]) -> set[str]:
    """Those of ``keys`` (hex digests) found in ``table.column``: one query, one parameter.

    The keys travel as one text (comma-joined, or a JSON array on SQLite),
    not as thousands of bound values or an array adapted element by element.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if dialect == "postgresql":
            cursor.execute(
                f"SELECT {column} FROM {table} WHERE {column} = ANY(string_to_array(%s, ','))",
                (",".join(keys),),
            )
        else:
            cursor.execute(
                f"SELECT {column} FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                (json.dumps(keys),),
            )
        return {found for (found,) in cursor.fetchall()}
    finally:
        cursor.close()


def _created_since(conn: Connection, keys: set[str], start_seq: int) -> set[str]:
    """Those of ``keys`` whose subscriber's first event came after ``start_seq``."""
    events = consent.events_t
    rows = conn.execute(
        select(subs_t.c.email_key)
        .join(events, events.c.subject_id == subs_t.c.id)
        .where(subs_t.c.email_key.in_(keys))
        .group_by(subs_t.c.email_key)
        .having(func.min(events.c.seq) > start_seq)
    )
    return {key for (key,) in rows}


_SUBSCRIBER_COLUMNS = (
    "id",
    "email",
    "email_key",
    "name",
    "status",
    "created_at",
    "updated_at",
    "attributes",
)


__all__ = [
    "Subscriber",
    "STATUSES",
    "DigestError",
    "mask",
    "normalise",
    "new_id",
    "request_signup",
    "confirm",
    "unsubscribe",
    "resubscribe",
    "admin_add",
    "suppress",
    "get_subscriber",
    "find_by_email",
    "lookup",
    "is_suppressed",
    "audience",
    "list_subscribers",
    "stats",
    "show",
    "export",
    "erase",
    "import_csv",
    "ImportReport",
]
