"""Re-permission: `digest subscribers reconfirm` asks pending readers once each, like a send.

The confirmation email goes through the workspace's sender (a real aiosmtpd
server here); the link in it is followed on a real `digest serve` process,
which confirms the reader with fresh evidence. Readers who never click stay
pending. A second run asks nobody twice; a message in doubt is mailed again
only when asked; a deferred one by the next run.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from _public_fixtures import confirm_link
from _send_fixtures import SmtpSink
from conftest import FIXTURES, Cli
from sqlalchemy import select, update
from test_security_serve import Served

from digest import consent
from digest.people import audience, changes, record, rights
from digest.store import Store, schema
from digest.workspace import Workspace

EXPORTS = FIXTURES / "exports"
KIT = EXPORTS / "kit" / "kit-subscribers.csv"  # pending: pending.reader@example.net
BUTTONDOWN = EXPORTS / "buttondown" / "subscribers.csv"  # pending: c.duarte@example.net
PENDING = {"pending.reader@example.net", "c.duarte@example.net"}


def _mails(sink: SmtpSink) -> list[EmailMessage]:
    return [
        message_from_bytes(r.data, policy=policy.default)  # type: ignore[misc]
        for r in sink.received
    ]


def _who(store: Store, email: str) -> record.Subscriber:
    found = record.find_by_email(store, email)
    assert found is not None, email
    return found


def _import(cli: Cli, *paths: Path, now: str | None = None) -> None:
    for path in paths:
        args = ["--now", now] if now else []
        result = cli(*args, "subscribers", "import", str(path))
        assert result.exit_code == 0, result.output


def test_confirming_on_the_real_server_makes_the_reader_active(
    site_ws: Workspace, smtp_sink: SmtpSink, cli: Cli, store: Store
) -> None:
    _import(cli, KIT, BUTTONDOWN)
    asked = cli("subscribers", "reconfirm", input="y\n")
    assert asked.exit_code == 0, asked.output
    assert "starting round 1 (status pending): 2 readers to ask: " in asked.output
    assert "c***@example.net" in asked.output and "p***@example.net" in asked.output
    assert "Mail the confirmation email to 2 readers? [y/N]" in asked.output
    assert "round 1: sent 2" in asked.output
    mails = {m["To"].addresses[0].addr_spec: m for m in _mails(smtp_sink)}
    assert set(mails) == PENDING
    mail = mails["c.duarte@example.net"]
    assert mail["Subject"].startswith("Confirm your subscription to")
    link = confirm_link(mail)

    served = Served(site_ws)
    try:
        path = re.sub(r"^https?://[^/]+", "", link)
        with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=10) as client:
            assert client.get(path).status_code == 200  # the page with its button: no change
            assert _who(store, "c.duarte@example.net").status == "pending"
            confirmed = client.post(path, headers={"User-Agent": "reader's browser"})
        assert confirmed.status_code == 200, confirmed.text
    finally:
        served.stop()

    shown = rights.show(store, "c.duarte@example.net")
    assert shown["subscriber"]["status"] == "active"
    imported, fresh = shown["events"]
    assert (imported["event"], fresh["event"], fresh["method"]) == ("imported", "confirmed", "link")
    assert fresh["evidence"]["ip"] == "127.0.0.1"
    assert fresh["evidence"]["user_agent"] == "reader's browser"
    assert fresh["statement"]["text"] == site_ws.config.consent_statement  # ours, now
    assert "c.duarte@example.net" in {s.email for s in audience.audience(store)}
    # the reader who never clicked stays pending, and is not mailed
    assert _who(store, "pending.reader@example.net").status == "pending"
    assert "pending.reader@example.net" not in {s.email for s in audience.audience(store)}

    again = cli("subscribers", "reconfirm", "--yes")
    assert again.exit_code == 0, again.output
    assert "nobody to ask (status pending); 1 asked in an earlier round" in again.output
    assert len(smtp_sink.received) == 2  # nobody twice
    assert consent.verify(store).ok


def test_a_message_in_doubt_goes_again_only_when_asked(
    site_ws: Workspace, smtp_sink: SmtpSink, cli: Cli, store: Store
) -> None:
    _import(cli, KIT, BUTTONDOWN)
    smtp_sink.drop_during_data("c.duarte@example.net")  # the server hangs up during DATA
    smtp_sink.script("pending.reader@example.net", "451 4.7.1 try again later")
    first = cli("subscribers", "reconfirm", "--yes")
    assert first.exit_code == 0, first.output
    assert "round 1: deferred 1, unknown 1" in first.output
    assert "run the command again to resume" in first.output

    second = cli("subscribers", "reconfirm", "--yes")  # resumes: the deferred one goes
    assert "1 reader of round 1 may or may not have got the email" in second.output
    assert "resuming round 1 (status pending): 1 reader to ask: p***@example.net" in second.output
    assert "round 1: sent 1, unknown 1" in second.output
    assert [r.rcpt for r in smtp_sink.received].count("pending.reader@example.net") == 1

    third = cli("subscribers", "reconfirm", "--yes", "--include-unknown")
    assert "resuming round 1 (status pending): 1 reader to ask: c***@example.net" in third.output
    assert "round 1: sent 2" in third.output
    assert [r.rcpt for r in smtp_sink.received].count("c.duarte@example.net") == 2  # asked for
    assert "nobody to ask" in cli("subscribers", "reconfirm", "--yes").output


def test_a_run_that_died_leaves_its_reader_in_doubt(cli: Cli, store: Store) -> None:
    """A process killed while a message went out: its row is `sending` with a dead owner."""
    _import(cli, KIT, BUTTONDOWN)
    assert cli("subscribers", "reconfirm", "--yes").exit_code == 0  # the outbox sender
    rows = schema.reconfirmations
    with store.begin() as conn:
        conn.execute(
            update(rows)
            .where(rows.c.subscriber_id == _who(store, "c.duarte@example.net").id)
            .values(state="sending", owner="elsewhere:1:dead", lease_until="2026-12-02T09:00:00Z")
        )
    outbox = store.workspace.outbox_dir / "confirmations"
    before = {p.name: p.stat().st_mtime_ns for p in outbox.iterdir()}
    # the outbox cannot mail twice (one file per reader): the row in doubt is written again
    again = cli("subscribers", "reconfirm", "--yes")
    assert "resuming round 1 (status pending): 1 reader to ask: c***@example.net" in again.output
    assert "round 1: sent 2" in again.output
    assert sorted(p.name for p in outbox.iterdir()) == sorted(before)
    with store.read() as conn:
        states = dict(conn.execute(select(rows.c.subscriber_id, rows.c.state)).all())
    assert set(states.values()) == {"sent"}


def test_the_group_is_chosen_by_import_date_and_frozen(cli: Cli, store: Store) -> None:
    _import(cli, KIT, now="2026-11-01T09:00:00Z")
    _import(cli, BUTTONDOWN)
    asked = cli("subscribers", "reconfirm", "--imported-before", "2026-11-15", "--yes")
    assert "2026-11-15): 1 reader to ask: p***@example.net" in asked.output
    assert "round 1: sent 1" in asked.output
    rest = cli("subscribers", "reconfirm", "--yes")
    assert "starting round 2 (status pending): 1 reader to ask: c***@example.net" in rest.output
    # a reader who confirmed, left or was suppressed since the freeze is skipped, not mailed
    record_id = _who(store, "pending.reader@example.net").id
    changes.suppress(store, record_id, reason="asked by phone", source="test")
    last = cli("subscribers", "reconfirm", "--again", "--yes")
    assert "starting round 3 (status pending): 1 reader to ask: c***@example.net" in last.output
    bad = cli("subscribers", "reconfirm", "--imported-before", "last week")
    assert bad.exit_code == 1 and "--imported-before 'last week' is not a date" in bad.output


def test_nothing_is_frozen_when_the_operator_says_no(cli: Cli, store: Store) -> None:
    _import(cli, KIT)
    no = cli("subscribers", "reconfirm", input="n\n")
    assert no.exit_code == 1 and "Aborted" in no.output
    with store.read() as conn:
        assert conn.execute(select(schema.reconfirmations.c.round)).all() == []
    assert not (store.workspace.outbox_dir / "confirmations").exists()


@pytest.fixture(autouse=True)
def _signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from _public_fixtures import SECRET

    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
