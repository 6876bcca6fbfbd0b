"""The classification rules: the disagreements with established classifiers, each a case.

Every case here is one the corpus run of the bounce issue found read wrongly: a generic
enhanced code that beat the words, words that blame the sender read as a hard bounce, a
bounce layout taken for an auto-reply, an abuse report type read the wrong way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from digest import bounce_rules
from digest.bounce_rules import classify
from digest.send.intake import reports

CORPUS = Path(__file__).parent / "fixtures" / "bounces" / "corpus"
DOCS = Path(__file__).parent.parent / "docs" / "bounces.md"


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        # Hard read as soft: a generic enhanced code beat the words.
        (
            "5.5.0",
            "550 5.5.0 Requested action not taken: mailbox unavailable (in reply to RCPT TO "
            "command)",
            "hard",
        ),
        (
            "",
            "Sorry, no SMTP connection got far enough; most progress was RCPT TO response; "
            "remote host 192.0.2.32 said: 550 Unknown user r@example.ne.jp . (#5.5.0)",
            "hard",
        ),
        (
            "5.5.0",
            "554 The mail could not be delivered to the recipient because the domain is "
            "not reachable. Please check the domain and try again",
            "hard",
        ),
        (
            "5.4.1",
            "550 5.4.1 [r@example.org]: Recipient address rejected: Access denied "
            "[X.prod.protection.outlook.com] (in reply to RCPT TO command)",
            "hard",
        ),
        ("", "521 5.3.2 System not accepting network messages", "hard"),
        ("", "User some.name (r@example.jp) not listed in Domino Directory", "hard"),
        ("", "r@yahoo.example.jp: No mx record found for domain=yahoo.example.jp", "hard"),
        # Soft read as hard: a 5.1.x code beat words that blame the sender or a policy.
        ("5.1.3", "553 http://www.spamhaus.org/query/bl?ip=192.0.2.222", "soft"),
        (
            "5.1.1",
            "550 5.1.1 <r@example.com> - 203.0.113.222 has sent to too many recipients "
            "this hour. IB607 <http://x.co/rlbounce>",
            "soft",
        ),
        (
            "5.1.0",
            "550 5.1.0 <bounce@mailer.example.com> sender rejected. Refer to Error Codes "
            "section at https://www.cox.com/residential/support/email-error-codes.html",
            "soft",
        ),
        # A refusal of the message after DATA is not a missing mailbox, nor are the same
        # words when nothing says which command they answered (a filter uses them too).
        ("5.0.0", "550 Unknown user r@example.net (in reply to end of DATA command)", "soft"),
        ("5.0.0", "550 Unknown user r@example.net", "soft"),
        ("5.0.0", "550 5.1.1 Unknown user r@example.net", "hard"),
        ("", "Unknown user: r@example.net", "hard"),  # the recipient's own system says so
    ],
)
def test_wording_refines_generic_codes_and_sender_blame_is_never_hard(
    status: str, text: str, kind: str
) -> None:
    assert classify(status, None, text).kind == kind


def _corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_an_exchange_2003_bounce_whose_subject_is_just_e_is_a_bounce() -> None:
    parsed = reports.parse(_corpus("lhost-exchange2003-03.eml"))
    assert parsed.subject == "E"
    assert parsed.form == reports.PLAIN_BOUNCE
    assert "kijitora@example.jp" in [r.address for r in parsed.recipients]
    assert "hard" in reports.classes(_corpus("lhost-exchange2003-03.eml"))


def test_x_failed_recipients_wins_over_auto_submitted() -> None:
    raw = _corpus("lhost-mailru-01.eml")  # Exim layout: Auto-Submitted: auto-replied
    message = reports.read_message(raw)
    assert message["Auto-Submitted"] == "auto-replied" and message["X-Failed-Recipients"]
    parsed = reports.parse(raw)
    assert parsed.form == reports.PLAIN_BOUNCE
    assert [r.address for r in parsed.recipients][:1] == [message["X-Failed-Recipients"].strip()]
    assert reports.classes(raw) == ["hard"]


def test_yahoo_no_mx_record_line_is_read() -> None:
    assert reports.classes(_corpus("lhost-yahoo-09.eml")) == ["hard"]


def test_domino_not_listed_in_directory_is_hard() -> None:
    assert reports.classes(_corpus("lhost-domino-01.eml")) == ["hard"]


ARF = """From: feedback@fbl.example.net
To: %(to)s
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b"

--b
Content-Type: text/plain

A report.
--b
Content-Type: message/feedback-report

%(type)sUser-Agent: fbl/1.0
Version: 1
Original-Mail-From: <bounce+20261204.abc.MAC@bounces.news.example.org>
Original-Rcpt-To: <reader@example.net>

--b
Content-Type: text/rfc822-headers

From: brief@news.example.org
To: reader@example.net
Message-ID:
 <2026-12-04.0123456789abcdef@news.example.org>
Subject: The Weekly Brief

--b--
"""


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [
        ("abuse", "complaint"),
        ("fraud", "complaint"),
        ("opt-out", "unsubscribe"),
        ("auth-failure", "ignored"),
        ("not-spam", "ignored"),
        ("virus", "ignored"),
        (None, "ignored"),  # no Feedback-Type: not a complaint
    ],
)
def test_arf_feedback_types(feedback_type: str | None, kind: str) -> None:
    line = f"Feedback-Type: {feedback_type}\n" if feedback_type else ""
    raw = (ARF % {"to": "fbl@news.example.org", "type": line}).encode()
    assert reports.classes(raw) == [kind]


def test_arf_reads_original_mail_from_and_a_folded_message_id() -> None:
    raw = (ARF % {"to": "fbl@news.example.org", "type": "Feedback-Type: abuse\n"}).encode()
    parsed = reports.parse(raw)
    assert parsed.original_from == "bounce+20261204.abc.MAC@bounces.news.example.org"
    assert parsed.original_message_id == "<2026-12-04.0123456789abcdef@news.example.org>"


def test_a_folded_message_id_pasted_in_a_plain_bounce_is_read() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.com\nReturn-Path: <>\nSubject: failure notice\n\n"
        b"<reader@example.net>:\n550 5.1.1 no mailbox here by that name\n\n"
        b"--- Below this line is a copy of the message.\n\n"
        b"Message-ID:\n <2026-12-04.0123456789abcdef@news.example.org>\nSubject: x\n"
    )
    parsed = reports.parse(raw)
    assert parsed.original_message_id == "<2026-12-04.0123456789abcdef@news.example.org>"


def test_the_rules_table_in_the_docs_is_the_registry() -> None:
    """docs/bounces.md shows the table made from the rules, so the two cannot drift."""
    assert bounce_rules.markdown_table() in DOCS.read_text(encoding="utf-8")


def test_every_rule_has_a_code_a_reason_and_a_reference() -> None:
    codes = [rule.code for rule in bounce_rules.RULES]
    assert len(codes) == len(set(codes))
    for rule in bounce_rules.RULES:
        assert rule.reason in bounce_rules.REASONS and rule.reference and rule.example
        if rule not in bounce_rules.STATUS_RULES:
            # each example read as the reply to RCPT TO, as most refusals are
            assert classify("", None, rule.example, command="RCPT").reason == rule.reason, rule.code
