"""Benchmark setup: insert N active subscribers straight into the tables.

Each reader gets the row a send reads and the one consent event a send checks
(its ``email_key`` is the store's pseudonym of the address, and an ``imported``
event names it), so the send mails them all. The chain's hashes are
placeholders: `digest consent verify` would refuse this ledger, and a send never
reads them.
"""

from __future__ import annotations

from typing import Any

from digest import clock, consent
from digest.store import stamp

_PLACEHOLDER = "0" * 64


def insert_subscribers(store: Any, total: int, batch: int = 10_000) -> None:
    now = stamp(clock.now())
    with store.begin() as conn:
        statement, policy = consent.texts_in_force(conn, store.workspace.config)
        first, _ = consent.lock_head(conn, store.dialect)

    def rows(start: int, stop: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        readers, events = [], []
        for n in range(start, stop):
            sid, email = f"s{n:09d}", f"reader{n}@example.net"
            key = store.pseudonym(email)
            name = f"Reader {n}" if n % 2 else None
            readers.append((sid, email, key, name, "active", now, now, "{}"))
            events.append(
                (first + n + 1, now, "imported", sid, key, "import", "bench", statement, policy)
                + (_PLACEHOLDER,) * 3
            )
        return readers, events

    readers_sql = "id, email, email_key, name, status, created_at, updated_at, attributes"
    events_sql = (
        "seq, occurred_at, kind, subject_id, pseudonym, method, source, statement_id,"
        " policy_id, evidence_sha256, prev_hash, hash"
    )
    if store.dialect == "postgresql":  # COPY: a million rows in seconds
        raw = store.engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                for start in range(0, total, batch):
                    readers, events = rows(start, min(total, start + batch))
                    with cursor.copy(f"COPY subscribers ({readers_sql}) FROM STDIN") as copy:
                        for row in readers:
                            copy.write_row(row)
                    with cursor.copy(f"COPY consent_events ({events_sql}) FROM STDIN") as copy:
                        for row in events:
                            copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    else:
        _insert_sqlite(store, total, batch, rows, readers_sql, events_sql)
    with store.begin() as conn:  # later events (a bounce, an unsubscribe) follow these
        conn.exec_driver_sql(f"UPDATE chain_head SET seq = {first + total} WHERE id = 1")


def _insert_sqlite(
    store: Any, total: int, batch: int, rows: Any, readers_sql: str, events_sql: str
) -> None:
    with store.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        for start in range(0, total, batch):
            readers, events = rows(start, min(total, start + batch))
            cursor.executemany(
                f"INSERT INTO subscribers ({readers_sql}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", readers
            )
            cursor.executemany(
                f"INSERT INTO consent_events ({events_sql}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                events,
            )
        cursor.close()
