"""The SMTP sender against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest
from _send_fixtures import SmtpSink, TlsFiles

from digest.config import Smtp
from digest.errors import SendError
from digest.send.sender import ACCEPTED, PERMANENT, TRANSIENT, UNKNOWN, OutgoingMessage
from digest.send.smtp import SmtpSender


def message(n: int, address: str | None = None) -> OutgoingMessage:
    address = address or f"reader{n}@example.net"
    mail = EmailMessage()
    mail["From"] = "Brief <brief@example.com>"
    mail["To"] = address
    mail["Subject"] = f"Issue for {n}"
    mail.set_content(f"Hello reader {n}\n")
    return OutgoingMessage(
        n, address, f"k-{n}", wire=lambda: mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))
    )


def sender(sink: SmtpSink, **overrides: object) -> SmtpSender:
    settings = Smtp(host=sink.host, port=sink.port, security="none", timeout=5)
    options: dict = {"connections": 2}
    for key in ("username", "password", "tls_context", "connections"):
        if key in overrides:
            options[key] = overrides.pop(key)
    if overrides:
        settings = Smtp(**{**settings.__dict__, **overrides})
    return SmtpSender(settings, "brief@example.com", **options)


async def send_all(s: SmtpSender, messages: list[OutgoingMessage], size: int = 5) -> list:
    async with s:
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
        results = await asyncio.gather(*(s.send(c) for c in chunks))
    return [r for chunk in results for r in chunk]


def test_messages_arrive_once_each_over_parallel_connections(smtp_sink: SmtpSink) -> None:
    messages = [message(n) for n in range(23)]
    results = asyncio.run(send_all(sender(smtp_sink), messages))
    assert [r.state for r in results] == [ACCEPTED] * 23
    assert sorted(smtp_sink.recipients()) == sorted(m.email for m in messages)
    assert all(r.provider_id.startswith("OK queued as") for r in results)
    assert smtp_sink.received[0].subject.startswith("Issue for")


def test_reconnects_after_messages_per_connection(smtp_sink: SmtpSink) -> None:
    s = sender(smtp_sink, messages_per_connection=3, connections=1)
    results = asyncio.run(send_all(s, [message(n) for n in range(9)], size=9))
    assert all(r.state == ACCEPTED for r in results)
    assert smtp_sink.handler.connections == 3  # 9 messages, 3 per connection


def test_451_is_transient_550_permanent_and_the_rest_go(smtp_sink: SmtpSink) -> None:
    smtp_sink.script("reader1@example.net", "451 4.7.1 Greylisted, try later")
    smtp_sink.script("reader2@example.net", "550 5.1.1 <reader2@example.net>: No such user")
    results = asyncio.run(send_all(sender(smtp_sink), [message(n) for n in range(4)], size=4))
    assert [r.state for r in results] == [ACCEPTED, TRANSIENT, PERMANENT, ACCEPTED]
    assert "451" in results[1].reason and "Greylisted" in results[1].reason
    assert results[2].reason.startswith("550")
    # The server quoted the address; the ledger keeps it masked.
    assert "<r***@example.net>: No such user" in results[2].reason
    assert "reader2@" not in results[2].reason
    assert sorted(smtp_sink.recipients()) == ["reader0@example.net", "reader3@example.net"]


def test_421_reconnects_and_tries_the_message_again(smtp_sink: SmtpSink) -> None:
    smtp_sink.script("reader1@example.net", "421 4.7.0 Too busy, closing")
    results = asyncio.run(
        send_all(sender(smtp_sink, connections=1), [message(n) for n in range(3)], size=3)
    )
    assert [r.state for r in results] == [ACCEPTED] * 3
    assert smtp_sink.recipients().count("reader1@example.net") == 1


def test_421_twice_is_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.script("reader0@example.net", "421 busy", "421 still busy")
    results = asyncio.run(
        send_all(sender(smtp_sink, connections=1), [message(0), message(1)], size=2)
    )
    assert [r.state for r in results] == [TRANSIENT, ACCEPTED]


def test_a_drop_during_data_is_unknown_and_the_send_goes_on(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_during_data("reader1@example.net")
    results = asyncio.run(
        send_all(sender(smtp_sink, connections=1), [message(n) for n in range(4)], size=4)
    )
    assert [r.state for r in results] == [ACCEPTED, UNKNOWN, ACCEPTED, ACCEPTED]
    assert "DATA" in results[1].reason


def test_starttls_with_a_self_signed_certificate(tls_files: TlsFiles) -> None:
    sink = SmtpSink(tls=tls_files.server_context()).start()
    try:
        s = sender(sink, security="starttls", tls_context=tls_files.client_context())
        results = asyncio.run(send_all(s, [message(1)]))
        assert results[0].state == ACCEPTED
        assert sink.recipients() == ["reader1@example.net"]
    finally:
        sink.stop()


def test_an_untrusted_certificate_stops_the_send_naming_host_port(tls_files: TlsFiles) -> None:
    sink = SmtpSink(tls=tls_files.server_context()).start()
    try:
        s = sender(sink, security="starttls")  # the system's CAs do not know this certificate
        with pytest.raises(SendError, match=rf"127\.0\.0\.1:{sink.port}: TLS failed"):
            asyncio.run(send_all(s, [message(1)]))
        assert sink.recipients() == []
    finally:
        sink.stop()


def _login_over_starttls(sink: SmtpSink, tls_files: TlsFiles, password: str) -> SmtpSender:
    """A sender that logs in as "editor" after STARTTLS with the test CA."""
    return sender(
        sink,
        security="starttls",
        tls_context=tls_files.client_context(),
        username="editor",
        password=password,
    )


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_authentication(tls_files: TlsFiles) -> None:
    sink = SmtpSink(tls=tls_files.server_context(), auth=("editor", "s3cret")).start()
    try:
        good = _login_over_starttls(sink, tls_files, "s3cret")
        assert asyncio.run(send_all(good, [message(1)]))[0].state == ACCEPTED
        bad = _login_over_starttls(sink, tls_files, "wrong")
        with pytest.raises(SendError, match=rf"127\.0\.0\.1:{sink.port}: authentication failed"):
            asyncio.run(send_all(bad, [message(2)]))
        none = sender(sink, security="starttls", tls_context=tls_files.client_context())
        with pytest.raises(SendError, match="requires authentication"):
            asyncio.run(send_all(none, [message(3)]))
        assert sink.recipients() == ["reader1@example.net"]
    finally:
        sink.stop()


def test_nobody_listening_is_one_clear_line() -> None:
    from _send_fixtures import free_port

    port = free_port()
    s = SmtpSender(Smtp(host="127.0.0.1", port=port, security="none", timeout=2), "b@example.com")
    with pytest.raises(SendError, match=rf"127\.0\.0\.1:{port}: cannot connect"):
        asyncio.run(send_all(s, [message(1)]))


def test_data_payload_stuffs_dots_and_ends_lines_with_crlf() -> None:
    from digest.send.smtp import data_payload

    assert data_payload(b".a\n..b\r\nc\rd") == b"..a\r\n...b\r\nc\r\nd\r\n.\r\n"
    assert data_payload(b"x\r\n", built=True) == b"x\r\n.\r\n"


def test_pipelining_where_offered_with_refusals_in_the_middle(smtp_sink: SmtpSink) -> None:
    """RFC 2920: MAIL, RCPT and DATA go in one write; a refused RCPT's DATA reply is read
    and the transaction reset, so the next message is not confused by it."""
    smtp_sink.handler.pipelining = True
    smtp_sink.script("reader2@example.net", "550 5.1.1 unknown user")
    smtp_sink.script("reader4@example.net", "451 4.7.1 try later")
    s = sender(smtp_sink, connections=1)

    async def go() -> tuple[list, bool]:
        results = await s.send([message(n) for n in range(7)])
        offered = all(c.pipelining for c in s._idle)
        await s.aclose()
        return results, offered

    results, offered = asyncio.run(go())
    assert offered
    assert [r.state for r in results] == [
        ACCEPTED,
        ACCEPTED,
        PERMANENT,
        ACCEPTED,
        TRANSIENT,
        ACCEPTED,
        ACCEPTED,
    ]
    assert sorted(smtp_sink.recipients()) == sorted(
        f"reader{n}@example.net" for n in (0, 1, 3, 5, 6)
    )
    assert smtp_sink.handler.connections == 1


def test_a_server_without_pipelining_gets_one_command_at_a_time(smtp_sink: SmtpSink) -> None:
    """RFC 2920 lets a client pipeline only when the server offers PIPELINING: without
    it, every command waits for the reply to the one before (one message in flight)."""
    smtp_sink.handler.pipelining = False
    smtp_sink.script("reader2@example.net", "550 5.1.1 unknown user")
    results = asyncio.run(
        send_all(sender(smtp_sink, connections=1), [message(n) for n in range(6)], 6)
    )
    assert [r.state for r in results] == [
        ACCEPTED,
        ACCEPTED,
        PERMANENT,
        ACCEPTED,
        ACCEPTED,
        ACCEPTED,
    ]
    assert smtp_sink.handler.ahead == {}  # nothing was sent before its turn
    assert len(smtp_sink.recipients()) == 5


def test_with_pipelining_the_next_envelope_follows_the_end_of_data(smtp_sink: SmtpSink) -> None:
    """With PIPELINING offered, RCPT and DATA follow MAIL in one write, and each next
    message's envelope follows the previous message's end-of-data without waiting for
    its reply: one round trip a message."""
    smtp_sink.handler.pipelining = True
    results = asyncio.run(
        send_all(sender(smtp_sink, connections=1), [message(n) for n in range(6)], 6)
    )
    assert [r.state for r in results] == [ACCEPTED] * 6
    ahead = smtp_sink.handler.ahead
    assert ahead["MAIL"] == 6 and ahead["RCPT"] == 6  # RCPT and DATA were already there
    assert ahead["after the message"] == 5  # the next MAIL came with the end of data


def test_a_server_that_stops_answering_times_out_and_the_message_waits(
    smtp_sink: SmtpSink,
) -> None:
    """No reply within [sender.smtp] timeout: the connection is dropped and the message
    tried once more on a new one; still nothing, and it is transient (tried later)."""
    smtp_sink.handler.stall = 3.0
    s = sender(smtp_sink, connections=1, timeout=0.5)
    [result] = asyncio.run(send_all(s, [message(0)], 1))
    assert result.state == TRANSIENT and "no reply in 0.5 seconds" in result.reason
    assert smtp_sink.handler.connections == 2  # tried once more on a fresh connection


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_a_refused_login_over_starttls_leaves_no_socket_behind(tls_files: TlsFiles) -> None:
    """The failed connection is aborted before the send returns: a TLS close that waits
    for the server would leave the socket to the garbage collector, which then warns
    during whichever test runs next."""
    import gc
    import warnings

    sink = SmtpSink(tls=tls_files.server_context(), auth=("editor", "s3cret")).start()
    try:
        bad = _login_over_starttls(sink, tls_files, "wrong")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(SendError, match="authentication failed"):
                asyncio.run(send_all(bad, [message(1)]))
            gc.collect()
    finally:
        sink.stop()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
