"""International addresses and names (RFC 6531/6532, IDNA, RFC 2047) over real SMTP.

Every test runs against an aiosmtpd server that offers SMTPUTF8 and one that
does not (``any_sink``), and the engine tests on SQLite and PostgreSQL. With
SMTPUTF8 every address goes as it is; without it a domain-only IDN goes with
its punycode domain and a non-ASCII local part is that row's ``failed``.
"""

from __future__ import annotations

import asyncio
from datetime import date
from email import message_from_string
from email.policy import default as default_policy

from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SEND_DAY, SmtpSink, add_readers, use_smtp

from digest.errors import SendError
from digest.issue import load_issue
from digest.people.changes import admin_add
from digest.send import engine
from digest.send.deliveries import DeliveryLedger
from digest.send.sender import OutgoingMessage, Result, Sender
from digest.store import open_store
from digest.workspace import Workspace

CYRILLIC = "пользователь@пример.рф"  # local part and domain both non-ASCII
DOMAIN_ONLY = "anna@exämple.com"  # only the domain: IDNA makes it ASCII
PUNYCODE = "anna@xn--exmple-cua.com"


def add(ws: Workspace, email: str, name: str | None) -> str:
    with open_store(ws) as store:
        return admin_add(store, email, name, source="test", confirmed=True).id


def headers(data: bytes):  # type: ignore[no-untyped-def]
    """The parsed message (its bytes are UTF-8 when it went with SMTPUTF8)."""
    return message_from_string(data.decode("utf-8"), policy=default_policy)


def by_rcpt(sink: SmtpSink) -> dict[str, list]:
    out: dict[str, list] = {}
    for received in sink.received:
        out.setdefault(received.rcpt, []).append(received)
    return out


def test_idn_recipients_mixed_with_ascii_on_both_kinds_of_server(
    send_ws: Workspace, any_sink: SmtpSink
) -> None:
    ws = use_smtp(send_ws, any_sink)
    add_readers(ws, 6)
    add(ws, CYRILLIC, "Ольга Петрова")
    add(ws, DOMAIN_ONLY, "Anna Müller")
    utf8 = any_sink.controller.SMTP_kwargs["enable_SMTPUTF8"]

    report = engine.run_send(ws, SEND_DAY)

    assert report.complete and not report.fatal
    assert load_issue(ws.issues_dir / f"{SEND_DAY}.yaml").status == "sent"
    got = by_rcpt(any_sink)
    for n in range(6):  # every ASCII reader, once
        assert len(got[f"reader{n}@example.net"]) == 1
        assert not got[f"reader{n}@example.net"][0].utf8
    if utf8:
        assert report.counts["sent"] == 8 and report.counts["failed"] == 0
        [cyrillic] = got[CYRILLIC]
        assert cyrillic.utf8  # MAIL FROM ... SMTPUTF8
        to = headers(cyrillic.data)["To"]
        assert to.addresses[0].addr_spec == CYRILLIC  # RFC 6532: UTF-8 in the header
        assert to.addresses[0].display_name == "Ольга Петрова"
        assert len(got[DOMAIN_ONLY]) == 1
    else:
        assert report.counts["sent"] == 7 and report.counts["failed"] == 1
        assert CYRILLIC not in got
        [anna] = got[PUNYCODE]
        anna.data.decode("ascii")  # without SMTPUTF8 every header byte is ASCII
        to = headers(anna.data)["To"]
        assert to.addresses[0].addr_spec == PUNYCODE
        assert to.addresses[0].display_name == "Anna Müller"  # RFC 2047 words
        assert b"=?utf-8?" in anna.data.split(b"\r\n\r\n")[0]
        with open_store(ws) as store:
            [(state, reason, count)] = [
                p for p in DeliveryLedger(store, SEND_DAY).failures() if p[0] == "failed"
            ]
        assert count == 1
        assert "server does not accept internationalised addresses" in reason


def test_retry_include_unknown_after_an_idn_failure_sends_nobody_twice(
    send_ws: Workspace, any_sink: SmtpSink
) -> None:
    ws = use_smtp(send_ws, any_sink)
    add_readers(ws, 5)
    add(ws, CYRILLIC, None)
    engine.run_send(ws, SEND_DAY)
    first = len(any_sink.received)
    report = engine.retry(ws, SEND_DAY, include_unknown=True)
    assert report.complete
    assert len(any_sink.received) == first  # nothing was unknown, nothing re-sent


