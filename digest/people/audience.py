"""The audience: who is mailed (active, confirmed, not suppressed), and the list's counts.

A send counts it (:func:`audience_count`) and freezes it in one statement
inside the database (:data:`AUDIENCE_IDS`); whatever reads it whole streams it
(:func:`audience`) with flat memory, whatever the list's size. Once per run,
before the first message, a send asks :func:`unbound` which of them hold an
address that is not the one their consent names, and mails none of those.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select

from digest.consent import address_problem
from digest.people.record import STATUSES, Subscriber
from digest.store import Store, schema, stream_rows

subs_t = schema.subscribers
supp_t = schema.suppressions

_MAILABLE = (
    " FROM subscribers WHERE status = 'active'"
    " AND NOT EXISTS (SELECT 1 FROM suppressions WHERE suppressions.key = subscribers.email_key)"
)
_AUDIENCE = "SELECT id, email, name, status, created_at, attributes" + _MAILABLE + " ORDER BY id"
# The audience's ids as one SELECT, for a statement that copies them in the database.
AUDIENCE_IDS = "SELECT id" + _MAILABLE


# Each mailable subscriber's address, its key, and whether their consent events name that key
# (an index probe on the events' subject; an ORDER BY here sent PostgreSQL down the whole ledger
# for every row).
_BOUND = (
    "SELECT id, email, email_key, EXISTS (SELECT 1 FROM consent_events e"
    " WHERE e.subject_id = subscribers.id AND e.pseudonym = subscribers.email_key)" + _MAILABLE
)


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
    with store.read() as conn:
        yield from map(Subscriber._make, stream_rows(conn, _AUDIENCE, batch_size))


def unbound(store: Store, batch_size: int = 10_000) -> list[str]:
    """Ids of the mailable subscribers whose address is not the one their consent names.

    Their ``email_key`` is not the pseudonym of their consent events, or their
    ``email`` is not the address that key was made from: the row was changed
    in the database (`digest consent verify` says how). One streamed query and
    one keyed hash per subscriber, so a send checks its whole audience once,
    not each message as it goes.
    """
    key_of = store.pseudonym
    found: list[str] = []
    with store.read() as conn:
        found.extend(
            sid
            for sid, email, key, named in stream_rows(conn, _BOUND, batch_size)
            if not named or address_problem(key, email, key, key_of)
        )
    return found


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
