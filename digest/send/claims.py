"""Run claims: which process sends which scheduled issue, so two schedulers never send one twice.

One row per issue date in ``schedule_runs``. PostgreSQL: a session advisory
lock keyed by the issue date and the newsletter's schema, held on its own
connection for the whole send by the run that started it; a run that finds it
held *joins* the send (the deliveries ledger splits the audience between
processes, ``FOR UPDATE SKIP LOCKED``), so one scheduled sender per machine
from the same cron minute all work. SQLite: a lease renewed by a heartbeat
thread while the send runs (one process at a time); a lease held by a dead
process of this host is taken over (:mod:`digest.send.owners`).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from digest import clock
from digest.send.owners import owner_alive

if TYPE_CHECKING:
    from digest.store import Store
    from digest.workspace import Workspace

# How long a claim on a send stays valid without a heartbeat (SQLite only; on
# PostgreSQL the advisory lock dies with the session that holds it).
LEASE = timedelta(seconds=120)
HEARTBEAT_SECONDS = 30.0


class Claim:
    """A held claim on sending one issue; :meth:`release` ends it."""

    def __init__(
        self,
        db: RunClaims,
        day: date,
        owner: str,
        resumed: bool,
        pg_conn: Any,
        *,
        joined: bool = False,
    ) -> None:
        self.db, self.day, self.owner, self.resumed = db, day, owner, resumed
        self.joined = joined  # PostgreSQL: another run started this send; this one helps
        self._pg_conn = pg_conn
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if pg_conn is None and not joined:  # SQLite: keep the lease fresh while the send runs
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.db.renew(self.day, self.owner)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                pass

    def release(self, *, done: bool) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            if self.joined:
                if done:  # the send is complete, whoever finished it
                    self.db.finish(self.day, None, done=True)
            else:
                self.db.finish(self.day, self.owner, done=done)
        finally:
            if self._pg_conn is not None:
                self._pg_conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})", (self.day.toordinal(),)
                )
                self._pg_conn.commit()
                self._pg_conn.close()


# PostgreSQL's advisory locks belong to the database, not to a schema: the key names the
# schema that holds this newsletter's tables (the first of its search_path) with the issue
# date, so newsletters sharing one database never take each other's sends for their own.
_PG_LOCK_KEY = "hashtext('digest send ' || current_schema()), %s"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RunClaims:
    """The run claims in a workspace's store, opened only when a run needs it."""

    def __init__(self, ws: Workspace, store: Store | None) -> None:
        self.ws = ws
        self._store = store
        self._own = store is None

    @property
    def store(self) -> Store:
        if self._store is None:
            # deferred: a run with nothing due never loads SQLAlchemy
            from digest.store import open_store

            self._store = open_store(self.ws)
        return self._store

    def close(self) -> None:
        if self._own and self._store is not None:
            self._store.close()
            self._store = None

    @property
    def table(self) -> Any:
        from digest.store import schema  # deferred, as above

        return schema.schedule_runs

    def _ensure(self, conn: Any, day: date, slot: datetime) -> None:
        values = {"issue_date": day.isoformat(), "slot_at": _stamp(slot), "state": "", "owner": ""}
        if self.store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert  # deferred, as above

            conn.execute(pg_insert(self.table).values(**values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as lite_insert  # deferred, as above

            conn.execute(lite_insert(self.table).values(**values).on_conflict_do_nothing())

    def _row(self, conn: Any, day: date, *, lock: bool = False) -> Any:
        from sqlalchemy import select  # deferred, as above

        query = select(self.table).where(self.table.c.issue_date == day.isoformat())
        if lock:
            query = query.with_for_update()
        return conn.execute(query).mappings().first()

    def state(self, day: date) -> str:
        with self.store.read() as conn:
            row = self._row(conn, day)
        return str(row["state"]) if row else ""

    def note_once(self, day: date, slot: datetime, column: str, now: datetime) -> bool:
        """Record a one-time notice (missed, cutoff); False when it was already given."""
        with self.store.begin() as conn:
            self._ensure(conn, day, slot)
            row = self._row(conn, day, lock=True)
            if row[column] or row["state"] == "sent":
                return False
            conn.execute(
                self.table.update()
                .where(self.table.c.issue_date == day.isoformat())
                .values({column: _stamp(now)})
            )
        return True

    def claim(self, day: date, slot: datetime, now: datetime, owner: str) -> Claim | str:
        """Claim sending ``day``'s issue: a :class:`Claim`, or why not ("sent", or the owner).

        PostgreSQL: a session advisory lock keyed by the issue date (and schema), held on its
        own connection for the whole send, then the row is checked and marked;
        when another run holds the lock, a claim that joins its send (unless it
        is sent). SQLite: one ``BEGIN IMMEDIATE`` transaction (one writer at a
        time) reads the row and takes a lease unless a live process holds one.
        """
        pg_conn = None
        if self.store.dialect == "postgresql":
            pg_conn = self.store.engine.connect()
            got = pg_conn.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({_PG_LOCK_KEY})", (day.toordinal(),)
            ).scalar()
            pg_conn.commit()
            if not got:
                pg_conn.close()
                if self.state(day) == "sent":
                    return "sent"
                return Claim(self, day, owner, True, None, joined=True)
        try:
            with self.store.begin() as conn:
                self._ensure(conn, day, slot)
                row = self._row(conn, day, lock=True)
                if row["state"] == "sent":
                    raise _Refused("sent")
                resumed = row["state"] == "sending"
                if (
                    pg_conn is None
                    and resumed
                    and row["owner"] != owner
                    and row["lease_until"] > _stamp(now)
                    and owner_alive(row["owner"]) is not False
                ):
                    raise _Refused(row["owner"])
                conn.execute(
                    self.table.update()
                    .where(self.table.c.issue_date == day.isoformat())
                    .values(
                        state="sending",
                        owner=owner,
                        lease_until=_stamp(now + LEASE),
                        started_at=row["started_at"] or _stamp(now),
                    )
                )
        except _Refused as refused:
            if pg_conn is not None:
                pg_conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})", (day.toordinal(),)
                )
                pg_conn.commit()
                pg_conn.close()
            return refused.reason
        except BaseException:
            if pg_conn is not None:
                pg_conn.close()
            raise
        return Claim(self, day, owner, resumed, pg_conn)

    def state_owner(self, day: date) -> str:
        with self.store.read() as conn:
            row = self._row(conn, day)
        return str(row["owner"]) if row else ""

    def renew(self, day: date, owner: str) -> None:
        with self.store.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.issue_date == day.isoformat(), self.table.c.owner == owner)
                .values(lease_until=_stamp(clock.now() + LEASE))
            )

    def finish(self, day: date, owner: str | None, *, done: bool) -> None:
        """End ``owner``'s claim (any claim: None), marking the issue sent when ``done``."""
        values: dict[str, Any] = {"lease_until": ""}
        if done:
            values.update(state="sent", finished_at=_stamp(clock.now()))
        mine = self.table.c.issue_date == day.isoformat()
        if owner is not None:
            mine = mine & (self.table.c.owner == owner)
        with self.store.begin() as conn:
            conn.execute(self.table.update().where(mine).values(**values))


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
