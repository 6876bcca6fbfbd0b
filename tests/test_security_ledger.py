"""Edits around the consent chain: statuses, suppressions, evidence, a rewound head.

Each tampering is made with raw SQL, as someone with database access would,
on SQLite and on PostgreSQL (the ``store`` fixture runs both). The database
refuses the edits that triggers can stop; ``consent verify`` finds the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _store_fixtures import drop_append_only
from sqlalchemy.exc import DBAPIError

from digest import consent, lifecycle
from digest.people import changes, record, rights
from digest.store import Store


def _readers(store: Store) -> dict[str, str]:
    """One reader in each state the ledger can prove; name -> id."""
    ids = {}
    for name in ("active", "unsubscribed", "bounced", "erased", "pending"):
        ids[name] = changes.request_signup(
            store,
            f"{name}@example.com",
            name.title(),
            method="web_form",
            source="https://newsletter.example.com/subscribe",
            evidence={"ip": "192.0.2.1"},
        ).id
        if name != "pending":
            changes.confirm(store, ids[name], method="link", source="confirm", evidence={})
    changes.unsubscribe(store, ids["unsubscribed"], method="link", source="t", evidence={})
    changes.suppress(store, ids["bounced"], reason="hard bounce", kind="bounced", source="t")
    rights.erase(store, ids["erased"], source="t")
    changes.admin_add(store, "admin@example.com", source="t", confirmed=True)
    return ids


def _sql(store: Store, *statements: str) -> None:
    with store.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_an_untouched_ledger_verifies_with_no_mismatch(store: Store) -> None:
    _readers(store)
    result = consent.verify(store)
    assert result.ok and result.mismatches == [], result


def test_a_status_set_back_to_active_is_reported(store: Store, cli) -> None:
    ids = _readers(store)
    _sql(store, f"UPDATE subscribers SET status = 'active' WHERE id = '{ids['unsubscribed']}'")
    result = consent.verify(store)
    assert not result.ok and result.broken_seq is None  # the chain itself is whole
    assert result.mismatches == [
        f"subscriber {ids['unsubscribed']}: status is active, the ledger says unsubscribed"
    ]
    output = cli("consent", "verify")
    assert output.exit_code == 1
    assert f"subscriber {ids['unsubscribed']}: status is active" in output.output


def test_the_database_refuses_deleting_a_suppression(store: Store) -> None:
    ids = _readers(store)
    with pytest.raises(DBAPIError, match="suppressions"):
        _sql(store, "DELETE FROM suppressions")
    with pytest.raises(DBAPIError, match="suppressions"):
        _sql(store, "UPDATE suppressions SET key = 'x'")
    assert consent.verify(store).ok
    assert record.is_suppressed(store, ids["bounced"])


def test_a_deleted_suppression_is_reported(store: Store) -> None:
    ids = _readers(store)
    drop_append_only(store)
    _sql(store, "DELETE FROM suppressions WHERE reason = 'bounced'")
    result = consent.verify(store)
    assert not result.ok
    assert result.mismatches == [
        f"subscriber {ids['bounced']}: bounced in the ledger but not on the suppression list"
    ]


def test_an_erased_readers_deleted_suppression_is_reported(store: Store) -> None:
    ids = _readers(store)
    drop_append_only(store)
    _sql(store, "DELETE FROM suppressions WHERE reason = 'erased'")
    assert consent.verify(store).mismatches == [
        f"subscriber {ids['erased']}: erased in the ledger but not on the suppression list"
    ]


def test_deleted_evidence_of_a_reader_not_erased_is_reported(store: Store) -> None:
    ids = _readers(store)
    with store.read() as conn:
        seqs = [e.seq for e in consent.history(conn, ids["active"])]
    _sql(store, f"DELETE FROM consent_evidence WHERE seq IN ({', '.join(map(str, seqs))})")
    result = consent.verify(store)
    assert not result.ok
    assert result.mismatches == [
        f"subscriber {ids['active']}: the evidence of event {seq} is missing "
        "(only an erasure deletes evidence)"
        for seq in seqs
    ]


def test_a_deleted_subscriber_row_is_reported(store: Store) -> None:
    ids = _readers(store)
    _sql(store, f"DELETE FROM subscribers WHERE id = '{ids['active']}'")
    assert consent.verify(store).mismatches == [
        f"subscriber {ids['active']}: has consent events but no subscriber row"
    ]


def test_the_database_refuses_rewinding_the_chain_head(store: Store) -> None:
    _readers(store)
    head = consent.verify(store)
    with pytest.raises(DBAPIError, match="chain_head"):
        _sql(store, f"UPDATE chain_head SET seq = {head.head_seq - 1}")
    with pytest.raises(DBAPIError, match="chain_head"):
        _sql(store, "UPDATE chain_head SET hash = 'x'")
    with pytest.raises(DBAPIError, match="chain_head"):
        _sql(store, "DELETE FROM chain_head")
    assert consent.verify(store).ok


def _truncate_last_event(store: Store) -> None:
    """Delete the last event and point the head at the one before: a clean, shorter chain."""
    head = consent.verify(store)
    drop_append_only(store)
    _sql(
        store,
        f"DELETE FROM consent_evidence WHERE seq = {head.head_seq}",
        f"DELETE FROM consent_events WHERE seq = {head.head_seq}",
        "UPDATE chain_head SET seq = seq - 1, hash = "
        f"(SELECT hash FROM consent_events WHERE seq = {head.head_seq - 1})",
    )


def test_a_truncated_tail_is_found_against_a_published_head(store: Store, cli) -> None:
    _readers(store)
    published = cli("consent", "head")
    assert published.exit_code == 0
    seq_hash = published.output.strip()
    seq, digest = seq_hash.split(":")
    assert consent.verify(store, expect=[(int(seq), digest)]).ok
    _truncate_last_event(store)
    assert consent.verify(store).broken_seq is None  # alone, the shorter chain looks whole
    result = consent.verify(store, expect=[(int(seq), digest)])
    assert not result.ok
    assert result.problem == (
        f"the published head {seq}:{digest[:12]}… is not in the ledger: "
        f"it ends at event {int(seq) - 1} (truncated)"
    )
    output = cli("consent", "verify", "--expect-head", seq_hash)
    assert output.exit_code == 1 and "truncated" in output.output


def test_a_rewritten_tail_is_found_against_a_file_of_published_heads(
    store: Store, cli, tmp_path: Path
) -> None:
    ids = _readers(store)
    first = consent.head(store)
    changes.unsubscribe(store, ids["active"], method="link", source="t", evidence={})
    second = consent.head(store)
    heads = tmp_path / "heads.txt"
    heads.write_text(f"# published in the archive footer\n{first}\n\n{second}\n")
    assert cli("consent", "verify", "--heads", str(heads)).exit_code == 0
    # Rewrite the last event (unsubscribed -> a forged "exported") and re-chain it.
    drop_append_only(store)
    with store.engine.begin() as conn:
        row = conn.exec_driver_sql(
            f"SELECT * FROM consent_events WHERE seq = {second.split(':')[0]}"
        ).one()
        fields = list(row[:11])
        fields[2] = "exported"
        forged = consent.event_hash(fields)
        conn.exec_driver_sql(
            f"UPDATE consent_events SET kind = 'exported', hash = '{forged}' WHERE seq = {row.seq}"
        )
        conn.exec_driver_sql(f"UPDATE chain_head SET hash = '{forged}'")
        conn.exec_driver_sql(
            f"UPDATE subscribers SET status = 'active' WHERE id = '{ids['active']}'"
        )
    assert consent.verify(store).ok  # self-consistent again
    output = cli("consent", "verify", "--heads", str(heads))
    assert output.exit_code == 1
    assert f"the published head {second.split(':')[0]}:" in output.output
    assert "rewritten" in output.output


def test_a_malformed_published_head_is_one_clear_line(store: Store, cli, tmp_path: Path) -> None:
    _readers(store)
    output = cli("consent", "verify", "--expect-head", "twelve:abc")
    assert output.exit_code == 2 and "SEQ:HASH" in output.output
    bad = tmp_path / "heads.txt"
    bad.write_text("12:" + "a" * 64 + "\nnonsense\n")
    output = cli("consent", "verify", "--heads", str(bad))
    assert output.exit_code == 1
    assert f"{bad}:2:" in output.output and "Traceback" not in output.output


def test_the_replay_agrees_with_the_lifecycle_table() -> None:
    """verify replays events with its own table; it must say what the lifecycle does."""
    for transition in lifecycle.TRANSITIONS.values():
        assert consent.STATUS_AFTER[transition.event] == transition.target, transition.name
