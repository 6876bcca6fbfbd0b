"""Benchmark setup: insert N active subscribers straight into the table (no consent events)."""

from __future__ import annotations

from typing import Any

from digest import clock
from digest.store import stamp


def insert_subscribers(store: Any, total: int, batch: int = 10_000) -> None:
    now = stamp(clock.now())

    def row(n: int) -> tuple[Any, ...]:
        name = f"Reader {n}" if n % 2 else None
        return (f"s{n:09d}", f"reader{n}@example.net", f"k{n:09d}", name, "active", now, now, "{}")

    columns = "id, email, email_key, name, status, created_at, updated_at, attributes"
    if store.dialect == "postgresql":  # COPY: a million rows in seconds
        raw = store.engine.raw_connection()
        try:
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY subscribers ({columns}) FROM STDIN") as copy,
            ):
                for n in range(total):
                    copy.write_row(row(n))
            raw.commit()
        finally:
            raw.close()
        return
    with store.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        for start in range(0, total, batch):
            cursor.executemany(
                f"INSERT INTO subscribers ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [row(n) for n in range(start, min(total, start + batch))],
            )
        cursor.close()
