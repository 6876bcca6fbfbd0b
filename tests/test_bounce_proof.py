"""Proof names the reader: a report changes a reader only when it proves the message was
ours AND that this reader was its recipient (both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from _bounce_fixtures import bounce_config, reader_values, report

from digest.confirmation import build
from digest.message import message_id, read_message_id
from digest.people import changes, record
from digest.send.intake.reader import Reader, tokens_for
from digest.store import open_store

ISSUE = "2026-12-04"


@pytest.fixture
def people(database_url: str, workspace: Any) -> tuple[Any, list[record.Subscriber]]:
    ws = bounce_config(workspace)
    with open_store(ws) as store:
        made = [
            changes.admin_add(store, f"{name}@example.net", source="t", confirmed=True)
            for name in ("alice", "carol", "mallory")
        ]
    return ws, made


def _process(ws: Any, raw: bytes) -> list[tuple[str, str]]:
    with open_store(ws) as store:
        done = Reader(store, tokens_for(store), "file").process(raw)
    return [(o.outcome, o.subscriber_id) for o in done]


def _status(ws: Any, sid: str) -> str:
    with open_store(ws) as store:
        sub = record.get_subscriber(store, sid)
    assert sub is not None
    return sub.status


def test_a_dsn_quoting_alices_message_id_for_another_recipient_does_not_mark_alice(
    people: Any,
) -> None:
    ws, (alice, _, mallory) = people
    values = reader_values(ws, alice.id, alice.email, ISSUE)
    values["RETURN_PATH"] = "brief@news.example.org"  # no VERP: only the Message-ID
    values["RCPT"] = mallory.email  # Alice forwarded it; Mallory's mailbox bounced
    assert _process(ws, report("postfix-user-unknown.eml", values)) == [("not ours", mallory.id)]
    assert _status(ws, alice.id) == "active" and _status(ws, mallory.id) == "active"
    # The same report for Alice's own address is proof: her keyed id, her address.
    values["RCPT"] = alice.email
    assert _process(ws, report("postfix-user-unknown.eml", values)) == [("suppressed", alice.id)]


def test_an_arf_quoting_carols_forwarded_unsubscribe_link_does_not_mark_carol(
    people: Any,
) -> None:
    ws, (_, carol, _) = people
    values = reader_values(ws, carol.id, carol.email, ISSUE)
    values["RETURN_PATH"] = "brief@news.example.org"
    # Carol forwarded the issue; the friend's provider reports it, Original-Rcpt-To theirs.
    values["RCPT"] = "friend@elsewhere.example"
    assert _process(ws, report("arf-abuse.eml", values)) == [("unknown", "")]
    # A redacted report naming nobody, with only her signed link: no proof either.
    assert [o for o, _ in _process(ws, report("arf-redacted.eml", values))] == ["unknown"]
    assert _status(ws, carol.id) == "active"


def test_message_ids_are_keyed_and_old_unkeyed_ids_prove_nothing(people: Any) -> None:
    ws, (alice, _, _) = people
    tokens = ws.tokens()
    mid = message_id(ws.config, tokens, ISSUE, alice.id)
    assert read_message_id(ws.config, tokens, mid) == (ISSUE, alice.id)
    forged = mid.replace(alice.id, "someone-else")
    assert read_message_id(ws.config, tokens, forged) is None
    old = f"<{ISSUE}.0123456789abcdef01234567@{ws.config.newsletter.domain}>"
    assert read_message_id(ws.config, tokens, old) is None


def test_a_bounce_of_the_confirmation_email_names_its_reader(people: Any) -> None:
    ws, (_, _, _) = people
    with open_store(ws) as store:
        pending = changes.admin_add(store, "pending@example.net", source="t")
    parts = build(ws, pending.email, "", "https://news.example.org/confirm/x", pending.id)
    values = reader_values(ws, pending.id, pending.email, ISSUE)
    values["RETURN_PATH"] = "brief@news.example.org"
    values["MESSAGE_ID"] = parts.message_id
    assert read_message_id(ws.config, ws.tokens(), parts.message_id) == ("confirm", pending.id)
    assert _process(ws, report("postfix-user-unknown.eml", values)) == [("suppressed", pending.id)]
    assert _status(ws, pending.id) == "bounced"
