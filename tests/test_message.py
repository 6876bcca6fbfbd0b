"""The wire message: structure, headers, encodings, DKIM, and the fast builder vs email."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage

import pytest
from _render_fixtures import ISSUE_DAY, set_config
from hypothesis import given
from hypothesis import strategies as st

from digest.issue import workspace_issue
from digest.message import DKIM_HEADERS, MessageBuilder, encode_address, reference_message
from digest.render import Recipient, prepare
from digest.workspace import Workspace

PEOPLE = [
    Recipient("1", "ann@example.com", "Ann Lee"),
    Recipient("2", "zoe@example.org", "Zoë Ünïcødé 🦊"),
    Recipient("5", "long@example.org", "A long plain ASCII name that is still quite all right"),
    Recipient("3", "tom@example.net", 'Tom "T" & Jerry, <Esq.>'),
    Recipient("4", "nameless@example.com"),
]


def builder_of(ws: Workspace) -> MessageBuilder:
    return MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, ISSUE_DAY)))


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_message_structure_and_headers(issue_ws: Workspace) -> None:
    builder = builder_of(issue_ws)
    seen_unsubscribe = set()
    for person in PEOPLE:
        raw = builder.build(person)
        assert b"\n" not in raw.replace(b"\r\n", b"") and raw.endswith(b"\r\n")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        assert raw.isascii()
        msg = parse(raw)
        assert msg.get_content_type() == "multipart/alternative"
        text, html = msg.iter_parts()
        assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
        assert text["Content-Transfer-Encoding"] == "quoted-printable"
        assert text.get_content_charset() == "utf-8"
        assert msg["From"] == "The Weekly Brief <brief@example.com>"
        assert msg["Reply-To"] == "The Weekly Brief <brief@example.com>"
        assert msg["To"].addresses[0].addr_spec == person.email
        assert msg["To"].addresses[0].display_name == person.name
        assert msg["Subject"] == "The port strike, a gas deal & a day in Tula"
        assert msg["MIME-Version"] == "1.0" and msg["Date"].datetime is not None
        assert msg["List-Id"] == "The Weekly Brief <the-weekly-brief.example.com>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        match = re.fullmatch(
            r"<(https://newsletter\.example\.com/unsubscribe/[\w.-]+)>", msg["List-Unsubscribe"]
        )
        assert match
        url = match.group(1)
        body_text, body_html = text.get_content(), html.get_content()
        assert url in body_text and f'href="{url}"' in body_html
        assert person.email in body_text
        seen_unsubscribe.add(url)
        # Every link is absolute.
        for href in re.findall(r'(?:href|src)="([^"]*)"', body_html):
            assert href.startswith(("https://", "mailto:")), href
    assert len(seen_unsubscribe) == len(PEOPLE)


def test_message_id_is_deterministic_per_issue_and_subscriber(issue_ws: Workspace) -> None:
    first, second = builder_of(issue_ws), builder_of(issue_ws)
    ids = [parse(first.build(p))["Message-ID"] for p in PEOPLE]
    assert ids == [parse(second.build(p))["Message-ID"] for p in PEOPLE]
    assert len(set(ids)) == len(PEOPLE)
    # <DAY.SUBSCRIBER.MAC@domain>: a MAC under the signing key, so nobody computes one
    assert all(
        re.fullmatch(rf"<2026-12-04\.{re.escape(p.subscriber_id)}\.[0-9a-f]{{24}}@example\.com>", i)
        for i, p in zip(ids, PEOPLE, strict=True)
    )


def test_test_sends_are_marked(issue_ws: Workspace) -> None:
    msg = parse(builder_of(issue_ws).build(PEOPLE[0], test=True))
    assert msg["Subject"] == "[TEST] The port strike, a gas deal & a day in Tula"


def test_optional_headers_when_configured(issue_ws: Workspace) -> None:
    ws = set_config(issue_ws, 'unsubscribe_mailto = ""', 'unsubscribe_mailto = "leave@example.com"')
    ws = set_config(ws, 'feedback_id = ""', 'feedback_id = "issue:weekly:digest"')
    ws = set_config(ws, 'reply_to = ""', 'reply_to = "Desk <desk@example.com>"')
    ws = set_config(ws, 'name = "The Weekly Brief"', 'name = "Le Bréf Hebdo"')
    builder = builder_of(ws)
    msg = parse(builder.build(PEOPLE[0]))
    assert re.fullmatch(
        r"<https://\S+/unsubscribe/\S+>, <mailto:leave@example\.com\?subject=unsubscribe>",
        msg["List-Unsubscribe"],
    )
    assert msg["Feedback-ID"] == "issue:weekly:digest"
    assert msg["Reply-To"] == "Desk <desk@example.com>"
    assert msg["List-Id"] == "Le Bréf Hebdo <le-br-f-hebdo.example.com>"
    parts = builder.parts(PEOPLE[0])
    assert parts.headers["List-Unsubscribe"] == msg["List-Unsubscribe"]
    assert parts.headers["Feedback-ID"] == "issue:weekly:digest"


def test_non_ascii_subject_is_encoded(workspace: Workspace) -> None:
    from _render_fixtures import sample_issue, write_issue

    issue = sample_issue(2)
    issue.subject = "Réacteurs flottants — 🚢 et un contrat gazier que personne ne voulait signer"
    write_issue(workspace, issue)
    raw = builder_of(workspace).build(PEOPLE[1])
    assert b"Subject: =?utf-8?" in raw
    assert parse(raw)["Subject"] == issue.subject


def test_fast_message_parses_like_a_reference_built_with_email(issue_ws: Workspace) -> None:
    builder = builder_of(issue_ws)
    for person in PEOPLE:
        fast = parse(builder.build(person))
        parts = builder.parts(person)
        slow = parse(reference_message(parts, person))
        for name in (
            "From",
            "Reply-To",
            "To",
            "Subject",
            "Message-ID",
            "MIME-Version",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ):
            assert str(fast[name]) == str(slow[name]), name
        assert fast.get_content_type() == slow.get_content_type()
        fast_parts = [(p.get_content_type(), p.get_content()) for p in fast.iter_parts()]
        slow_parts = [(p.get_content_type(), p.get_content()) for p in slow.iter_parts()]
        assert fast_parts == slow_parts
        # On the wire every line ends in CRLF; decoded, the parts are the rendered text.
        assert fast_parts[0][1].replace("\r\n", "\n") == parts.text
        assert fast_parts[1][1].replace("\r\n", "\n") == parts.html


def test_encode_address_round_trips() -> None:
    from email.header import decode_header, make_header

    for name in ["", "Plain Name", 'Quote " and \\ slash', "Zoë Ünï 🦊", "Ünï " * 20, "a,b;c"]:
        value = encode_address(name, "x@example.com")
        assert all(len(line) <= 78 for line in value.split("\r\n")), value
        if name.isascii() or len(name.encode()) <= 45:
            msg = parse(f"To: {value}\r\n\r\n".encode())
            assert msg["To"].addresses[0].display_name == name
        # RFC 2047 decoding (adjacent encoded words join without the folding space).
        # Python's newer address parser keeps that space between words; so do few others.
        phrase = value.rpartition("<")[0].strip()
        decoded = str(make_header(decode_header(phrase.replace("\r\n", ""))))
        assert decoded.strip('"').replace('\\"', '"').replace("\\\\", "\\") == name


def test_dkim_signature_verifies_and_covers_the_list_headers(issue_ws: Workspace, tmp_path) -> None:
    import dkim
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
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    ws = set_config(issue_ws, 'selector = ""', 'selector = "brief2026"')
    ws = set_config(ws, 'private_key_file = ""', f'private_key_file = "{key}"')
    builder = builder_of(ws)
    raw = builder.build(PEOPLE[1])
    assert raw.startswith(b"DKIM-Signature:")

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"brief2026._domainkey.example.com."
        return record

    assert dkim.verify(raw, dnsfunc=dnsfunc)
    signature = parse(raw)["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", str(signature).replace(" ", "")).group(1).lower().split(":")
    for header in DKIM_HEADERS:
        assert header.lower() in signed
    tampered = raw.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing"
    )
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_a_missing_dkim_key_is_a_clear_error(issue_ws: Workspace) -> None:
    from digest.errors import ConfigError

    ws = set_config(issue_ws, 'selector = ""', 'selector = "s1"')
    ws = set_config(ws, 'private_key_file = ""', 'private_key_file = "nope.pem"')
    with pytest.raises(ConfigError, match="nope.pem: cannot read the DKIM key"):
        builder_of(ws)


def test_no_line_of_a_built_message_starts_with_a_dot(issue_ws: Workspace) -> None:
    """SMTP sends built bytes without dot-stuffing them, so none may start a line with
    a dot; a line that does in the HTML or text is written with "=2E"."""
    builder = builder_of(issue_ws)
    for person in PEOPLE:
        raw = builder.build(person)
        assert b"\r\n." not in raw and not raw.startswith(b".")
        html = builder.parts(person).html
        decoded = parse(raw).get_body(("html",)).get_content().replace("\r\n", "\n")
        assert decoded == html
    lines = [line for line in builder.parts(PEOPLE[0]).html.splitlines() if line.startswith(".")]
    assert lines, "the sample issue has lines starting with a dot (CSS), so this test bites"


@given(st.text(alphabet=". a=é\tб\u00a0x", max_size=400))
def test_quoted_printable_lines_never_start_with_a_dot(text: str) -> None:
    """Also after a soft break, and still at most 76 octets a line (RFC 2045)."""
    import binascii

    from digest.message import _qp

    lines = _qp(text).split(b"\r\n")
    assert not any(line.startswith(b".") for line in lines)
    assert all(len(line) <= 76 for line in lines)
    assert binascii.a2b_qp(b"\n".join(lines)).decode() == text


def test_a_long_quoted_name_keeps_its_quotes_in_the_confirmation_email() -> None:
    """A sign-up's name holding a comma and addresses, long enough that the header folds:
    the email package's refolding dropped its quotes, so the To header named the
    addresses inside the name and not the reader's own (reply-all to an attacker)."""
    from email.utils import getaddresses

    from digest.message import MessageParts, parts_to_mime

    victim = "victim77@example.org"
    for name in [
        'Bob Smith the very long reader name here x@evil.example, "Mallory Attacker" '
        "<m@evil.example>",
        "Short, Name",
        "A plain name " * 8,
        "Zoë, Ünï <z@evil.example> " * 3,
    ]:
        parts = MessageParts(
            subject="Confirm",
            from_="brief@weekly-brief.news",
            to=encode_address(name, victim).replace("\r\n", ""),
            reply_to="",
            html="<p>x</p>",
            text="x",
            message_id="<1@weekly-brief.news>",
        )
        for utf8 in (False, True):
            raw = parts_to_mime(parts, utf8=utf8)
            head = raw.split(b"\n\n", 1)[0].decode("utf-8")
            assert all(len(line) <= 78 for line in head.splitlines()), head
            parsed = email.message_from_bytes(raw, policy=policy.default)
            assert [a for _, a in getaddresses([str(parsed["To"])])] == [victim], head
            shown = parsed["To"].addresses[0].display_name
            assert "".join(shown.split()) == "".join(name.split()), head
