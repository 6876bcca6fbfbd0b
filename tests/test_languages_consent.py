"""The ledger knows the reader's language: each statement is recorded with the language it
was shown in, a change of language is a new version, and a person's export and the operator's
commands show the text they agreed to, in their language. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

from _render_fixtures import set_config
from sqlalchemy import inspect, text

from digest import consent
from digest.people import changes, rights
from digest.store import Store, migrations, open_store
from digest.workspace import Workspace

FORM = {"method": "web_form", "source": "https://newsletter.example.com/subscribe"}


def _statements(store: Store) -> list[consent.Text]:
    return [t for t, _count in consent.statements(store)]


def test_a_statement_is_recorded_with_its_language_and_a_new_language_is_a_new_version(
    store: Store, workspace: Workspace
) -> None:
    first = changes.request_signup(store, "a@example.com", None, evidence={}, **FORM)
    ws = set_config(workspace, 'language = "en"', 'language = "ru"')
    with open_store(ws) as russian:
        second = changes.request_signup(russian, "b@example.com", None, evidence={}, **FORM)
        changes.request_signup(russian, "c@example.com", None, evidence={}, **FORM)
    english, own = _statements(store)
    assert (english.version, english.language) == ("1", "en")
    assert english.body.startswith("Yes, send me The Weekly Brief by email every Friday.")
    assert (own.version, own.language) == ("2", "ru")
    assert own.body == ws.config.consent_statement and own.body.startswith("Да, присылайте")
    assert own.sha256 == consent.statement_sha("ru", own.body) != consent.sha256(own.body)
    with store.read() as conn:
        named = {e.subject_id: e.statement_id for e in consent.history(conn, first.id)}
        named |= {e.subject_id: e.statement_id for e in consent.history(conn, second.id)}
    assert named == {first.id: english.id, second.id: own.id}
    assert [count for _t, count in consent.statements(store)] == [1, 2]
    assert consent.verify(store).ok


def test_the_same_text_in_another_language_is_another_statement(
    store: Store, workspace: Workspace
) -> None:
    """An editor's own statement, kept word for word, still changes with the language."""
    ws = set_config(workspace, 'consent_statement = ""', 'consent_statement = "Yes: {name}."')
    with open_store(ws) as own:
        changes.request_signup(own, "a@example.com", None, evidence={}, **FORM)
    ws = set_config(ws, 'language = "en"', 'language = "de"')
    with open_store(ws) as german:
        changes.request_signup(german, "b@example.com", None, evidence={}, **FORM)
    assert [(t.language, t.body) for t in _statements(store)] == [
        ("en", "Yes: The Weekly Brief."),
        ("de", "Yes: The Weekly Brief."),
    ]
    assert consent.verify(store).ok


def test_an_edited_language_breaks_the_ledger(store: Store, workspace: Workspace) -> None:
    changes.request_signup(store, "a@example.com", None, evidence={}, **FORM)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE consent_texts SET language = 'de' WHERE kind = 'statement'"))
    result = consent.verify(store)
    assert not result.ok and "consent text 1 (statement) was edited" in result.problem


def test_an_export_shows_the_text_agreed_to_in_the_readers_language(
    cli, store: Store, workspace: Workspace
) -> None:
    ws = set_config(workspace, 'language = "en"', 'language = "pl"')
    with open_store(ws) as polish:
        changes.request_signup(polish, "anna@example.com", "Anna", evidence={}, **FORM)
    data = json.loads(cli("subscribers", "export", "anna@example.com").output)
    assert data["language"] == "pl"
    statement = data["consent_events"][0]["statement"]
    assert statement["language"] == "pl"
    assert statement["text"].startswith("Tak, chcę otrzymywać newsletter The Weekly Brief")
    assert data["retention"]["evidence"].startswith("Przechowujemy je razem ze zdarzeniami")
    shown = cli("subscribers", "show", "anna@example.com").output
    assert "statement v1 (pl)" in shown and "statement v1: Tak, chcę otrzymywać" in shown
    texts = cli("consent", "verify", "--texts").output
    assert "statement v1 (pl), 2 events" in texts and "Tak, chcę otrzymywać" in texts


def test_an_older_database_gets_the_language_column(store: Store) -> None:
    """A ledger made before languages: its texts keep verifying, new ones name their language."""
    with store.engine.begin() as conn:
        conn.execute(
            consent.texts_t.insert().values(
                kind="statement",
                version="1",
                body="Yes, please.",
                url="",
                sha256=consent.sha256("Yes, please."),
                created_at="2026-01-01T00:00:00.000000Z",
            )
        )
        conn.execute(text("ALTER TABLE consent_texts DROP COLUMN language"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version = 7"))
    assert [m.version for m in migrations.pending(store.engine)] == [7]
    migrations.upgrade(store.engine)
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("consent_texts")}
    assert "language" in columns
    [old] = _statements(store)
    assert old.language == "" and consent.verify(store).ok
    changes.request_signup(store, "a@example.com", None, evidence={}, **FORM)
    assert [t.language for t in _statements(store)] == ["", "en"]
    assert consent.verify(store).ok
    assert rights.show(store, "a@example.com")["events"][0]["statement"]["language"] == "en"
