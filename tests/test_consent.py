"""The consent ledger: hash chain, tamper detection, texts, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _store_fixtures import drop_append_only
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from digest import consent
from digest.consent import Draft
from digest.people import audience, changes, rights
from digest.store import Store, open_store, schema
from digest.workspace import Workspace, open_workspace


def _ledger(store: Store, count: int = 6) -> list[str]:
    """``count`` subscribers with a few events each; returns their ids."""
    ids = []
    for n in range(count):
        sub = changes.request_signup(
            store,
            f"reader{n}@example.com",
            f"Reader {n}",
            method="web_form",
            source="https://newsletter.example.com/subscribe",
            evidence={"ip": f"192.0.2.{n}"},
        )
        ids.append(sub.id)
        if n % 2 == 0:
            changes.confirm(store, sub.id, method="link", source="confirm", evidence={})
    return ids


def _events(store: Store) -> int:
    return consent.verify(store).events


def test_a_fresh_ledger_verifies_and_the_cli_prints_the_head(store: Store, cli) -> None:
    _ledger(store)
    result = consent.verify(store)
    assert result.ok and result.events == 9 and result.head_seq == 9
    with store.read() as conn:
        last = conn.execute(
            select(schema.consent_events.c.hash).order_by(schema.consent_events.c.seq.desc())
        ).first()
    assert last is not None and result.head_hash == last[0]
    output = cli("consent", "verify")
    assert output.exit_code == 0
    assert output.output.strip() == f"ok: 9 events, head #9 {result.head_hash}"


def test_an_edited_event_is_found(store: Store, cli) -> None:
    _ledger(store)
    drop_append_only(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE consent_events SET method = 'import' WHERE seq = 4")
    result = consent.verify(store)
    assert (result.ok, result.broken_seq) == (False, 4)
    assert "edited" in result.problem
    output = cli("consent", "verify")
    assert output.exit_code == 1
    assert "consent ledger broken at event 4" in output.output


def test_a_deleted_event_is_found(store: Store) -> None:
    _ledger(store)
    drop_append_only(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM consent_evidence WHERE seq = 5")
        conn.exec_driver_sql("DELETE FROM consent_events WHERE seq = 5")
    result = consent.verify(store)
    assert (result.ok, result.broken_seq) == (False, 5)
    assert "missing" in result.problem


def test_a_deleted_last_event_is_found(store: Store) -> None:
    _ledger(store)
    drop_append_only(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM consent_evidence WHERE seq = 9")
        conn.exec_driver_sql("DELETE FROM consent_events WHERE seq = 9")
    assert consent.verify(store).broken_seq == 9


def test_an_inserted_event_is_found(store: Store) -> None:
    """A forger who renumbers the tail and inserts a well-formed event at 4.

    The forged event links and hashes correctly; the genuine event after it
    (now numbered 5) no longer does, and its position is reported.
    """
    _ledger(store)
    drop_append_only(store)
    with store.engine.begin() as conn:
        rows = conn.execute(
            select(schema.consent_events).order_by(schema.consent_events.c.seq.desc())
        ).all()
        for row in rows:
            if row.seq >= 4:
                for table in ("consent_evidence", "consent_events"):
                    conn.exec_driver_sql(
                        f"UPDATE {table} SET seq = {row.seq + 1} WHERE seq = {row.seq}"
                    )
        conn.exec_driver_sql("INSERT INTO consent_evidence (seq, body) VALUES (4, '{}')")
        before = next(r for r in rows if r.seq == 3)
        fields = (
            4,
            before.occurred_at,
            "confirmed",
            before.subject_id,
            before.pseudonym,
            "link",
            "forged",
            before.statement_id,
            before.policy_id,
            consent.sha256("{}"),
            before.hash,
        )
        conn.execute(
            schema.consent_events.insert().values(
                dict(zip(consent.EVENT_COLUMNS, (*fields, consent.event_hash(fields)), strict=True))
            )
        )
    result = consent.verify(store)
    assert (result.ok, result.broken_seq) == (False, 5)


def test_reordered_events_are_found(store: Store) -> None:
    _ledger(store)
    drop_append_only(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE consent_events SET seq = 100 WHERE seq = 3")
        conn.exec_driver_sql("UPDATE consent_events SET seq = 3 WHERE seq = 6")
        conn.exec_driver_sql("UPDATE consent_events SET seq = 6 WHERE seq = 100")
    result = consent.verify(store)
    assert (result.ok, result.broken_seq) == (False, 3)


def test_edited_evidence_is_found(store: Store) -> None:
    _ledger(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            """UPDATE consent_evidence SET body = '{"ip":"10.0.0.1"}' WHERE seq = 2"""
        )
    assert consent.verify(store).broken_seq == 2


def test_the_chain_verifies_after_an_erasure(store: Store) -> None:
    ids = _ledger(store)
    rights.erase(store, ids[2], source="test")
    result = consent.verify(store)
    assert result.ok and result.events == 10
    with store.read() as conn:
        kept = conn.execute(
            select(schema.consent_evidence.c.seq)
            .join(
                schema.consent_events, schema.consent_events.c.seq == schema.consent_evidence.c.seq
            )
            .where(schema.consent_events.c.subject_id == ids[2])
        ).all()
    assert kept == []


def test_a_changed_statement_is_a_new_version(store: Store, workspace: Workspace) -> None:
    first = changes.request_signup(
        store, "a@example.com", None, method="web_form", source="f", evidence={}
    )
    config = workspace.config_path
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("every Friday.", "every Friday morning.", 1), encoding="utf-8")
    changed = open_workspace(workspace.root)
    with open_store(changed) as second_store:
        second = changes.request_signup(
            second_store, "b@example.com", None, method="web_form", source="f", evidence={}
        )
    texts = consent.texts(store)
    statements = sorted((t for t in texts.values() if t.kind == "statement"), key=lambda t: t.id)
    assert [t.version for t in statements] == ["1", "2"]
    assert "every Friday. I can" in statements[0].body
    assert "every Friday morning." in statements[1].body
    assert statements[0].sha256 == consent.sha256(statements[0].body)
    with store.read() as conn:
        by_subject = {
            e.subject_id: e.statement_id
            for e in [*consent.history(conn, first.id), *consent.history(conn, second.id)]
        }
    assert by_subject == {first.id: statements[0].id, second.id: statements[1].id}
    assert consent.verify(store).ok


def test_an_edited_consent_text_is_found(store: Store) -> None:
    _ledger(store, 1)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE consent_texts SET body = 'Nothing' WHERE kind = 'statement'")
    result = consent.verify(store)
    assert not result.ok and "consent text" in result.problem


_drafts = st.lists(
    st.tuples(
        st.sampled_from(consent.EVENT_KINDS),
        st.sampled_from(consent.METHODS),
        st.text(max_size=30),
        st.dictionaries(
            st.text(max_size=8), st.one_of(st.text(max_size=20), st.integers()), max_size=3
        ),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(_drafts, min_size=1, max_size=3), victim=st.integers(min_value=0))
def test_any_appended_events_verify_and_any_edit_is_found(
    store: Store, batches, victim: int
) -> None:
    start = _events(store)
    for batch in batches:
        with store.begin() as conn:
            consent.append(
                conn,
                store,
                [
                    Draft(kind, "subject-" + str(i), "p" * 64, method, source, evidence)
                    for i, (kind, method, source, evidence) in enumerate(batch)
                ],
            )
    result = consent.verify(store)
    total = sum(len(b) for b in batches)
    # The chain is whole; these made-up subjects have no subscriber rows, which the
    # replay reports as mismatches (tests/test_security_ledger.py).
    assert result.broken_seq is None and not result.problem
    assert result.events == start + total
    # Change one event's source: the chain must break exactly there.
    seq = start + 1 + victim % total
    drop_append_only(store)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE consent_events SET source = source || 'x' WHERE seq = {seq}"
            )
        assert consent.verify(store).broken_seq == seq
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE consent_events SET source = substr(source, 1, length(source) - 1) "
                f"WHERE seq = {seq}"
            )
        assert consent.verify(store).broken_seq is None
    finally:
        with store.engine.begin() as conn:
            _restore_triggers(conn, store.dialect)


def _restore_triggers(conn, dialect: str) -> None:
    from digest.store import migrations

    if dialect == "sqlite":
        for op in ("update", "delete"):
            conn.exec_driver_sql(migrations._APPEND_ONLY_SQLITE.format(op=op, OP=op.upper()))
    else:
        conn.exec_driver_sql(migrations._APPEND_ONLY_PG[1])


_WRITER = """
import sys
from pathlib import Path
from digest.people import changes
from digest.store import open_store
from digest.workspace import open_workspace
ws = open_workspace(Path(sys.argv[1]))
with open_store(ws) as store:
    for n in range(int(sys.argv[3])):
        sub = changes.request_signup(store, f"w{sys.argv[2]}-{n}@example.com", None,
                                         method="web_form", source="race", evidence={})
        changes.confirm(store, sub.id, method="link", source="race", evidence={})
"""


def test_concurrent_writers_never_fork_the_chain(store: Store, workspace: Workspace) -> None:
    # The writers hold the key the store was made with (a different one is refused).
    key = workspace.secret(workspace.config.consent.pseudonym_key_env).decode()
    env = {**os.environ, "DIGEST_PSEUDONYM_KEY": key}
    if "DIGEST_DATABASE_URL" in os.environ:
        env["DIGEST_DATABASE_URL"] = os.environ["DIGEST_DATABASE_URL"]
    root = str(Path(workspace.root))
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, root, str(w), "10"], env=env)
        for w in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    result = consent.verify(store)
    assert result.ok and result.events == 4 * 10 * 2
    assert sum(1 for _ in audience.audience(store)) == 40
