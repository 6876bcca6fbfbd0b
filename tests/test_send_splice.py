"""Spliced JSON bodies are byte for byte json.dumps of the straightforward payload."""

from __future__ import annotations

import json

import pytest
from _render_fixtures import ISSUE_DAY, set_config

from digest.config import Http
from digest.issue import workspace_issue
from digest.message import MessageBuilder
from digest.render import Recipient, prepare
from digest.send.keys import idempotency_key
from digest.send.providers import Provider, provider_for
from digest.send.sender import OutgoingMessage
from digest.send.splice import Splicer, dumps
from digest.workspace import Workspace

AWKWARD = [
    ("1", "ann@example.com", "Ann Lee"),
    ("2", "tom&jerry@example.com", "Tom & Jerry <Esq.>"),
    ("3", "quote@example.com", 'Say "hi" it\'s me'),
    ("4", "back@example.com", "Back\\slash \\n not a newline"),
    ("5", "zoe@example.org", "Zoë Ünïcødé"),
    ("6", "fox@example.org", "🦊 Fox 😀"),
    ("7", "empty@example.com", ""),
    ("8", "o'brien+news@example.com", "  spaced   out  "),
    ("9", "ctrl@example.com", "tab\there\x07bell"),
    ("10", "ascii@example.com", "A long plain ASCII name, with a comma"),
]


NAMED_HTML = """<!DOCTYPE html>
<html><head><style>p { color: #333; } .x { font-weight: bold; }</style></head>
<body><p class="x" title="{{ recipient.name }}">Hello {{ recipient.name }}!</p>
<p>{{ issue.subject }}</p>
<p>Sent to {{ recipient.email }}. <a href="{{ recipient.unsubscribe_url }}">Unsubscribe</a>
<a href="mailto:{{ recipient.email }}?subject={{ recipient.name }}">me</a></p>
</body></html>
"""
NAMED_TEXT = """Hello {{ recipient.name }}!

Sent to {{ recipient.email }}. Unsubscribe: {{ recipient.unsubscribe_url }}
"""


@pytest.fixture(params=["default templates", "templates printing the name"])
def splice_ws(request: pytest.FixtureRequest, issue_ws: Workspace) -> Workspace:
    if request.param != "default templates":
        (issue_ws.templates_dir / "email.html").write_text(NAMED_HTML, encoding="utf-8")
        (issue_ws.templates_dir / "email.txt").write_text(NAMED_TEXT, encoding="utf-8")
    return issue_ws


def builder_of(ws: Workspace) -> MessageBuilder:
    return MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, ISSUE_DAY)))


def messages(builder: MessageBuilder, *, test: bool = False) -> list[OutgoingMessage]:
    out = []
    for sid, email, name in AWKWARD:
        recipient = Recipient(sid, email, name)
        out.append(
            OutgoingMessage(
                sid,
                email,
                idempotency_key(ISSUE_DAY, sid),
                name=name,
                builder=builder,
                recipient=recipient,
                test=test,
            )
        )
    return out


def provider(name: str) -> Provider:
    http = Http(provider=name, base_url="https://api.test", token_env="DIGEST_API_TOKEN")
    return provider_for(http, "tok")


def plain_body(p: Provider, batch: list[OutgoingMessage]) -> bytes:
    """What the body was before splicing: json.dumps of the whole parts' payloads."""
    payloads = [p.payload(m) for m in batch]
    return dumps(payloads if p.batched else payloads[0])


@pytest.mark.parametrize("name", ["postmark", "resend", "sendgrid"])
@pytest.mark.parametrize("test", [False, True])
def test_spliced_body_equals_json_dumps_of_the_payload(
    splice_ws: Workspace, name: str, test: bool
) -> None:
    builder = builder_of(splice_ws)
    p = provider(name)
    batch = messages(builder, test=test)
    for m in batch:
        assert m.builder is not None and m.recipient is not None
        # The slow path reads whole parts; the fields must carry each awkward value.
        assert m.parts == builder.parts(m.recipient, test=test)
    chunks = [batch] if p.batched else [[m] for m in batch]
    for chunk in chunks:
        fresh = [
            OutgoingMessage(m.subscriber_id, m.email, m.key, name=m.name, parts=m.parts)
            for m in chunk
        ]
        assert p.json_body(chunk) == plain_body(p, fresh)
    splicer = p.__dict__["_splicer"]
    assert isinstance(splicer, Splicer) and splicer.spliced == len(batch)
    if p.batched:
        everyone = json.loads(p.json_body(batch))
        assert len(everyone) == len(batch)
        html = everyone[1]["HtmlBody" if name == "postmark" else "html"]
        text = everyone[5]["TextBody" if name == "postmark" else "text"]
        if (splice_ws.templates_dir / "email.html").exists():
            assert "Hello Tom &amp; Jerry &lt;Esq.&gt;!" in html
            assert "Hello 🦊 Fox 😀!" in text
        assert "tom&amp;jerry@example.com" in html
        subject = everyone[0]["Subject" if name == "postmark" else "subject"]
        assert subject.startswith("[TEST] ") == test


def test_splicing_holds_with_optional_headers_and_a_reply_to(issue_ws: Workspace) -> None:
    ws = set_config(issue_ws, 'unsubscribe_mailto = ""', 'unsubscribe_mailto = "leave@example.com"')
    ws = set_config(ws, 'feedback_id = ""', 'feedback_id = "issue:weekly:digest"')
    ws = set_config(ws, 'reply_to = ""', 'reply_to = "Desk \\"Night\\" <desk@example.com>"')
    builder = builder_of(ws)
    for name in ("postmark", "resend"):
        p = provider(name)
        batch = messages(builder)
        fresh = [
            OutgoingMessage(m.subscriber_id, m.email, m.key, name=m.name, parts=m.parts)
            for m in batch
        ]
        body = p.json_body(batch)
        assert body == plain_body(p, fresh)
        assert b"issue:weekly:digest" in body and b"mailto:leave@example.com" in body


def test_an_issue_holding_the_marker_characters_falls_back_to_json_dumps(
    issue_ws: Workspace,
) -> None:
    issue = workspace_issue(issue_ws, ISSUE_DAY)
    issue.subject = "Private \ue000use\ue001 characters"
    builder = MessageBuilder.for_workspace(issue_ws, prepare(issue_ws, issue))
    p = provider("postmark")
    batch = messages(builder)
    fresh = [
        OutgoingMessage(m.subscriber_id, m.email, m.key, name=m.name, parts=m.parts) for m in batch
    ]
    assert p.json_body(batch) == plain_body(p, fresh)
    assert p.__dict__["_splicer"].spliced == 0
