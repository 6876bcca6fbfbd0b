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


# -- DKIM, and the template inlined once ------------------------------------------------


def test_the_confirmation_email_from_the_form_is_dkim_signed(
    site_ws: Workspace, smtp_sink: SmtpSink, tmp_path, dns_server
) -> None:
    import base64

    import dkim
    from _public_fixtures import Site, configure
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = tmp_path / "dkim.pem"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ws = configure(
        site_ws,
        {
            'selector = ""': 'selector = "s1"',
            'private_key_file = ""': f'private_key_file = "{key}"',
        },
    )
    dns_server.records["s1._domainkey.example.com."] = [
        b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    ]
    site = Site(ws, smtp_sink)
    try:
        assert site.subscribe("signed@example.com", "Sig Ned").status_code == 200
    finally:
        site.close()
    [received] = smtp_sink.received
    assert received.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(
        received.data.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"),
        dnsfunc=dns_server.dnsfunc,
    )


@pytest.mark.parametrize(
    ("email", "name", "url"),
    [
        ("plain@example.com", "", "https://newsletter.example.com/confirm/abc.def"),
        ("o'brien+x@exämple.com", 'Zoë "Q" <b> & Co', "https://n.example/c/a?x=1&y=<2>"),
        ("a@example.com", "Ann\r\nBcc: x@example.org", "https://n.example/c/ü ß"),
    ],
)
def test_the_template_inlined_once_fills_in_exactly_what_a_full_render_makes(
    workspace: Workspace, email: str, name: str, url: str
) -> None:
    from digest import render

    template = confirmation.Template(workspace)
    template.prepare()
    runs = render.premailer_runs()
    fast = template.parts(email, name, url)
    assert render.premailer_runs() == runs  # no premailer run per sign-up
    whole = confirmation.build(workspace, email, name, url)
    assert (fast.html, fast.text, fast.to, fast.subject) == (
        whole.html,
        whole.text,
        whole.to,
        whole.subject,
    )
    assert template.fast


def test_a_template_that_changes_a_value_is_rendered_whole(workspace: Workspace) -> None:
    (workspace.templates_dir / "confirm_email.html").write_text(
        '{% extends "default:confirm_email.html" %}{% block label %}{{ name | upper }}'
        "{% endblock %}",
        encoding="utf-8",
    )
    template = confirmation.Template(workspace)
    template.prepare()
    assert not template.fast
    parts = template.parts("a@example.com", "ann", "https://n.example/c/x")
    assert "ANN" in parts.html


def _open_connections_to(port: int) -> list[str]:
    """TCP connections to ``port`` still open at this end (ESTABLISHED or CLOSE_WAIT)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] in ("01", "08"):
                    found.append(line.strip())
    return found


def test_the_form_worker_closes_its_smtp_connection_after_each_email(
    site_ws: Workspace, smtp_sink: SmtpSink
) -> None:
    """The worker's event loop runs on between sign-ups only when asked: the
    socket of a finished send must be closed before the loop goes idle, not
    left for the garbage collector (a ResourceWarning, or a CLOSE_WAIT socket
    for as long as the server runs)."""
    from _public_fixtures import Site

    site = Site(site_ws, smtp_sink)
    try:
        assert site.subscribe("once@example.com", "Once").status_code == 200
        assert len(smtp_sink.received) == 1
        assert _open_connections_to(smtp_sink.port) == []
    finally:
        site.close()
