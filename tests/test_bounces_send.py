"""Synchronous bounces: an SMTP 5xx during the send takes the reader out of the next issue."""

from __future__ import annotations

import email
from datetime import date

import pytest
from _bounce_fixtures import bounce_config
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SEND_DAY, SmtpSink, add_readers, use_smtp

from digest import bounces, consent
from digest.people import record, rights
from digest.send import engine
from digest.store import open_store
from digest.tokens import Tokens
from digest.workspace import Workspace

NEXT_DAY = date(2026, 12, 11)


def smtp_workspace(ws: Workspace, sink: SmtpSink) -> Workspace:
    return bounce_config(use_smtp(ws, sink))


def test_smtp_550_511_is_a_hard_bounce_and_the_next_issue_skips_the_reader(
    send_ws: Workspace, smtp_sink: SmtpSink
) -> None:
    ws = smtp_workspace(send_ws, smtp_sink)
    ids = add_readers(ws, 6)
    by_address = {f"reader{n}@example.net": sid for n, sid in enumerate(ids)}
    smtp_sink.script("reader2@example.net", "550 5.1.1 <reader2@example.net>: User unknown")
    smtp_sink.script("reader4@example.net", "550 5.7.1 Client host blocked using a block list")
    report = engine.run_send(ws, SEND_DAY)
    assert report.counts["sent"] == 4 and report.counts["failed"] == 2

    # Every message left with its own signed return path (VERP) and mailto address.
    tokens = Tokens(ws.secret(ws.config.web.secret_key_env))
    for received in smtp_sink.received:
        local = received.mail_from.split("@")[0]
        assert received.mail_from.endswith("@bounces.news.example.org")
        day, sid = tokens.read_return_path(local.removeprefix("bounce+"))
        assert (day, sid) == (SEND_DAY, by_address[received.rcpt])
        header = email.message_from_bytes(received.data)["List-Unsubscribe"]
        mailto = header.split("mailto:")[1].split("@")[0].removeprefix("unsubscribe+")
        assert tokens.read_mailto(mailto) == by_address[received.rcpt]

    with open_store(ws) as store:
        hard = record.get_subscriber(store, by_address["reader2@example.net"])
        soft = record.get_subscriber(store, by_address["reader4@example.net"])
        assert hard is not None and hard.status == "bounced"
        assert soft is not None and soft.status == "active"  # a block is not the reader's fault
        event = rights.history(store, hard)[-1]
        assert (event.kind, event.method) == ("bounced", "smtp_reply")
        assert event.evidence is not None and event.evidence["status"] == "5.1.1"
        summary = bounces.issue_summary(store, SEND_DAY)
        assert (summary["hard"], summary["soft"]) == (1, 1)
        assert consent.verify(store).ok

    nxt = sample_issue(day=NEXT_DAY)
    nxt.status = "ready"
    write_issue(ws, nxt)
    smtp_sink.handler.received.clear()
    engine.run_send(ws, NEXT_DAY.isoformat())
    assert sorted(smtp_sink.recipients()) == sorted(
        a for a in by_address if a != "reader2@example.net"
    )


def test_a_refusal_retried_counts_once(send_ws: Workspace) -> None:
    from digest.send.intake.refusals import record_refusals
    from digest.send.sender import Result

    sid = add_readers(send_ws, 1)[0]
    refusal = Result.permanent("552 5.2.2 mailbox full", bounce="soft")
    with open_store(send_ws) as store:
        first = record_refusals(store, SEND_DAY, [(sid, refusal)])
        again = record_refusals(store, SEND_DAY, [(sid, refusal)])
    assert [o.outcome for o in first] == ["counted"]
    assert [o.outcome for o in again] == ["duplicate"]


@pytest.mark.parametrize(
    ("reply", "bounce"),
    [
        ("550 5.1.1 no such user", "hard"),
        ("552 5.2.2 mailbox full", "soft"),
        ("554 5.7.1 rejected by policy", "soft"),
    ],
)
def test_the_smtp_sender_classifies_its_5xx(smtp_sink: SmtpSink, reply: str, bounce: str) -> None:
    import asyncio

    from test_send_smtp import message, send_all, sender

    smtp_sink.script("reader0@example.net", reply)
    (result,) = asyncio.run(send_all(sender(smtp_sink), [message(0)]))
    assert (result.state, result.bounce) == ("permanent", bounce)


@pytest.mark.parametrize(
    ("provider", "status", "reply", "bounce"),
    [
        (
            "sendgrid",
            400,
            {
                "errors": [
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                    }
                ]
            },
            "hard",
        ),
        (
            "mailgun",
            400,
            {"message": "to parameter is not a valid address. please check documentation"},
            "hard",
        ),
        (
            "sendgrid",
            400,
            {"errors": [{"message": "The subject is required.", "field": "subject"}]},
            "",
        ),
        (
            "postmark",
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.",
            },
            "hard",
        ),
        (
            "postmark",
            422,
            {
                "ErrorCode": 300,
                "Message": "Error parsing 'To': Illegal email "
                "address 'reader0'. It must contain the '@' symbol.",
            },
            "hard",
        ),
        (
            "postmark",
            422,
            {"ErrorCode": 300, "Message": "Provide either email TextBody or HtmlBody or both."},
            "",
        ),
    ],
)
def test_api_refusals_for_the_recipient_are_hard_bounces(
    provider: str, status: int, reply: dict, bounce: str
) -> None:
    import httpx
    from test_send_http import message, run

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=reply)

    (result,) = run(provider, handler, [message(0)])
    assert (result.state, result.bounce) == ("permanent", bounce)


def test_resend_permissive_batch_error_for_an_invalid_to_is_hard() -> None:
    import httpx
    from test_send_http import message, run

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "data": [{"id": "re-a"}],
                "errors": [{"index": 1, "message": "Invalid `to` field."}],
            },
        )

    results = run("resend", handler, [message(0), message(1)])
    assert [(r.state, r.bounce) for r in results] == [("accepted", ""), ("permanent", "hard")]
