"""Storage fixtures: a ``store`` on each backend, SQLite and PostgreSQL.

PostgreSQL comes from ``DIGEST_TEST_POSTGRES``; every test gets a fresh
schema of its own (dropped afterwards), so tests never see each other's
rows. Without the variable the PostgreSQL half skips, unless ``CI`` is set,
where it fails: CI must test both.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from digest.store import Store, open_store
from digest.workspace import Workspace

POSTGRES_ENV = "DIGEST_TEST_POSTGRES"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_server() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        if _on_ci():
            pytest.fail(f"{POSTGRES_ENV} is not set on CI: the PostgreSQL tests must run")
        pytest.skip(f"{POSTGRES_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:55432/db)")
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The workspace's database on ``backend``; DIGEST_DATABASE_URL points the CLI at it too."""
    if backend == "sqlite":
        yield workspace.database_url
        return
    server = postgres_server()
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{server}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    yield url
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(database_url: str, workspace: Workspace) -> Iterator[Store]:
    """A migrated store for the workspace, on each backend in turn."""
    with open_store(workspace) as opened:
        yield opened


def drop_append_only(store: Store) -> None:
    """Remove the triggers guarding the ledger's tables, as a tamperer with raw SQL would."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            for name in (
                "consent_events_no_update",
                "consent_events_no_delete",
                "suppressions_no_update",
                "suppressions_no_delete",
                "chain_head_no_insert",
                "chain_head_no_delete",
                "chain_head_forward_only",
            ):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        else:
            conn.exec_driver_sql("DROP TRIGGER consent_events_no_change ON consent_events")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS suppressions_no_change ON suppressions")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS chain_head_guard ON chain_head")


__all__ = ["BACKENDS", "backend", "database_url", "store", "drop_append_only", "postgres_server"]
