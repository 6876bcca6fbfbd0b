"""Versioned migrations, run by ``digest db upgrade`` and on first use.

:data:`MIGRATIONS` is an ordered list of :class:`Migration`; the database
records each applied version in ``schema_migrations``. To add one (say the
deliveries ledger), append one entry with the next version number::

    def _deliveries(conn: Connection, dialect: str) -> None:
        schema.deliveries.create(conn)          # a Table declared in schema.py
        if dialect == "postgresql":
            conn.exec_driver_sql("CREATE INDEX ...")

    MIGRATIONS.append(Migration(2, "deliveries ledger", _deliveries))

A migration runs inside the upgrade's transaction (DDL is transactional on
both backends), gets the connection and ``"sqlite"`` or ``"postgresql"``,
and must never be edited once released: change a table with a new one.
Upgrades are serialised (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), so several processes starting at once apply each version once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, inspect, select

import digest.store.schema as schema  # the module itself: importing the package would cycle
from digest import clock

GENESIS_HASH = "0" * 64
_LOCK_ID = 0x6469676573  # "diges": the advisory lock key for upgrades on PostgreSQL


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection, str], None]


_APPEND_ONLY_SQLITE = """
CREATE TRIGGER consent_events_no_{op} BEFORE {OP} ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only: {OP} refused'); END
"""

_APPEND_ONLY_PG = [
    """
CREATE FUNCTION digest_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'consent_events is append-only: %% refused', TG_OP;
END $$
""",
    """CREATE TRIGGER consent_events_no_change BEFORE UPDATE OR DELETE ON consent_events
FOR EACH ROW EXECUTE FUNCTION digest_refuse_change()""",
    """CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON consent_events
FOR EACH STATEMENT EXECUTE FUNCTION digest_refuse_change()""",
]


def _consent_ledger(conn: Connection, dialect: str) -> None:
    for table in (
        schema.subscribers,
        schema.consent_texts,
        schema.consent_events,
        schema.consent_evidence,
        schema.chain_head,
        schema.suppressions,
    ):
        table.create(conn)
    conn.execute(schema.chain_head.insert().values(id=1, seq=0, hash=GENESIS_HASH))
    if dialect == "sqlite":
        for op in ("update", "delete"):
            conn.exec_driver_sql(_APPEND_ONLY_SQLITE.format(op=op, OP=op.upper()))
    else:
        for statement in _APPEND_ONLY_PG:
            conn.exec_driver_sql(statement)


_GUARDS_SQLITE = [
    """CREATE TRIGGER suppressions_no_update BEFORE UPDATE ON suppressions
