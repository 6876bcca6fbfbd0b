"""The deliveries ledger: one row per (issue, subscriber), so a send survives anything.

States and how a row moves::

    pending ──claim──> sending ──accepted──> sent          (provider id, time)
       ^                  │ ───4xx/429/5xx──> deferred ──due──> (claimed again)
       │                  │ ───5xx / 4xx API─> failed          (reason; "transient"
       │                  │ ───maybe sent───> unknown           after max_attempts)
       │                  └──unsubscribed or suppressed since the freeze──> skipped
       └──── digest retry (deferred, transient failures; unknown with --include-unknown)

A row is claimed (``sending``, with an owner and a lease) in the same
transaction that picks it, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
several processes split one send; it becomes ``sent`` only after the server
accepted the message. A streaming send (SMTP) first *reserves* a block of
rows (owner and lease set, the state left pending or deferred, so nothing
reserved is in doubt if the process dies), then makes one row ``sending`` at a
time, by its key, checking its reader again in the same statement. A row
still ``sending`` when its owner is gone (lease expired, or a dead process on
this host) becomes ``unknown``: the message may have left. Those are
reported and re-sent only on request, or automatically by a sender that
cannot deliver twice (an outbox file per subscriber; an API that honours an
Idempotency-Key: then the row's claim group is re-sent as the same batch, so
it carries the same key).
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from digest import clock
from digest.errors import StoreError
from digest.send.owners import new_owner, owner_alive
from digest.send.sender import ACCEPTED, PERMANENT, TRANSIENT, UNKNOWN, Result
from digest.store import Store, schema, stamp

STATES = ("pending", "sending", "sent", "deferred", "failed", "skipped", "unknown")
HELD_CACHE_KIB = -4096  # SQLite's page cache of a send's own connection: 4 MB
FINAL = ("sent", "failed", "skipped")

deliveries = schema.deliveries
issue_sends = schema.issue_sends


def _now() -> str:
    return stamp(clock.now())


class _Raw:
    """The driver's cursor inside a SQLAlchemy transaction, for the per-batch statements.

    Freezing, claiming and recording touch every row of a send; SQLAlchemy's
    per-row parameter processing cost more than the database work, so these
    statements go to the driver as written (``?`` becomes ``%s`` on PostgreSQL).
    """

    def __init__(self, conn: Connection | None, dialect: str, cursor: Any = None) -> None:
        if cursor is None:
            assert conn is not None
            driver = conn.connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
        self.cursor = cursor
        self.pg = dialect == "postgresql"
        self._now: tuple[datetime, str] | None = None

    def now(self) -> tuple[datetime, str]:
        """The transaction's time, read once: as a datetime and as stored text."""
        if self._now is None:
            moment = clock.now()
            self._now = (moment, stamp(moment))
        return self._now

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def many(self, text: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if len(rows) == 1:  # psycopg's executemany costs a pipeline's set-up
            self.cursor.execute(self.sql(text), rows[0])
        elif rows:
            self.cursor.executemany(self.sql(text), rows)

    def all(self, text: str, params: Sequence[Any]) -> list[Any]:
        self.cursor.execute(self.sql(text), params)
        return list(self.cursor.fetchall())

    def among(self, values: Sequence[str]) -> tuple[str, list[Any]]:
        """``IN (...)`` for ``values``: one array parameter on PostgreSQL."""
        if self.pg:
            return "= ANY(?)", [list(values)]
        return "IN (" + ",".join("?" * len(values)) + ")", list(values)

    def close(self) -> None:
        self.cursor.close()


@contextlib.contextmanager
def _small_cache(raw: _Raw) -> Iterator[None]:
    """SQLite: this connection's page cache small while the block runs (rows written
    in order need few pages in memory; a big cache would only grow with the list)."""
    if raw.pg:
        yield
        return
    size = raw.all("PRAGMA cache_size", ())[0][0]
    raw.cursor.execute(f"PRAGMA cache_size = {HELD_CACHE_KIB}")
    try:
        yield
    finally:
        raw.cursor.execute(f"PRAGMA cache_size = {int(size)}")


@dataclass(frozen=True)
class Claimed:
    subscriber_id: str
    email: str
    name: str
    attempts: int


class DeliveryLedger:
    """The deliveries of one issue in one store."""

    def __init__(self, store: Store, issue: str, *, owner: str | None = None) -> None:
        self.store = store
        self.issue = issue
        self.owner = owner or new_owner()
        self.dialect = store.dialect
        self._reserved: collections.deque[Claimed] = collections.deque()
        self._turn = threading.Lock()  # one transaction at a time on the held connection

    # -- freezing -------------------------------------------------------------------
    def frozen(self) -> bool:
        with self.store.read() as conn:
            row = conn.execute(
                select(issue_sends.c.issue).where(issue_sends.c.issue == self.issue)
            ).first()
        return row is not None

    def freeze(self, audience: Iterable[Any] | str, batch_size: int = 5000) -> int | None:
        """Write one pending row per subscriber, once; None if it was frozen before.

        One transaction: a crash midway leaves no half-frozen audience.
        ``audience`` is the subscribers (streamed in, ``batch_size`` rows at a
        time), or a SELECT of their ids, copied by the database itself.
        """
        now = _now()
        with self.store.begin() as conn:
            marker = (
                self.store.insert_new(issue_sends)
                .values(issue=self.issue, frozen_at=now, audience=0)
                .returning(issue_sends.c.issue)
            )
            if conn.execute(marker).first() is None:
                return None
            raw = _Raw(conn, self.dialect)
            try:
                with _small_cache(raw):
                    total = self._freeze(raw, audience, now, batch_size)
            finally:
                raw.close()
            conn.execute(
                update(issue_sends).where(issue_sends.c.issue == self.issue).values(audience=total)
            )
        return total

    def _freeze(self, raw: _Raw, audience: Iterable[Any] | str, now: str, batch_size: int) -> int:
        if isinstance(audience, str):
            # The ids' SELECT has a WHERE, so SQLite reads ON CONFLICT as the upsert.
            raw.cursor.execute(
                raw.sql(
                    "INSERT INTO deliveries (issue, subscriber_id, state, attempts, owner,"
                    " claim, lease_until, retry_at, failure, reason, provider_id, updated_at)"
                    " SELECT ?, id, 'pending', 0, '', '', '', '', '', '', '', ?"
                    f" FROM ({audience}) AS audience WHERE true ON CONFLICT DO NOTHING"
                ),
                (self.issue, now),
            )
            return max(0, int(raw.cursor.rowcount))
        insert = (
            "INSERT INTO deliveries (issue, subscriber_id, state, attempts, owner, claim,"
            " lease_until, retry_at, failure, reason, provider_id, updated_at)"
            " VALUES (?, ?, 'pending', 0, '', '', '', '', '', '', '', ?)"
            " ON CONFLICT DO NOTHING"
        )
        total = 0
        rows: list[tuple[str, str, str]] = []
        people: Iterable[Any] = audience
        for subscriber in people:
            rows.append((self.issue, subscriber.id, now))
            if len(rows) >= batch_size:
                raw.many(insert, rows)
                total += len(rows)
                rows = []
        raw.many(insert, rows)
        return total + len(rows)

    # -- claiming -------------------------------------------------------------------
    def claim(self, size: int, *, unknown_groups: bool = False) -> list[Claimed]:
        """:meth:`take`, keeping the number skipped in ``skipped_last``."""
        out, self.skipped_last = self.take(size, unknown_groups=unknown_groups)
        return out

    def take(self, size: int, *, unknown_groups: bool = False) -> tuple[list[Claimed], int]:
        """Take up to ``size`` rows to send now, skipping (and counting) those no
        longer mailable; safe to call from several threads at once.

        The lowest subscriber ids among pending rows and deferred rows now due,
        each read from the (issue, state, subscriber_id) index, so a claim costs
        the same at the end of a send as at its start.
        """
        with self._transaction() as raw:
            return self._take(raw, size, unknown_groups=unknown_groups)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection for :meth:`take`, :meth:`steps` and :meth:`record` until
        the block ends: a per-message commit then costs the database's work, not a
        pool checkout (with its ping) and SQLAlchemy's bookkeeping. Calls from
        several threads take turns on it."""
        with self.store.engine.connect() as conn:
            held = conn.connection.driver_connection
            assert held is not None
            size = None
            if self.dialect == "postgresql":
                # A commit returns before the server flushes its log to disk: the
                # sending process dying loses nothing; the database server crashing
                # may lose the last fraction of a second of results, as SQLite's
                # synchronous=NORMAL may on power loss (docs/senders.md).
                held.execute("SET synchronous_commit = off")
                held.commit()
            if self.dialect == "sqlite":
                # Claims and records walk the ledger in order: a small cache holds what
                # they touch, so memory stays flat however long the list.
                size = held.execute("PRAGMA cache_size").fetchone()[0]
                held.execute(f"PRAGMA cache_size = {HELD_CACHE_KIB}")
            self._held = held
            try:
                yield
            finally:
                self._held = None
                if size is not None:
                    held.execute(f"PRAGMA cache_size = {int(size)}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Raw]:
        held = self._held
        if held is None:
            with self.store.begin() as conn:
                raw = _Raw(conn, self.dialect)
                try:
                    yield raw
                finally:
                    raw.close()
            return
        with self._turn:
            raw = _Raw(None, self.dialect, held.cursor())
            try:
                if self.dialect == "sqlite":
                    raw.cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield raw
                except BaseException:
                    held.rollback() if raw.pg else raw.cursor.execute("ROLLBACK")
                    raise
                held.commit() if raw.pg else raw.cursor.execute("COMMIT")
            except Exception as exc:
                if _gone(exc):
                    raise StoreError(f"database {self.store.describe()}: {exc}") from None
                raise
            finally:
                raw.close()

    def step(
        self,
        outcomes: Sequence[tuple[Claimed, Result]],
        size: int,
        *,
        max_attempts: int,
        backoff: float,
    ) -> tuple[dict[str, int], list[Claimed], int]:
        """:meth:`record` these outcomes and :meth:`take` the next rows, in one transaction.

        A sender that has one message per connection in flight records each
        result before its next message goes, at the cost of one commit.
        """
        counts, taken, skipped = self.steps(
            [(outcomes, size)], max_attempts=max_attempts, backoff=backoff
        )
        return counts, taken[0], skipped

    def steps(
        self,
        requests: Sequence[tuple[Sequence[tuple[Claimed, Result]], int]],
        *,
        max_attempts: int,
        backoff: float,
        reserve: int = 0,
    ) -> tuple[dict[str, int], list[list[Claimed]], int]:
        """Several :meth:`step` requests (outcomes, how many rows each wants) in one
        transaction: the rows taken for each, the counts recorded and how many rows
        were skipped. Every connection's step of one turn of the event loop shares
        one commit (a group commit).

        ``reserve``: take rows from a block of that many this process reserved
        (see :meth:`_reserve`): a row then becomes ``sending`` by its key, with its
        reader checked again, instead of by a search of the ledger each time.
        """
        outcomes = [outcome for done, _ in requests for outcome in done]
        want = sum(size for _, size in requests)
        with self._transaction() as raw:
            counts = self._record(raw, outcomes, max_attempts=max_attempts, backoff=backoff)
            taken: list[Claimed]
            if want <= 0:
                taken, skipped = [], 0
            elif reserve > 0:
                taken, skipped = self._take_reserved(raw, want, reserve)
            else:
                taken, skipped = self._take(raw, want)
        shares: list[list[Claimed]] = []
        at = 0
        for _, size in requests:
            shares.append(taken[at : at + size])
            at += size
        return counts, shares, skipped

    # -- reservations: a block of rows at a time, each made "sending" just before it goes

    def _reserve(self, raw: _Raw, size: int) -> int:
        """Reserve up to ``size`` more rows for this process: their owner and lease
        are set, their state stays (pending, or deferred and due), so nothing
        reserved is in doubt if the process dies. Readers no longer mailable are
        skipped here; returns how many."""
        now_dt, now = raw.now()
        lease = stamp(now_dt + timedelta(seconds=self.lease_seconds))
        lock = " FOR UPDATE SKIP LOCKED" if raw.pg else ""
        # Rows another live run reserved are left to it; with the send lock (SQLite)
        # there is none, and a dead run's reservations are free at once.
        free, also = (
            ("", ()) if self.exclusive else (" AND (owner = '' OR lease_until < ?)", (now,))
        )
        picked = [
            row[0]
            for row in raw.all(
                "SELECT subscriber_id FROM deliveries WHERE issue = ? AND state = 'pending'"
                + free
                + " ORDER BY state, subscriber_id LIMIT ?"
                + lock,
                (self.issue, *also, size),
            )
        ]
        due = raw.all(
            "SELECT subscriber_id FROM deliveries WHERE issue = ? AND state = 'deferred'"
            " AND retry_at <= ?" + free + " ORDER BY state, subscriber_id LIMIT ?" + lock,
            (self.issue, now, *also, size),
        )
        if due:
            picked = sorted(picked + [row[0] for row in due])[:size]
        if not picked:
            return 0
        where, params = raw.among(picked)
        got = raw.all(
            "UPDATE deliveries SET owner = ?, claim = ?, lease_until = ?"
            f" WHERE issue = ? AND subscriber_id {where} RETURNING subscriber_id, attempts",
            [self.owner, uuid.uuid4().hex, lease, self.issue, *params],
        )
        attempts = {str(sid): int(n) for sid, n in got}
        people = _people(raw, list(attempts))
        skipped = []
        for sid in sorted(attempts):
            row = people.get(sid)
            reason = _unmailable(row)
            if reason:
                skipped.append((reason, now, self.issue, sid))
            else:
                assert row is not None
                self._reserved.append(Claimed(sid, row[1], row[2] or "", attempts[sid] + 1))
        self._skip(raw, skipped)
        return len(skipped)

    def _take_reserved(self, raw: _Raw, want: int, block: int) -> tuple[list[Claimed], int]:
        """``want`` reserved rows made ``sending``, each only if its reader is still
        mailable (checked in the same statement); a new block reserved when needed."""
        skipped = 0
        out: list[Claimed] = []
        while len(out) < want:
            if not self._reserved:
                more = self._reserve(raw, max(block, want - len(out)))
                skipped += more
                if not self._reserved:
                    if more:
                        continue
                    break
            rows = [
                self._reserved.popleft() for _ in range(min(want - len(out), len(self._reserved)))
            ]
            now_dt, now = raw.now()
            lease = stamp(now_dt + timedelta(seconds=self.lease_seconds))
            where, params = raw.among([r.subscriber_id for r in rows])
            flipped = {
                str(sid): int(n)
                for sid, n in raw.all(
                    "UPDATE deliveries SET state = 'sending', lease_until = ?,"
                    " attempts = attempts + 1, updated_at = ?"
                    f" WHERE issue = ? AND subscriber_id {where}"
                    " AND state IN ('pending', 'deferred') AND owner = ?"
                    " AND EXISTS (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber_id"
                    "  AND s.status = 'active' AND s.email IS NOT NULL AND NOT EXISTS"
                    "  (SELECT 1 FROM suppressions p WHERE p.key = s.email_key))"
                    " RETURNING subscriber_id, attempts",
                    [lease, now, self.issue, *params, self.owner],
                )
            }
            for row in rows:
                n = flipped.get(row.subscriber_id)
                if n is not None:
                    out.append(Claimed(row.subscriber_id, row.email, row.name, n))
            missing = [r.subscriber_id for r in rows if r.subscriber_id not in flipped]
            if missing:  # unsubscribed, suppressed or erased since reserved; or taken over
                skipped += self._skip_unmailable(raw, missing, now)
        return out, skipped

    def _skip_unmailable(self, raw: _Raw, ids: list[str], now: str) -> int:
        """Of reserved rows that could not be made ``sending``, skip those whose reader
        is no longer mailable; the rest were taken over by another process."""
        people = _people(raw, ids)
        skipped = []
        for sid in ids:
            reason = _unmailable(people.get(sid))
            if reason:
                skipped.append((reason, now, self.issue, sid, self.owner))
        raw.many(
            "UPDATE deliveries SET state = 'skipped', reason = ?, owner = '', updated_at = ?"
            " WHERE issue = ? AND subscriber_id = ? AND state IN ('pending', 'deferred')"
            " AND owner = ?",
            skipped,
        )
        return len(skipped)

    def _skip(self, raw: _Raw, skipped: list[tuple[str, str, str, str]]) -> None:
        raw.many(
            "UPDATE deliveries SET state = 'skipped', reason = ?, owner = '',"
            " updated_at = ? WHERE issue = ? AND subscriber_id = ?",
            skipped,
        )

    def unreserve(self) -> int:
        """Give back this process's reserved rows that never went (the end of a run)."""
        ids = [row.subscriber_id for row in self._reserved]
        self._reserved.clear()
        if not ids:
            return 0
        with self._transaction() as raw:
            where, params = raw.among(ids)
            raw.cursor.execute(
                raw.sql(
                    "UPDATE deliveries SET owner = '', lease_until = ''"
                    f" WHERE issue = ? AND subscriber_id {where} AND owner = ?"
                    " AND state IN ('pending', 'deferred')"
                ),
                [self.issue, *params, self.owner],
            )
            return max(0, int(raw.cursor.rowcount))

    def _take(
        self, raw: _Raw, size: int, *, unknown_groups: bool = False
    ) -> tuple[list[Claimed], int]:
        now_dt = clock.now()
        now = stamp(now_dt)
        lease = stamp(now_dt + timedelta(seconds=self.lease_seconds))
        claim_id = uuid.uuid4().hex
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        if unknown_groups:
            found = raw.all(
                "SELECT claim FROM deliveries WHERE issue = ? AND state = 'unknown' LIMIT 1",
                (self.issue,),
            )
            if not found:
                return [], 0
            claim_id = found[0][0]
            picked = [
                row[0]
                for row in raw.all(
                    "SELECT subscriber_id FROM deliveries WHERE issue = ?"
                    " AND state = 'unknown' AND claim = ? ORDER BY subscriber_id" + lock,
                    (self.issue, claim_id),
                )
            ]
        elif self.dialect == "sqlite":
            # Under SQLite's write lock (BEGIN IMMEDIATE) nobody else claims, so the
            # pick, its people and their suppressions come in one statement.
            found_people = {}
            for sid, *person in raw.all(
                _PICK_SQLITE, (self.issue, size, self.issue, now, size, size)
            ):
                found_people[sid] = tuple(person) if person[0] is not None else None
            picked = list(found_people)
        else:
            # Two index range reads rather than one OR, which SQLite answers by
            # walking every row of the issue past those already sent.
            picked = [
                row[0]
                for row in raw.all(
                    "SELECT subscriber_id FROM deliveries WHERE issue = ?"
                    " AND state = 'pending' ORDER BY subscriber_id LIMIT ?" + lock,
                    (self.issue, size),
                )
            ]
            due = raw.all(
                "SELECT subscriber_id FROM deliveries WHERE issue = ?"
                " AND state = 'deferred' AND retry_at <= ?"
                " ORDER BY subscriber_id LIMIT ?" + lock,
                (self.issue, now, size),
            )
            if due:
                picked = sorted(picked + [row[0] for row in due])[:size]
        if not picked:
            return [], 0
        where, params = raw.among(picked)
        claimed = raw.all(
            "UPDATE deliveries SET state = 'sending', owner = ?, claim = ?,"
            " lease_until = ?, attempts = attempts + 1, updated_at = ?"
            f" WHERE issue = ? AND subscriber_id {where}"
            " RETURNING subscriber_id, attempts",
            [self.owner, claim_id, lease, now, self.issue, *params],
        )
        if not claimed:
            return [], 0
        attempts: dict[str, int] = {str(sid): int(n) for sid, n in claimed}
        if unknown_groups or self.dialect != "sqlite":
            where, params = raw.among(list(attempts))
            people = raw.all(
                "SELECT s.id, s.email, s.name, s.status, p.reason FROM subscribers s"
                " LEFT JOIN suppressions p ON p.key = s.email_key"
                f" WHERE s.id {where}",
                params,
            )
            found_people = {row[0]: row for row in people}
        out: list[Claimed] = []
        skipped: list[tuple[str, str, str, str]] = []
        for sid in sorted(attempts):
            row = found_people.get(sid)
            reason = _unmailable(row)
            if reason:
                skipped.append((reason, now, self.issue, sid))
            else:
                assert row is not None
                out.append(Claimed(sid, row[1], row[2] or "", attempts[sid]))
        raw.many(
            "UPDATE deliveries SET state = 'skipped', reason = ?, owner = '',"
            " updated_at = ? WHERE issue = ? AND subscriber_id = ?",
            skipped,
        )
        return out, len(skipped)

    lease_seconds = 300
    skipped_last = 0
    exclusive = False  # this process holds the issue's send lock (set by recover)
    _held: Any = None

    def skip(self, subscriber_ids: Sequence[str], reason: str) -> int:
        """Skip these subscribers' rows still to send (pending or deferred); how many."""
        if not subscriber_ids:
            return 0
        d = deliveries
        with self.store.begin() as conn:
            return int(
                conn.execute(
                    update(d)
                    .where(
                        d.c.issue == self.issue,
                        d.c.subscriber_id == bindparam("sid"),
                        (d.c.state == "pending") | (d.c.state == "deferred"),
                    )
                    .values(state="skipped", reason=reason, owner="", updated_at=_now()),
                    [{"sid": sid} for sid in subscriber_ids],
                ).rowcount
            )

    def release(self, subscriber_ids: Sequence[str]) -> None:
        """Give back rows that were claimed but never handed to the sender."""
        if not subscriber_ids:
            return
        d = deliveries
        with self.store.begin() as conn:
            conn.execute(
                update(d)
                .where(
                    d.c.issue == self.issue,
                    d.c.subscriber_id == bindparam("sid"),
                    d.c.owner == self.owner,
                    d.c.state == "sending",
                )
                .values(state="pending", owner="", attempts=d.c.attempts - 1, updated_at=_now()),
                [{"sid": sid} for sid in subscriber_ids],
            )

    # -- recording ------------------------------------------------------------------
    def record(
        self,
        outcomes: Sequence[tuple[Claimed, Result]],
        *,
        max_attempts: int,
        backoff: float,
    ) -> dict[str, int]:
        """Write each message's result in one transaction; return counts by new state."""
        with self._transaction() as raw:
            return self._record(raw, outcomes, max_attempts=max_attempts, backoff=backoff)

    def _record(
        self,
        raw: _Raw,
        outcomes: Sequence[tuple[Claimed, Result]],
        *,
        max_attempts: int,
        backoff: float,
    ) -> dict[str, int]:
        if not outcomes:
            return {}
        now_dt, now = raw.now()
        issue, owner = self.issue, self.owner
        sent: list[tuple[Any, ...]] = []
        failed: list[tuple[Any, ...]] = []
        deferred: list[tuple[Any, ...]] = []
        unknown: list[tuple[Any, ...]] = []
        for claimed, result in outcomes:
            sid, state = claimed.subscriber_id, result.state
            if state == ACCEPTED:
                sent.append((result.provider_id[:500], now, now, issue, sid))
            elif state == PERMANENT:
                failed.append((result.reason[:1000], "permanent", now, issue, sid, owner))
            elif state == TRANSIENT and claimed.attempts >= max_attempts:
                why = f"gave up after {claimed.attempts} attempts: {result.reason}"
                failed.append((why[:1000], "transient", now, issue, sid, owner))
            elif state == TRANSIENT:
                delay = result.retry_after
                if delay is None:
                    delay = min(backoff * 2 ** (claimed.attempts - 1), 3600.0)
                at = stamp(now_dt + timedelta(seconds=delay))
                deferred.append((result.reason[:1000], at, now, issue, sid, owner))
            else:
                assert state == UNKNOWN
                unknown.append((result.reason[:1000], now, issue, sid, owner))
        mine = " WHERE issue = ? AND subscriber_id = ? AND owner = ? AND state = 'sending'"
        # One executemany per outcome, straight to the driver.
        # Acceptance is the truth even if the row was meanwhile taken as unknown.
        raw.many(
            "UPDATE deliveries SET state = 'sent', provider_id = ?, sent_at = ?, owner = '',"
            " reason = '', failure = '', updated_at = ?"
            " WHERE issue = ? AND subscriber_id = ? AND state IN ('sending', 'unknown')",
            sent,
        )
        raw.many(
            "UPDATE deliveries SET state = 'failed', reason = ?, failure = ?, owner = '',"
            " updated_at = ?" + mine,
            failed,
        )
        raw.many(
            "UPDATE deliveries SET state = 'deferred', reason = ?, retry_at = ?, owner = '',"
            " updated_at = ?" + mine,
            deferred,
        )
        raw.many(
            "UPDATE deliveries SET state = 'unknown', reason = ?, owner = '', updated_at = ?"
            + mine,
            unknown,
        )
        groups = {"sent": sent, "failed": failed, "deferred": deferred, "unknown": unknown}
        return {state: len(rows) for state, rows in groups.items() if rows}

    def abandon(self) -> int:
        """This run's rows still ``sending`` (a stop that could not wait): unknown."""
        d = deliveries
        with self.store.begin() as conn:
            return int(
                conn.execute(
                    update(d)
                    .where(d.c.issue == self.issue, d.c.owner == self.owner, d.c.state == "sending")
                    .values(
                        state="unknown",
                        reason="in flight when the send was stopped",
                        owner="",
                        updated_at=_now(),
                    )
                ).rowcount
            )

    # -- recovery ---------------------------------------------------------------------
    def recover(self, *, exclusive: bool) -> int:
        """Rows left ``sending`` by a run that is gone become ``unknown``; return how many.

        ``exclusive``: this process holds the issue's send lock (SQLite), so
        every ``sending`` row is from a dead run, and rows another run had only
        reserved are free to take. Otherwise a row is taken when its lease has
        expired or its owner is a dead process on this host; rows a dead run had
        reserved (still pending) are taken once their lease expires.
        """
        self.exclusive = exclusive
        d = deliveries
        now = _now()
        with self.store.begin() as conn:
            rows = conn.execute(
                select(d.c.subscriber_id, d.c.owner, d.c.lease_until).where(
                    d.c.issue == self.issue, d.c.state == "sending", d.c.owner != self.owner
                )
            ).all()
            gone = [
                {"sid": sid}
                for sid, owner, lease in rows
                if exclusive or lease < now or owner_alive(owner) is False
            ]
            if gone:
                conn.execute(
                    update(d)
                    .where(
                        d.c.issue == self.issue,
                        d.c.subscriber_id == bindparam("sid"),
                        d.c.state == "sending",
                    )
                    .values(
                        state="unknown",
                        reason="in flight when its sending process died",
                        owner="",
                        updated_at=now,
                    ),
                    gone,
                )
            if not exclusive:
                self._free_reservations(conn, now)
        return len(gone)

    def _free_reservations(self, conn: Connection, now: str) -> None:
        """Rows reserved by runs that are gone (a dead process on this host, or a lease
        run out) are free again: they never went, so they are not in doubt. (With the
        send lock, SQLite's runs take such rows as they come.)"""
        d = deliveries
        idle = d.c.state.in_(("pending", "deferred"))
        owners = conn.execute(
            select(d.c.owner, func.min(d.c.lease_until))
            .where(d.c.issue == self.issue, idle, d.c.owner != "", d.c.owner != self.owner)
            .group_by(d.c.owner)
        ).all()
        for owner, lease in owners:
            if lease < now or owner_alive(owner) is False:
                conn.execute(
                    update(d)
                    .where(d.c.issue == self.issue, idle, d.c.owner == owner)
                    .values(owner="", lease_until="")
                )

    def retry(self, *, include_unknown: bool) -> dict[str, int]:
        """Make deferred rows, transient failures (and unknown rows) pending again."""
        d = deliveries
        now = _now()
        counts: dict[str, int] = {}
        with self.store.begin() as conn:
            counts["deferred"] = conn.execute(
                update(d)
                .where(d.c.issue == self.issue, d.c.state == "deferred")
                .values(state="pending", retry_at="", attempts=0, updated_at=now)
            ).rowcount
            counts["failed"] = conn.execute(
                update(d)
                .where(d.c.issue == self.issue, d.c.state == "failed", d.c.failure == "transient")
                .values(state="pending", failure="", attempts=0, updated_at=now)
            ).rowcount
            if include_unknown:
                counts["unknown"] = conn.execute(
                    update(d)
                    .where(d.c.issue == self.issue, d.c.state == "unknown")
                    .values(state="pending", attempts=0, updated_at=now)
                ).rowcount
            if any(counts.values()):
                conn.execute(
                    update(issue_sends)
                    .where(issue_sends.c.issue == self.issue)
                    .values(finished_at=None)
                )
        return counts

    # -- reading ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        d = deliveries
        with self.store.read() as conn:
            rows = conn.execute(
                select(d.c.state, func.count()).where(d.c.issue == self.issue).group_by(d.c.state)
            ).all()
        out = dict.fromkeys(STATES, 0)
        out.update({state: int(n) for state, n in rows})
        return out

    def next_retry(self) -> datetime | None:
        """When the next row may be taken: a deferred row's retry, or (without the send
        lock) the lease of rows another run reserved and has not sent, should it die."""
        d = deliveries
        with self.store.read() as conn:
            value = conn.execute(
                select(func.min(d.c.retry_at)).where(
                    d.c.issue == self.issue, d.c.state == "deferred"
                )
            ).scalar()
            if not self.exclusive:
                # Called when nothing is left to take: the pending rows are then only
                # those reserved by other runs, so this reads few rows.
                lease = conn.execute(
                    select(func.min(d.c.lease_until)).where(
                        d.c.issue == self.issue,
                        d.c.state == "pending",
                        d.c.owner != "",
                        d.c.owner != self.owner,
                    )
                ).scalar()
                if lease and (not value or lease < value):
                    value = lease
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    def others_in_flight(self) -> bool:
        """Whether another live run still has work of this issue in hand: rows
        ``sending`` under its lease, rows it reserved, or rows left to take that this
        run's claim skipped (locked by another run's claim, not yet committed). A run
        with nothing left to take waits for them, so its report is how the send ended."""
        d = deliveries
        now = _now()
        with self.store.read() as conn:
            owners = conn.execute(
                select(d.c.state, d.c.owner, func.max(d.c.lease_until))
                .where(
                    d.c.issue == self.issue,
                    d.c.owner != self.owner,
                    (d.c.state.in_(("sending", "pending")))
                    | ((d.c.state == "deferred") & (d.c.retry_at <= now)),
                )
                .group_by(d.c.state, d.c.owner)
            ).all()
        for state, owner, lease in owners:
            if state != "sending" and (not owner or lease < now):
                return True  # free to take: a claim that skipped it is committing now
            if lease >= now and owner_alive(owner) is not False:
                return True
        return False

    def failures(self) -> list[tuple[str, str, int]]:
        """(state, reason, count) for failed, deferred, skipped and unknown rows, biggest first."""
        d = deliveries
        with self.store.read() as conn:
            rows = conn.execute(
                select(d.c.state, d.c.reason, func.count())
                .where(
                    d.c.issue == self.issue,
                    d.c.state.in_(("failed", "deferred", "unknown", "skipped")),
                )
                .group_by(d.c.state, d.c.reason)
                .order_by(func.count().desc())
            ).all()
        return [(state, reason, int(n)) for state, reason, n in rows]

    def timing(self) -> tuple[str | None, str | None, int]:
        """First and last sent_at, and the audience frozen."""
        d = deliveries
        with self.store.read() as conn:
            first, last = conn.execute(
                select(func.min(d.c.sent_at), func.max(d.c.sent_at)).where(
                    d.c.issue == self.issue, d.c.state == "sent"
                )
            ).one()
            audience = conn.execute(
                select(issue_sends.c.audience).where(issue_sends.c.issue == self.issue)
            ).scalar()
        return first, last, int(audience or 0)

    def finish(self) -> None:
        with self.store.begin() as conn:
            conn.execute(
                update(issue_sends)
                .where(issue_sends.c.issue == self.issue)
                .values(finished_at=_now())
            )


def latest_send(store: Store) -> str | None:
    """The issue (date slug) whose send started last, or None if nothing was ever sent."""
    with store.read() as conn:
        value = conn.execute(
            select(issue_sends.c.issue)
            .order_by(issue_sends.c.frozen_at.desc(), issue_sends.c.issue.desc())
            .limit(1)
        ).scalar()
    return str(value) if value is not None else None


# Pending rows, and deferred rows now due, lowest ids first (two index range reads,
# not one OR, which SQLite answers by walking every row past those already sent),
# with each one's subscriber and suppression.
_PICK_SQLITE = (
    "SELECT d.subscriber_id, s.id, s.email, s.name, s.status, p.reason FROM ("
    " SELECT subscriber_id FROM (SELECT subscriber_id FROM deliveries"
    "  WHERE issue = ? AND state = 'pending' ORDER BY subscriber_id LIMIT ?)"
    " UNION ALL"
    " SELECT subscriber_id FROM (SELECT subscriber_id FROM deliveries"
    "  WHERE issue = ? AND state = 'deferred' AND retry_at <= ? ORDER BY subscriber_id LIMIT ?)"
    " ORDER BY 1 LIMIT ?) d"
    " LEFT JOIN subscribers s ON s.id = d.subscriber_id"
    " LEFT JOIN suppressions p ON p.key = s.email_key"
)


def _gone(exc: BaseException) -> bool:
    """The database cannot be used (locked too long, the server gone): the driver's
    OperationalError, SQLite's or psycopg's (told by name: psycopg is not imported
    for a SQLite workspace)."""
    return isinstance(exc, sqlite3.OperationalError) or any(
        k.__name__ == "OperationalError" and k.__module__.startswith("psycopg")
        for k in type(exc).__mro__
    )


def _people(raw: _Raw, ids: list[str]) -> dict[str, Any]:
    """Each of ``ids``' reader row: id, email, name, status and suppression reason."""
    where, params = raw.among(ids)
    rows = raw.all(
        "SELECT s.id, s.email, s.name, s.status, p.reason FROM subscribers s"
        " LEFT JOIN suppressions p ON p.key = s.email_key"
        f" WHERE s.id {where}",
        params,
    )
    return {row[0]: row for row in rows}


def _unmailable(row: Any) -> str:
    if row is None:
        return "erased since the send started"
    _, email, _, status, suppressed = row
    if not email or status == "erased":
        return "erased since the send started"
    if suppressed:
        return f"suppressed ({suppressed}) since the send started"
    if status != "active":
        return f"{status} since the send started"
    return ""
