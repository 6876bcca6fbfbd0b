"""`digest bounces fetch` against a real Dovecot on loopback, on both backends."""

from __future__ import annotations

import secrets
from datetime import date

import pytest
from _bounce_fixtures import Dovecot, bounce_config, reader_values, report
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SEND_DAY, add_readers
from conftest import Cli

from digest import consent
from digest.errors import SendError
from digest.people import record
from digest.send import engine
from digest.send.intake import mailbox
from digest.store import open_store
from digest.workspace import Workspace


def imap_workspace(
    ws: Workspace, server: Dovecot, user: str, monkeypatch: pytest.MonkeyPatch, after: str = "move"
) -> Workspace:
    monkeypatch.setenv("DIGEST_BOUNCE_IMAP_USER", user)
    monkeypatch.setenv("DIGEST_BOUNCE_IMAP_PASSWORD", "secret")
    return bounce_config(
        ws,
        {
            ("bounces.imap", "host"): '"127.0.0.1"',
            ("bounces.imap", "port"): str(server.port),
            ("bounces.imap", "security"): '"none"',
            ("bounces.imap", "after"): f'"{after}"',
        },
    )


def test_fetch_applies_reports_moves_them_and_the_next_issue_skips_the_reader(
    send_ws: Workspace, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"b{secrets.token_hex(4)}"
    ws = imap_workspace(send_ws, dovecot, user, monkeypatch)
    ids = add_readers(ws, 5)
    engine.run_send(ws, SEND_DAY)  # to the outbox: the issue the reports are about
    emails = {sid: f"reader{n}@example.net" for n, sid in enumerate(ids)}

    def values(n: int) -> dict[str, str]:
        return reader_values(ws, ids[n], emails[ids[n]], SEND_DAY)

    dovecot.deliver(report("gmail-account-does-not-exist.eml", values(0)), user)
    dovecot.deliver(report("arf-abuse.eml", values(1)), user)
    dovecot.deliver(report("mailbox-full.eml", values(2)), user)
    dovecot.deliver(report("auto-reply.eml", values(3)), user)
    dovecot.deliver(report("mailto-unsubscribe.eml", values(4)), user)

    with open_store(ws) as store:
        first = mailbox.fetch(store)
    assert first.messages == 5 and not first.problems
    assert dict(first.outcomes) == {
        "suppressed": 2,
        "counted": 1,
        "ignored": 1,
        "unsubscribed": 1,
    }
    assert dovecot.count("INBOX", user) == 0
    assert dovecot.count("digest-processed", user) == 5
    second = Cli(ws.root)("bounces", "fetch")  # the command cron runs: nothing new
    assert (second.exit_code, second.output.strip()) == (0, "0 message(s) read: nothing")
    with open_store(ws) as store:
        statuses = [record.get_subscriber(store, sid).status for sid in ids]  # type: ignore[union-attr]
        assert statuses == ["bounced", "complained", "active", "active", "unsubscribed"]
        assert consent.verify(store).ok

    nxt = sample_issue(day=date(2026, 12, 11))
    nxt.status = "ready"
    write_issue(ws, nxt)
    engine.run_send(ws, "2026-12-11")
    sent = {p.stem for p in (ws.outbox_dir / "2026-12-11").glob("*.eml")}
    assert sent == {ids[2], ids[3]}


def test_fetch_can_delete_and_refuses_a_wrong_password(
    send_ws: Workspace, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"b{secrets.token_hex(4)}"
    ws = imap_workspace(send_ws, dovecot, user, monkeypatch, after="delete")
    ids = add_readers(ws, 1)
    dovecot.deliver(
        report(
            "postfix-user-unknown.eml", reader_values(ws, ids[0], "reader0@example.net", SEND_DAY)
        ),
        user,
    )
    with open_store(ws) as store:
        done = mailbox.fetch(store)
    assert dict(done.outcomes) == {"suppressed": 1}
    assert dovecot.count("INBOX", user) == 0
    monkeypatch.setenv("DIGEST_BOUNCE_IMAP_PASSWORD", "wrong")
    with open_store(ws) as store, pytest.raises(SendError, match=f"127.0.0.1:{dovecot.port}"):
        mailbox.fetch(store)