BEGIN SELECT RAISE(ABORT, 'suppressions is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER suppressions_no_delete BEFORE DELETE ON suppressions
BEGIN SELECT RAISE(ABORT, 'suppressions is append-only: DELETE refused'); END""",
    """CREATE TRIGGER chain_head_no_insert BEFORE INSERT ON chain_head
BEGIN SELECT RAISE(ABORT, 'chain_head has one row: INSERT refused'); END""",
    """CREATE TRIGGER chain_head_no_delete BEFORE DELETE ON chain_head
BEGIN SELECT RAISE(ABORT, 'chain_head has one row: DELETE refused'); END""",
    """CREATE TRIGGER chain_head_forward_only BEFORE UPDATE ON chain_head
WHEN NEW.id != OLD.id OR NEW.seq < OLD.seq
  OR NEW.hash IS NOT (SELECT hash FROM consent_events WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'chain_head moves only forward, to the last event appended'); END""",
]

_GUARDS_PG = [
    """
CREATE FUNCTION digest_refuse_suppression_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'suppressions is append-only: %% refused', TG_OP;
END $$
""",
    """CREATE TRIGGER suppressions_no_change BEFORE UPDATE OR DELETE ON suppressions
FOR EACH ROW EXECUTE FUNCTION digest_refuse_suppression_change()""",
    """CREATE TRIGGER suppressions_no_truncate BEFORE TRUNCATE ON suppressions
FOR EACH STATEMENT EXECUTE FUNCTION digest_refuse_suppression_change()""",
    """
CREATE FUNCTION digest_guard_chain_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'chain_head has one row: %% refused', TG_OP;
  END IF;
  IF NEW.id <> OLD.id OR NEW.seq < OLD.seq OR NEW.hash IS DISTINCT FROM
      (SELECT hash FROM consent_events WHERE seq = NEW.seq) THEN
    RAISE EXCEPTION 'chain_head moves only forward, to the last event appended';
  END IF;
  RETURN NEW;
END $$
""",
    """CREATE TRIGGER chain_head_guard BEFORE INSERT OR UPDATE OR DELETE ON chain_head
FOR EACH ROW EXECUTE FUNCTION digest_guard_chain_head()""",
    """CREATE TRIGGER chain_head_no_truncate BEFORE TRUNCATE ON chain_head
FOR EACH STATEMENT EXECUTE FUNCTION digest_guard_chain_head()""",
]


def _ledger_guards(conn: Connection, dialect: str) -> None:
    """The suppression list is append-only; the chain head only moves forward to a real event."""
    for statement in _GUARDS_SQLITE if dialect == "sqlite" else _GUARDS_PG:
        conn.exec_driver_sql(statement)


# A suppression a report made (bounced, complained) is the reader's to lift, by
# confirming again: it may go once the subscriber holding its key has a
# ``confirmed`` event as their latest, and the operator may make it for good
# (reason ``admin``). Every other change is still refused.
_CONFIRMED_LAST = """(SELECT e.kind FROM consent_events e JOIN subscribers s ON s.id = e.subject_id
  WHERE s.email_key = OLD.key ORDER BY e.seq DESC LIMIT 1) = 'confirmed'"""
_REPORT = "OLD.reason IN ('bounced', 'complained')"
_HELD = "NEW.reason = 'admin' AND NEW.key = OLD.key AND NEW.created_at = OLD.created_at"

_LIFTS_SQLITE = [
    "DROP TRIGGER suppressions_no_update",
    "DROP TRIGGER suppressions_no_delete",
    f"""CREATE TRIGGER suppressions_no_update BEFORE UPDATE ON suppressions
WHEN NOT ({_REPORT} AND {_HELD})
BEGIN SELECT RAISE(ABORT, 'suppressions is append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER suppressions_no_delete BEFORE DELETE ON suppressions
WHEN NOT ({_REPORT} AND {_CONFIRMED_LAST})
BEGIN SELECT RAISE(ABORT, 'suppressions is append-only: DELETE refused'); END""",
]

_LIFTS_PG = [
    f"""
CREATE OR REPLACE FUNCTION digest_refuse_suppression_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF {_REPORT} AND {_CONFIRMED_LAST} THEN
      RETURN OLD;
    END IF;
  ELSIF TG_OP = 'UPDATE' THEN
    IF {_REPORT} AND {_HELD} THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'suppressions is append-only: %% refused', TG_OP;
END $$
""",
]


def _report_lifts(conn: Connection, dialect: str) -> None:
    for statement in _LIFTS_SQLITE if dialect == "sqlite" else _LIFTS_PG:
        conn.exec_driver_sql(statement)


def _deliveries(conn: Connection, dialect: str) -> None:
    schema.issue_sends.create(conn)
    schema.deliveries.create(conn)


def _bounces(conn: Connection) -> None:
    schema.bounce_reports.create(conn)
    schema.webhook_nonces.create(conn)


def _text_languages(conn: Connection, dialect: str) -> None:
    """The language of each consent text: a column that older databases lack.

    A database made after this column was added to ``schema.consent_texts``
    has it from migration 1 already; only an older one is altered.
    """
    columns = {column["name"] for column in inspect(conn).get_columns("consent_texts")}
    if "language" not in columns:
        conn.exec_driver_sql(
            "ALTER TABLE consent_texts ADD COLUMN language VARCHAR(35) NOT NULL DEFAULT ''"
        )


# Created IF NOT EXISTS: a database made after these lines were added to schema.py
# already has them from the tables' own creation.
_STATS_INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_consent_events_kind_time ON consent_events (kind, occurred_at)",
    "CREATE INDEX IF NOT EXISTS ix_bounce_reports_issue_kind"
    " ON bounce_reports (issue, kind, outcome)",
    "DROP INDEX IF EXISTS ix_bounce_reports_issue",  # the one above begins with it
]
_STATS_INDEXES_PG = [
    "CREATE INDEX IF NOT EXISTS ix_consent_events_subject_seq ON consent_events (subject_id, seq)",
]


def _stats(conn: Connection, dialect: str) -> None:
    """The indexes `digest stats` reads from, and the table of unsubscribe reasons."""
    for statement in _STATS_INDEXES + (_STATS_INDEXES_PG if dialect == "postgresql" else []):
        conn.exec_driver_sql(statement)
    schema.unsubscribe_reasons.create(conn, checkfirst=True)


def _reconfirmations(conn: Connection) -> None:
    schema.reconfirm_rounds.create(conn)
    schema.reconfirmations.create(conn)


MIGRATIONS: list[Migration] = [
    Migration(1, "subscribers and consent ledger", _consent_ledger),
    Migration(2, "schedule runs", lambda conn, dialect: schema.schedule_runs.create(conn)),
    Migration(3, "deliveries ledger", _deliveries),
    Migration(4, "key checks", lambda conn, dialect: schema.key_checks.create(conn)),
    Migration(5, "guards on the suppression list and the chain head", _ledger_guards),
    Migration(6, "bounce reports and webhook nonces", lambda conn, dialect: _bounces(conn)),
    Migration(7, "the language of each consent text", _text_languages),
    Migration(8, "a reader lifts a report's suppression by confirming again", _report_lifts),
    Migration(9, "stats: indexes and unsubscribe reasons", _stats),
    Migration(10, "reconfirmation rounds", lambda conn, dialect: _reconfirmations(conn)),
]


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied_at: str | None  # None: pending


def _applied(conn: Connection) -> dict[int, str]:
    if not inspect(conn).has_table("schema_migrations"):
        return {}
    rows = conn.execute(
        select(schema.schema_migrations.c.version, schema.schema_migrations.c.applied_at)
    )
    return {version: applied for version, applied in rows}


def status(engine: Engine) -> list[MigrationState]:
    """Every known migration, applied (with its time) or pending."""
    with engine.connect() as conn:
        applied = _applied(conn)
    return [MigrationState(m.version, m.name, applied.get(m.version)) for m in _ordered()]


def pending(engine: Engine) -> list[Migration]:
    with engine.connect() as conn:
        applied = _applied(conn)
    return [m for m in _ordered() if m.version not in applied]


def upgrade(engine: Engine) -> list[Migration]:
    """Apply every pending migration in one transaction; return those applied."""
    dialect = engine.dialect.name
    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        if not inspect(conn).has_table("schema_migrations"):
            schema.schema_migrations.create(conn)
        applied = _applied(conn)
        done = []
        for migration in _ordered():
            if migration.version in applied:
                continue
            migration.apply(conn, dialect)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=migration.version,
                    name=migration.name,
                    applied_at=clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                )
            )
            done.append(migration)
    return done


def _ordered() -> list[Migration]:
    ordered = sorted(MIGRATIONS, key=lambda m: m.version)
    versions = [m.version for m in ordered]
    if len(set(versions)) != len(versions):  # pragma: no cover - a programming error
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return ordered
