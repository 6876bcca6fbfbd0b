"""The double opt-in email through a real SMTP server: awkward names and addresses.

A name typed into the form may hold CR, LF, NUL or other control characters;
an address may be internationalised. Neither may break the message or add a
header: the name is cleaned by the one rule of digest.addresses, and the
address goes per the server's SMTPUTF8 support.
"""

from __future__ import annotations

import asyncio
from email import message_from_string
from email.policy import default as default_policy

import pytest
from _send_fixtures import SmtpSink, use_smtp

from digest import confirmation
from digest.workspace import Workspace


def send(ws: Workspace, email: str, name: str) -> str:
    result = asyncio.run(
        confirmation.send_confirmation(ws, "sub-1", email, name, "https://example.com/c/t")
    )
    return result.state


def parsed(data: bytes):  # type: ignore[no-untyped-def]
    return message_from_string(data.decode("utf-8"), policy=default_policy)


@pytest.mark.parametrize(
    "name",
    ["Eve\r\nBcc: victim@example.org", "Eve\nBcc: victim@example.org", "Eve\x00\x07 Bcc"],
    ids=["crlf", "lf", "nul-bel"],
)
def test_a_name_with_control_characters_cannot_add_a_header(
    workspace: Workspace, smtp_sink: SmtpSink, name: str
) -> None:
    ws = use_smtp(workspace, smtp_sink, 1)
    assert send(ws, "eve@example.com", name) == "accepted"
    [received] = smtp_sink.received
    message = parsed(received.data)
    assert message["Bcc"] is None
    to = message["To"]
    assert to.addresses[0].addr_spec == "eve@example.com"
    assert "\n" not in str(to) and "\x00" not in str(to)
    assert to.addresses[0].display_name.startswith("Eve")
    assert received.rcpt == "eve@example.com"


def test_an_international_address_and_name(workspace: Workspace, any_sink: SmtpSink) -> None:
    ws = use_smtp(workspace, any_sink, 1)
    utf8 = any_sink.controller.SMTP_kwargs["enable_SMTPUTF8"]
    assert send(ws, "anna@exämple.com", "Anna Müller") == "accepted"
    assert send(ws, "пользователь@пример.рф", "Ольга") == ("accepted" if utf8 else "permanent")
    first = any_sink.received[0]
    message = parsed(first.data)
    assert message["To"].addresses[0].display_name == "Anna Müller"
    if utf8:
        assert first.rcpt == "anna@exämple.com"
        assert message["To"].addresses[0].addr_spec == "anna@exämple.com"
        assert len(any_sink.received) == 2
    else:
        assert first.rcpt == "anna@xn--exmple-cua.com"
        first.data.decode("ascii")  # no raw UTF-8 without SMTPUTF8
        assert message["To"].addresses[0].addr_spec == "anna@xn--exmple-cua.com"
        assert len(any_sink.received) == 1