def test_send_test_to_an_idn_address(send_ws: Workspace, any_sink: SmtpSink, cli) -> None:  # type: ignore[no-untyped-def]
    use_smtp(send_ws, any_sink)
    result = cli("send", SEND_DAY, "--test", "user@exämple.com", "--test", "ed@example.com")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    got = by_rcpt(any_sink)
    assert len(got["ed@example.com"]) == 1
    utf8 = any_sink.controller.SMTP_kwargs["enable_SMTPUTF8"]
    assert len(got["user@exämple.com" if utf8 else "user@xn--exmple-cua.com"]) == 1


class _Exploding(Sender):
    """An in-memory sender whose client breaks on one recipient's data."""

    batch_size = 1
    parallel = 2

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
        await asyncio.sleep(0)
        out = []
        for message in batch:
            if message.email.startswith("reader3@"):
                raise ValueError("surprising byte in the address")
            self.sent.append(message.email)
            out.append(Result.accepted("ok"))
        return out


def test_an_unexpected_error_on_one_recipient_fails_that_row_only(send_ws: Workspace) -> None:
    add_readers(send_ws, 6)
    sender = _Exploding()
    report = engine.run_send(send_ws, SEND_DAY, sender=sender)
    assert report.complete and not report.fatal
    assert report.counts["sent"] == 5 and report.counts["failed"] == 1
    with open_store(send_ws) as store:
        reasons = [p for p in DeliveryLedger(store, SEND_DAY).failures() if p[0] == "failed"]
    assert reasons == [("failed", "ValueError: surprising byte in the address", 1)]


def test_a_whole_send_problem_still_stops_the_send(send_ws: Workspace) -> None:
    class Down(Sender):
        async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
            raise SendError("127.0.0.1:1: cannot connect")

    add_readers(send_ws, 3)
    report = engine.run_send(send_ws, SEND_DAY, sender=Down())
    assert report.fatal and report.counts["pending"] == 3


def http_sender(provider: str, seen: list[str]):  # type: ignore[no-untyped-def]
    """A provider on httpx.MockTransport that notes each recipient it was given."""
    import json

    import httpx

    from digest.config import Http
    from digest.send.http import HttpSender
    from digest.send.providers import provider_for

    def handler(request: httpx.Request) -> httpx.Response:
        if provider == "postmark":  # a JSON array, one result per message
            body = json.loads(request.content)
            seen.extend(item["To"] for item in body)
            return httpx.Response(
                200, json=[{"ErrorCode": 0, "Message": "OK", "MessageID": "m"} for _ in body]
            )
        # Mailgun: multipart form with "to" and the MIME message
        text = request.content.decode("utf-8")
        seen.append(text.split('name="to"\r\n\r\n', 1)[1].split("\r\n", 1)[0])
        return httpx.Response(200, json={"id": "<mg@news.example.com>", "message": "Queued."})

    settings = Http(provider=provider, base_url="https://api.test", token_env="T")
    options = {"domain": "news.example.com"} if provider == "mailgun" else {}
    return HttpSender(
        provider_for(settings, "tok", **options),
        settings,
        transport=httpx.MockTransport(handler),
    )


def test_http_providers_take_idn_addresses_as_each_documents(send_ws: Workspace) -> None:
    add_readers(send_ws, 2)
    add(send_ws, CYRILLIC, "Ольга")
    add(send_ws, DOMAIN_ONLY, "Anna Müller")
    postmark: list[str] = []
    report = engine.run_send(send_ws, SEND_DAY, sender=http_sender("postmark", postmark))
    assert report.complete and report.counts["sent"] == 3 and report.counts["failed"] == 1
    assert any(PUNYCODE in to for to in postmark)  # Postmark: the IDNA domain
    assert not any("пример" in to or "exämple" in to for to in postmark)
    with open_store(send_ws) as store:
        [(_, reason, _)] = [
            p for p in DeliveryLedger(store, SEND_DAY).failures() if p[0] == "failed"
        ]
    assert "postmark does not accept internationalised addresses" in reason

    # Mailgun documents SMTPUTF8 through its Messages API: both go as they are.
    issue = sample_issue()
    issue.date = date(2026, 12, 11)
    issue.status = "ready"
    write_issue(send_ws, issue)
    mailgun: list[str] = []
    report = engine.run_send(send_ws, "2026-12-11", sender=http_sender("mailgun", mailgun))
    assert report.complete and report.counts["sent"] == 4
    assert CYRILLIC in mailgun and DOMAIN_ONLY in mailgun
