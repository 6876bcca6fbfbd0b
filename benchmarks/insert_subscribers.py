"""Benchmark setup: insert N active subscribers straight into the table (no consent events)."""

from __future__ import annotations

from typing import Any

from digest import clock
from digest.store import schema, stamp


def insert_subscribers(store: Any, total: int, batch: int = 10_000) -> None:
    now = stamp(clock.now())
    with store.begin() as conn:
        for start in range(0, total, batch):
            rows = [
                {
                    "id": f"s{n:09d}",
                    "email": f"reader{n}@example.net",
                    "email_key": f"k{n:09d}",
                    "name": f"Reader {n}" if n % 2 else None,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                    "attributes": "{}",
                }
                for n in range(start, min(total, start + batch))
            ]
            conn.execute(schema.subscribers.insert(), rows)
