"""The message's headers and encodings: DKIM over-signing, Feedback-ID, QP or base64."""

from __future__ import annotations

import base64
import email
import re
from email import policy
from pathlib import Path

import dkim
import pytest
from _render_fixtures import ISSUE_DAY, sample_issue, set_config, write_issue
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from digest.issue import workspace_issue
from digest.message import DKIM_HEADERS, MessageBuilder, smaller_encoding
from digest.render import Recipient, prepare
from digest.workspace import Workspace

READER = Recipient("7", "ann@example.com", "Ann Lee")
SELECTOR = "brief2026"


def builder_of(ws: Workspace) -> MessageBuilder:
    return MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, ISSUE_DAY)))


@pytest.fixture
def signed(issue_ws: Workspace, tmp_path: Path, dns_server) -> tuple[bytes, object]:
    """A signed message, and a lookup through a loopback DNS server holding its public key."""
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
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    ws = set_config(issue_ws, 'selector = ""', f'selector = "{SELECTOR}"')
    ws = set_config(ws, 'private_key_file = ""', f'private_key_file = "{key}"')
    ws = set_config(ws, 'feedback_id = ""', 'feedback_id = "{issue}:weekly:brief"')
    ws = set_config(ws, 'reply_to = ""', 'reply_to = "Desk <desk@example.com>"')

    dns_server.records[f"{SELECTOR}._domainkey.example.com."] = [record]
    return builder_of(ws).build(READER), dns_server.dnsfunc


def _split(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head + b"\r\n", body


def _add_on_top(raw: bytes, header: bytes) -> bytes:
    """A header put above the signed ones (after the signature), as a forger would."""
    signature_end = re.search(rb"DKIM-Signature:.*?\r\n(?! )(?!\t)", raw, re.S).end()
    return raw[:signature_end] + header + b"\r\n" + raw[signature_end:]


def test_the_signature_verifies_and_names_every_header_twice(signed, dns_server) -> None:
    raw, dnsfunc = signed
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    assert dns_server.questions == [f"{SELECTOR}._domainkey.example.com."]
    message = email.message_from_bytes(raw, policy=policy.default)
    tags = str(message["DKIM-Signature"]).replace(" ", "").replace("\r\n", "")
    listed = re.search(r"h=([^;]+)", tags).group(1).lower().split(":")
    for name in DKIM_HEADERS:
        # Over-signed: each named one more time than the message holds it.
        assert listed.count(name.lower()) == len(message.get_all(name) or []) + 1, name


@pytest.mark.parametrize(
    "forged",
    [
        b"From: Support <support@example.com>",
        b"Subject: Your account is locked",
        b"List-Unsubscribe: <https://evil.example.net/u>",
        b"Reply-To: thief@example.net",
        b"Feedback-ID: x:y:z",
    ],
)
def test_an_added_header_breaks_the_signature(signed, forged: bytes) -> None:
    raw, dnsfunc = signed
    assert not dkim.verify(_add_on_top(raw, forged), dnsfunc=dnsfunc)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (rb"Reply-To: Desk <desk@example.com>", b"Reply-To: Thief <thief@example.net>"),
        (rb"Content-Type: multipart/alternative;", b"Content-Type: multipart/mixed;"),
        (rb"MIME-Version: 1.0", b"MIME-Version: 1.1"),
        (rb"Feedback-ID: 2026-12-04:weekly:brief", b"Feedback-ID: 2026-12-11:weekly:brief"),
    ],
)
def test_a_changed_header_breaks_the_signature(signed, old: bytes, new: bytes) -> None:
    raw, dnsfunc = signed
    head, body = _split(raw)
    assert old in head
    assert not dkim.verify(head.replace(old, new, 1) + b"\r\n" + body, dnsfunc=dnsfunc)


def test_feedback_id_tells_issues_apart(workspace: Workspace) -> None:
    ws = set_config(workspace, 'feedback_id = ""', 'feedback_id = "{issue}:weekly:brief"')
    ids = set()
    for day in (ISSUE_DAY, ISSUE_DAY.replace(day=11)):
        issue = write_issue(ws, sample_issue(day=day))
        message = MessageBuilder(prepare(ws, workspace_issue(ws, issue.date))).build(READER)
        parsed = email.message_from_bytes(message, policy=policy.default)
        ids.add(parsed["Feedback-ID"])
    assert ids == {"2026-12-04:weekly:brief", "2026-12-11:weekly:brief"}


def _parts(raw: bytes) -> dict[str, tuple[str, str]]:
    message = email.message_from_bytes(raw, policy=policy.default)
    return {
        part.get_content_subtype(): (part["Content-Transfer-Encoding"], part.get_content())
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


def test_each_part_takes_the_smaller_encoding(workspace: Workspace) -> None:
    english = sample_issue(2)
    write_issue(workspace, english)
    parts = _parts(builder_of(workspace).build(READER))
    assert parts["plain"][0] == "quoted-printable" and parts["html"][0] == "quoted-printable"

    russian = sample_issue(2)
    russian.language = "ru"
    russian.intro = "Доброе утро. " * 60
    for article in russian.articles:
        article.title = "Что означает забастовка в порту для зимнего топлива"
        article.summary = "Докеры вышли в понедельник. Суда стоят в очереди, цены растут. " * 4
    write_issue(workspace, russian)
    raw = builder_of(workspace).build(READER)
    parts = _parts(raw)
    assert parts["plain"][0] == "base64"
    assert "Доброе утро." in parts["plain"][1] and "Докеры вышли" in parts["html"][1]
    # base64 was picked because it is shorter: the same text in QP would be longer.
    text = parts["plain"][1]
    assert smaller_encoding(text) == "base64"
    qp = email.message.EmailMessage()
    qp.set_content(text, cte="quoted-printable")
    b64 = email.message.EmailMessage()
    b64.set_content(text, cte="base64")
    assert len(b64.get_payload()) < len(qp.get_payload())
    body = raw.partition(b"\r\n\r\n")[2]
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))


@given(
    pieces=st.lists(st.text(max_size=300), min_size=1, max_size=5),
    value=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80),
)
def test_base64_made_of_precomputed_lines_equals_encoding_it_whole(
    pieces: list[str], value: str
) -> None:
    from digest.message import _base64, _Base64Part
    from digest.render import Skeleton

    skeleton = Skeleton(tuple(pieces), tuple(("name", "text") for _ in pieces[1:]))
    escaped = {("name", "text"): value.replace("\r", "").replace("\n", " ")}
    assert _Base64Part(skeleton).encode(escaped) == _base64(skeleton.fill(escaped))
