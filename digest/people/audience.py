"""The audience: who is mailed (active, confirmed, not suppressed), and the list's counts.

A send counts it (:func:`audience_count`) and freezes it in one statement
inside the database (:data:`AUDIENCE_IDS`); whatever reads it whole streams it
(:func:`audience`) with flat memory, whatever the list's size.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from sqlalchemy import func, select

from digest.people.record import STATUSES, Subscriber
from digest.store import Store, schema

subs_t = schema.subscribers
supp_t = schema.suppressions

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
