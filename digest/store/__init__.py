"""The database: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL.

``open_store(ws)`` connects to ``ws.database_url`` and applies pending
migrations (see :mod:`digest.store.migrations`). A :class:`Store` hands out
transactions with :meth:`Store.begin`; on SQLite every write transaction is
``BEGIN IMMEDIATE`` so that two processes appending to the consent chain
queue up instead of failing halfway, and reads use :meth:`Store.read`.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from digest.errors import ConfigError, StoreError
from digest.store import migrations, schema
from digest.workspace import Workspace

__all__ = ["Store", "open_store", "engine_url", "stamp", "stream_rows"]


def stamp(moment: datetime) -> str:
    """A UTC instant as the fixed-width text every table stores:
    ``2026-12-04T07:00:00.000000Z`` (isoformat: a send stamps rows by the million)."""
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def stream_rows(conn: Connection, sql: str, batch_size: int) -> Iterator[Any]:
    """The driver's rows of ``sql``, read ``batch_size`` at a time: a server-side cursor
    on PostgreSQL, a stepping cursor on SQLite, so memory stays flat whatever the
    table's size. Read inside the caller's transaction (one consistent snapshot)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        cursor = driver.cursor(name=f"digest_stream_{secrets.token_hex(4)}")
        cursor.itersize = batch_size
    else:
        cursor = driver.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch_size):
            yield from rows
    finally:
        cursor.close()


def engine_url(url: str) -> str:
    """A user's URL as SQLAlchemy wants it: PostgreSQL always through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


# How long SQLite waits for another process's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30000


CACHE_KIB = -49152  # SQLite's page cache for a write transaction (negative: KiB)
READ_CACHE_KIB = -2048  # and for a read: a scan reads each page once, a big cache only grows


def _sqlite_connect(dbapi_conn: Any, record: Any) -> None:
    # Autocommit at the driver: the "begin" listener below issues BEGIN itself.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _into_wal(cursor)
    for pragma in (
        "foreign_keys = ON",
        "synchronous = NORMAL",
        "secure_delete = ON",  # erased addresses are overwritten, not left in free pages
        f"cache_size = {CACHE_KIB}",  # 48 MB: random-keyed indexes stay in memory in imports
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _into_wal(cursor: Any) -> None:
    """Switch to WAL, trying again while other processes hold the file's locks.

    Processes opening a new database together each ask for WAL at once; SQLite
    answers one of them "database is locked" straight away, without its busy
    wait (two readers each waiting to write would wait for ever), so the wait
    is here.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))  # noqa: S311 - spacing, not secrets


# How long a PostgreSQL statement waits for a lock another transaction holds (the chain
# head, a row) before it gives up with "canceling statement due to lock timeout": the
# same wait as SQLite's busy timeout, so a stuck writer elsewhere is an error (a bounce
# intake exits 75 and is tried again), not a process waiting for ever.
POSTGRES_LOCK_TIMEOUT_MS = 30000


def _postgres_connect(dbapi_conn: Any, record: Any) -> None:
    with dbapi_conn.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(POSTGRES_LOCK_TIMEOUT_MS)}")
    dbapi_conn.commit()  # a SET inside a transaction that is rolled back would be undone


def _sqlite_checkin(dbapi_conn: Any, record: Any) -> None:
    # The page cache (up to cache_size) is for the transaction that filled it: give
    # it back between uses, so a scan or an import leaves no resident memory behind.
    dbapi_conn.execute("PRAGMA shrink_memory")


