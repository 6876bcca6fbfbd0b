"""The store: both backends, migrations, append-only triggers, URLs."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, Table, inspect, select
from sqlalchemy.exc import DBAPIError

from digest.errors import StoreError
from digest.store import Store, engine_url, migrations, open_store, schema
from digest.workspace import Workspace


def test_open_store_migrates_on_first_use(store: Store, backend: str) -> None:
    assert store.dialect == backend
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "subscribers",
        "consent_events",
        "consent_evidence",
        "consent_texts",
        "suppressions",
    } <= tables
    states = migrations.status(store.engine)
    assert [s.version for s in states] == [m.version for m in migrations.MIGRATIONS]
    assert all(s.applied_at for s in states)


def test_db_commands_show_and_apply_migrations(cli, database_url: str) -> None:
    before = cli("db", "status")
    assert before.exit_code == 0, before.output
    assert "1  subscribers and consent ledger  (pending)" in before.output
    upgraded = cli("db", "upgrade")
    assert "applied 1: subscribers and consent ledger" in upgraded.output
    again = cli("db", "upgrade")
    assert "nothing to do" in again.output
    after = cli("db", "status")
    assert "(applied 20" in after.output and "pending" not in after.output


def test_an_appended_migration_runs_once(
    store: Store, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = Table("extra_for_test", schema.metadata, Column("id", Integer, primary_key=True))
    try:
        extra = migrations.Migration(99, "extra table", lambda conn, dialect: table.create(conn))
        monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, extra])
        assert [m.version for m in migrations.pending(store.engine)] == [99]
        with open_store(workspace) as reopened:
            assert [m.version for m in migrations.pending(reopened.engine)] == []
            with reopened.read() as conn:
                assert conn.execute(select(table)).all() == []
        assert store.upgrade() == []
    finally:
        schema.metadata.remove(table)


def test_the_database_refuses_to_change_or_delete_events(
    store: Store, workspace: Workspace
) -> None:
    from digest.people.changes import admin_add

    admin_add(store, "anna@example.com", source="test")
    for statement in ("UPDATE consent_events SET kind = 'confirmed'", "DELETE FROM consent_events"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    with store.read() as conn:
        assert conn.execute(select(schema.consent_events.c.kind)).scalars().all() == ["admin_added"]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(workspace: Workspace) -> None:
    with open_store(workspace) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert (workspace.subscribers_dir / "digest.db").is_file()


def test_user_postgres_urls_use_psycopg3() -> None:
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_postgres_scheme_url_connects(
    database_url: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DIGEST_DATABASE_URL", database_url.replace("postgresql://", "postgres://", 1)
    )
    with open_store(workspace) as store:
        assert store.dialect == "postgresql"
        assert store.engine.url.drivername == "postgresql+psycopg"


def test_an_unreachable_database_is_one_clear_line(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = cli("subscribers", "stats")
    assert result.exit_code == 1
    assert "cannot connect to postgresql+psycopg://nobody@127.0.0.1:1/none" in result.output
    assert "DIGEST_DATABASE_URL" in result.output
    assert "Traceback" not in result.output


def test_an_unsupported_database_is_refused(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", "mysql://u@h/db")
    with pytest.raises(StoreError, match="only sqlite and postgresql"):
        open_store(workspace)


def test_another_pseudonym_key_is_refused(
    store: Store, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second key would file the same address under a second pseudonym."""
    from digest.errors import ConfigError
    from digest.people.changes import admin_add

    admin_add(store, "anna@example.com", "Anna", source="test", confirmed=True)
    monkeypatch.setenv(workspace.config.consent.pseudonym_key_env, "another key entirely")
    with pytest.raises(ConfigError, match="not the key this database was made with"):
        open_store(workspace)


def test_the_sqlite_file_is_private(workspace: Workspace) -> None:
    with open_store(workspace):
        pass
    database = workspace.subscribers_dir / "digest.db"
    assert database.stat().st_mode & 0o777 == 0o600
    assert (workspace.subscribers_dir / ".keys").stat().st_mode & 0o777 == 0o700