def _sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get("digest_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Store:
    """A connected database; a context manager that closes it."""

    def __init__(self, engine: Engine, workspace: Workspace) -> None:
        self.engine = engine
        self.workspace = workspace
        self.dialect: str = engine.dialect.name

    @classmethod
    def connect(cls, url: str, workspace: Workspace) -> Store:
        try:
            parsed = make_url(engine_url(url))
        except ArgumentError:
            raise StoreError(
                f"database URL {_safe(url)!r} is not a URL; use sqlite:///PATH or postgresql://…"
            ) from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                path = Path(parsed.database)
                path.parent.mkdir(parents=True, exist_ok=True)
                # Personal data: readable by its owner alone (SQLite gives the
                # -wal and -shm files the same mode). Made only when missing: closing
                # a descriptor of a file drops every POSIX lock this process holds on
                # it, so opening an existing database here would take the locks of a
                # store already open on it, and other processes would then delete
                # the WAL under that store and lose writes.
                if not path.exists():
                    with contextlib.suppress(FileExistsError):
                        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            # hide_parameters: an error logged by a server must not carry addresses
            engine = create_engine(parsed, hide_parameters=True)
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
            event.listen(engine, "checkin", _sqlite_checkin)
        elif backend == "postgresql":
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
            event.listen(engine, "connect", _postgres_connect)
        else:
            raise StoreError(
                f"database URL {_safe(url)!r}: only sqlite and postgresql are supported"
            )
        return cls(engine, workspace)

    # transactions -----------------------------------------------------------

    def begin(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction: committed on success, rolled back on an error."""
        return self._guard(self.engine.begin())

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (on SQLite it takes no write lock, and a small page cache:
        counting a million-row ledger leaves no memory behind)."""
        with self._guard(self.engine.connect()) as conn:
            conn = conn.execution_options(digest_read_only=True)
            if self.dialect != "sqlite":
                with conn.begin():
                    yield conn
                return
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute(f"PRAGMA cache_size = {READ_CACHE_KIB}")  # outside any transaction
            try:
                with conn.begin():
                    yield conn
            finally:
                driver.execute(f"PRAGMA cache_size = {CACHE_KIB}")

    @contextlib.contextmanager
    def _guard(self, manager: Any) -> Iterator[Connection]:
        try:
            with manager as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(
                f"database {self.describe()}: {str(exc.orig).strip().splitlines()[0]}"
            ) from None

    # keys -------------------------------------------------------------------

    @cached_property
    def pseudonym_key(self) -> bytes:
        return self.workspace.secret(self.workspace.config.consent.pseudonym_key_env)

    @cached_property
    def _pseudonym_hmac(self) -> hmac.HMAC:
        # Keyed once; each address then costs a copy and one update (imports do a million).
        return hmac.new(self.pseudonym_key, digestmod="sha256")

    def check_keys(self) -> None:
        """Refuse a pseudonym key other than the one this database was made with.

        The first process to open the database records an HMAC of a fixed text
        under its key (an upsert: processes starting together all work); later
        ones must match it.
        """
        env = self.workspace.config.consent.pseudonym_key_env
        value = hmac.new(self.pseudonym_key, b"digest key check", "sha256").hexdigest()
        table = schema.key_checks
        with self.begin() as conn:
            conn.execute(self.insert_new(table).values(name="pseudonym", check_value=value))
            stored = conn.execute(
                select(table.c.check_value).where(table.c.name == "pseudonym")
            ).scalar_one()
        if not hmac.compare_digest(stored, value):
            raise ConfigError(
                f"database {self.describe()}: the pseudonym key in {env} (or "
                f"subscribers/.keys/{env}) is not the key this database was made with; "
                f"set {env} to the original value on every machine that uses it"
            )

    def note_link_key(self, issue: str, fingerprint: str) -> None:
        """Record that an issue's links were signed with the key of ``fingerprint``
        (once; an upsert, so senders starting together all work)."""
        table = schema.key_checks
        name = f"links {issue} {fingerprint}"
        with self.begin() as conn:
            conn.execute(self.insert_new(table).values(name=name, check_value=fingerprint))

    def insert_new(self, table: Any) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` for this database: a row another
        process inserted first is left as it is, without an error."""
        # deferred: each dialect's module loads only where it is used (PostgreSQL's
        # brings its async drivers' modules along: tens of milliseconds at start-up)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as lite_insert

        return lite_insert(table).on_conflict_do_nothing()

    def link_keys(self, issue: str) -> set[str]:
        """Fingerprints of the keys that signed ``issue``'s links (several after a rotation)."""
        table = schema.key_checks
        with self.read() as conn:
            rows = conn.execute(
                select(table.c.check_value).where(table.c.name.like(f"links {issue} %"))
            )
            return {value for (value,) in rows}

    def pseudonym(self, folded_address: str) -> str:
        """The keyed HMAC-SHA256 of a case-folded address (hex)."""
        mac = self._pseudonym_hmac.copy()
        mac.update(folded_address.encode("utf-8"))
        return mac.hexdigest()

    # lifecycle --------------------------------------------------------------

    def upgrade(self) -> list[migrations.Migration]:
        try:
            return migrations.upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(
                f"database {self.describe()}: cannot migrate: {str(exc.orig).strip()}"
            ) from None

    def describe(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _safe(url: str) -> str:
    try:
        return make_url(engine_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def open_store(ws: Workspace, *, migrate: bool = True) -> Store:
    """The workspace's database, migrated to the latest version unless ``migrate=False``."""
    store = Store.connect(ws.database_url, ws)
    if migrate:
        try:
            with store.engine.connect():
                pass
        except OperationalError as exc:
            store.close()
            raise StoreError(
                f"cannot connect to {store.describe()}: {str(exc.orig).strip().splitlines()[0]}; "
                "check [database] url or DIGEST_DATABASE_URL"
            ) from None
        try:
            if migrations.pending(store.engine):
                store.upgrade()
            store.check_keys()
        except OperationalError as exc:  # busy or locked (another process holds it)
            store.close()
            raise StoreError(
                f"database {store.describe()}: {str(exc.orig).strip().splitlines()[0]}"
            ) from None
        except BaseException:
            store.close()
            raise
    return store
