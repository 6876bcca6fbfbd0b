"""Bounce layouts and the rules that read them, each from a minimal message.

The corpus (tests/test_bounce_corpus.py) checks real bounces; every rule and reader
added for it is pinned here by the smallest message that needs it, together with the
same message without what the rule reads, so each test fails without its rule.
"""

from __future__ import annotations

import pytest

from digest.bounce_rules import classify, command_of
from digest.send.intake import layouts, reports

HEAD = "From: MAILER-DAEMON@mx.example.com\nReturn-Path: <>\nTo: news@example.org\n"


def dsn(human: str, fields: str, *, head: str = HEAD, returned: str = "") -> bytes:
    """A multipart/report: the human part, the delivery-status fields, a returned part."""
    tail = f"--b\nContent-Type: message/rfc822\n\n{returned}\n" if returned else ""
    return (
        f"{head}Subject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain; charset=utf-8\n\n{human}\n"
        f"--b\nContent-Type: message/delivery-status\n\n{fields}\n\n{tail}--b--\n"
    ).encode()


def plain(body: str, *, head: str = HEAD, subject: str = "failure notice") -> bytes:
    return f"{head}Subject: {subject}\n\n{body}".encode()


def recipient(address: str, status: str, diagnostic: str) -> str:
    return (
        f"Final-Recipient: rfc822; {address}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}"
    )


# -- reading the DSN part --------------------------------------------------------------------


def test_dsn_recipients_written_in_one_block_are_each_read() -> None:
    """AOL writes every recipient's fields in the per-message block, with no blank lines."""
    fields = "Reporting-MTA: dns; omr.example.com\n" + "\n".join(
        [
            recipient("full@example.jp", "5.2.2", "550 5.2.2 <full@example.jp>... Mailbox Full"),
            recipient("gone@example.jp", "5.1.1", "550 5.1.1 <gone@example.jp>... User Unknown"),
        ]
    )
    parsed = reports.parse(dsn("Your mail could not be delivered.", fields))
    assert [(r.address, r.status) for r in parsed.recipients] == [
        ("full@example.jp", "5.2.2"),
        ("gone@example.jp", "5.1.1"),
    ]
    assert reports.classes(dsn("x", fields)) == ["soft", "hard"]


def test_final_recipient_then_original_recipient_is_one_recipient() -> None:
    fields = (
        "Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; gone@example.jp\n"
        "Original-Recipient: rfc822;gone@example.jp\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.jp>... User Unknown"
    )
    assert reports.classes(dsn("x", fields)) == ["hard"]


POSTMASTER_COPY_INNER = (
    "From: MAILER-DAEMON@mx.example.jp\nSubject: Returned mail\nMIME-Version: 1.0\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="i"\n\n'
    "--i\nContent-Type: text/plain\n\nThe first bounce.\n"
    "--i\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.jp\n\n"
    + recipient("other@example.com", "5.3.5", "553 5.3.5 system config error")
    + "\n\n--i--\n"
)


def test_the_report_of_a_bounce_it_returns_is_not_this_reports() -> None:
    """A postmaster's copy of a bounce quotes the first bounce, report and all."""
    fields = "Reporting-MTA: dns; mx.example.jp\n\n" + recipient(
        "gone@example.net", "5.1.1", "550 5.1.1 <gone@example.net>... User unknown"
    )
    raw = dsn("Postmaster notify", fields, returned=POSTMASTER_COPY_INNER)
    assert [r.address for r in reports.parse(raw).recipients] == ["gone@example.net"]
    assert reports.classes(raw) == ["hard"]


def test_a_bounce_forwarded_whole_is_read_from_the_attachment() -> None:
    """An appliance that forwards a bounce as an attachment has no report of its own."""
    raw = (
        f"{HEAD}Subject: Returned mail\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="o"\n\n'
        "--o\nContent-Type: text/plain\n\nThe following addresses had errors.\n"
        f"--o\nContent-Type: message/rfc822\n\n{POSTMASTER_COPY_INNER}\n--o--\n"
    ).encode()
    assert [r.address for r in reports.parse(raw).recipients] == ["other@example.com"]


def test_a_diagnostic_in_raw_iso_2022_jp_is_decoded() -> None:
    """Japanese Lotus Domino writes its diagnostic in ISO-2022-JP, not in RFC 2047 words."""
    words = "ユーザー Neko (gone@example.co.jp) は Domino ディレクトリには見つかりません。"
    raw = dsn("x", "Reporting-MTA: dns; domino.example.co.jp\n\n").replace(
        b"\n\n\n--b--",
        b"\n\nFinal-Recipient: rfc822; gone@example.co.jp\nAction: failed\nStatus: 5.0.0\n"
        b"Diagnostic-Code: X-Notes; " + words.encode("iso-2022-jp") + b"\n\n--b--",
    )
    parsed = reports.parse(raw)
    assert "Domino ディレクトリには見つかりません" in parsed.recipients[0].diagnostic
    assert reports.classes(raw) == ["hard"]


def test_a_mailbox_state_in_a_one_recipient_reports_own_words_beats_a_hard_code() -> None:
    """Contradictory evidence never suppresses: "Not enough disk space" and 5.1.1."""
    fields = "Reporting-MTA: dns; mx.example.jp\n\n" + recipient(
        "r@example.jp", "5.1.1", "550 5.1.1 <r@example.jp>... User Unknown"
    )
    human = "Your message to <r> was automatically rejected:\nNot enough disk space"
    assert reports.classes(dsn(human, fields)) == ["soft"]
    assert reports.classes(dsn("Your message was rejected.", fields)) == ["hard"]
    disabled = "The user(s) account is disabled.\n\n\n<r@example.jp>: 550 user unknown"
    assert reports.classes(dsn(disabled, fields)) == ["soft"]


def test_gmails_own_verdict_settles_a_reply_that_names_no_stage() -> None:
    fields = "Reporting-MTA: dns; googlemail.com\n\n" + recipient(
        "gone@example.de", "5.0.0", "550 #5.1.0 Address rejected."
    )
    verdict = (
        "** Address not found **\n\nYour message wasn't delivered to gone@example.de because "
        "the address couldn't be found. Check for typos or unnecessary spaces and try again."
    )
    assert reports.classes(dsn(verdict, fields)) == ["hard"]
    assert reports.classes(dsn("Your message wasn't delivered.", fields)) == ["soft"]
    unsure = verdict.replace("couldn't be found.", "couldn't be found, or is unable to receive")
    assert reports.classes(dsn(unsure, fields)) == ["soft"]


# -- the words of plain bounces --------------------------------------------------------------

QMAIL = (
    "Hi. This is the qmail-send program at mx.example.net.\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
    "<gone@example.jp>:\n{stage}\nRemote host said: {reply}\nGiving up on 192.0.2.1.\n"
)


def test_qmails_own_words_name_the_stage() -> None:
    assert command_of("192.0.2.1 does not like recipient.") == "RCPT"
    assert command_of("Connected to 192.0.2.1 but my name was rejected.") == "CONN"
    assert command_of("192.0.2.1 failed after I sent the message.") == "DATA"
    user_unknown = "550 5.2.1 <gone@example.jp>... User Unknown"
    at_rcpt = QMAIL.format(stage="192.0.2.1 does not like recipient.", reply=user_unknown)
    assert reports.classes(plain(at_rcpt)) == ["hard"]
    unstaged = QMAIL.format(stage="", reply=user_unknown)
    assert reports.classes(plain(unstaged)) == ["soft"]
    helo = QMAIL.format(
        stage="Connected to 192.0.2.1 but my name was rejected.",
        reply="501 5.0.0 Invalid domain name",
    )
    assert reports.classes(plain(helo)) == ["soft"]


def test_a_transcripts_refused_rcpt_for_the_address_is_the_evidence() -> None:
    """V5 Sendmail goes on to log a deferral after the recipient was refused."""
    body = (
        "   ----- Transcript of session follows -----\nWhile talking to smtp.example.com:\n"
        ">>> RCPT To:<gone@example.org>\n<<< 550 <gone@example.org>, User Unknown\n"
        "550 <gone@example.org>... User unknown\n"
        "421 example.org (smtp)... Deferred: Connection timed out during user open\n"
    )
    assert reports.classes(plain(body, subject="Returned mail: Deferred")) == ["hard"]
    accepted = body.replace("<<< 550 <gone@example.org>, User Unknown", "<<< 250 OK")
    assert reports.classes(plain(accepted, subject="Returned mail: Deferred")) == ["soft"]


def test_one_quoted_reply_concerns_every_address_listed_after_it() -> None:
    """MailMarshal: the reply first, then "The following recipients were affected"."""
    body = (
        "Your message:\n   From:    news@example.org\n   Subject: Hi\n\n"
        "Could not be delivered because of\n\n550 5.1.1 User unknown\n\n"
        "The following recipients were affected: \n    gone@example.net\n\n\n"
        "Additional Information\n======================\n"
    )
    raw = plain(body, subject='Undeliverable Mail: "Hi"')
    assert [r.diagnostic for r in reports.parse(raw).recipients] == ["550 5.1.1 User unknown"]
    assert reports.classes(raw) == ["hard"]
    two = body.replace("550 5.1.1 User unknown", "550 5.1.1 User unknown\n452 4.2.2 Over quota")
    assert reports.classes(plain(two, subject='Undeliverable Mail: "Hi"')) == ["soft"]


# -- mail systems with knowledge of their own (layouts.py, the L rules) ----------------------


def test_amazon_ses_receipt_rule_bounces_are_a_filters() -> None:
    fields = "Reporting-MTA: dns; inbound-smtp.us-west-2.amazonaws.com\n\n" + recipient(
        "gone@example.jp", "5.1.1", "550 5.1.1 Mailbox does not exist"
    )
    raw = dsn("This message could not be delivered.", fields)
    assert reports.parse(raw).system == layouts.AMAZON_SES_INBOUND
    assert reports.classes(raw) == ["soft"]
    elsewhere = raw.replace(b"inbound-smtp.us-west-2.amazonaws.com", b"mx.example.jp")
    assert reports.classes(elsewhere) == ["hard"]


def _powermta(category: str, diagnostic: str) -> bytes:
    fields = (
        "Reporting-MTA: dns;mail.example.net\nX-PowerMTA-VirtualMTA: mail.example.net\n\n"
        + recipient("r@example.jp", "5.2.1 (mailbox disabled, not accepting messages)", diagnostic)
        + (f"\nX-PowerMTA-BounceCategory: {category}" if category else "")
    )
    return dsn("Hello, this is the mail server on mail.example.net.", fields)


def test_powermtas_bounce_category_is_its_reading_of_the_reply() -> None:
    user_unknown = "550 5.2.1 <r@example.jp>... User Unknown"
    assert reports.parse(_powermta("bad-mailbox", user_unknown)).system == layouts.POWERMTA
    assert reports.classes(_powermta("bad-mailbox", user_unknown)) == ["hard"]
    assert reports.classes(_powermta("", user_unknown)) == ["soft"]  # 5.2.1, no stage
    assert reports.classes(_powermta("bad-domain", "550 Host unknown")) == ["hard"]
    inactive = _powermta("inactive-mailbox", "550 5.1.1 <r@example.jp>... User unknown")
    assert reports.classes(inactive) == ["soft"]


IMAIL = "Unknown user: gone@example.com\n\n\nOriginal message follows.\n\nSubject: Hi\n"


def test_imails_unknown_user_is_its_own_mailbox_lookup() -> None:
    raw = plain(IMAIL, head=HEAD + "X-Mailer: <SMTP32 v8.22>\n", subject="Undeliverable Mail")
    assert reports.parse(raw).system == layouts.IMAIL
    assert reports.classes(raw) == ["hard"]
    # the same words from a system that may be relaying them, with no stage: a filter's
    assert reports.classes(plain(IMAIL, subject="Undeliverable Mail")) == ["soft"]


def test_verizons_mms_gateway_says_the_number_has_no_subscriber() -> None:
    head = "From: MMSC NDR Administrator <sysadmin@m01.vzwpix.com>\nReturn-Path: <>\n"
    body = "Message could not be delivered to mobile.\nError: No valid recipients for this MM\n"
    raw = plain(body, head=head, subject="Undeliverable Message")
    assert reports.parse(raw).system == layouts.VERIZON
    assert reports.classes(raw) == ["hard"]
    other = head.replace("m01.vzwpix.com", "mms.example.com")
    assert reports.classes(plain(body, head=other, subject="Undeliverable Message")) == ["soft"]


def test_an_fml_notice_is_a_soft_bounce_of_the_list_address() -> None:
    head = (
        "From: neko-admin@example.org\nReturn-Path: <neko-admin@example.org>\n"
        "Message-ID: <200504292334.FMLFFFFFF0.neko-nyaan@example.org>\n"
        "X-MLServer: fml [fml 4.0.3 release (20011202/4.0.3)]\n"
    )
    body = "You are not a member of this mailing list <neko-nyaan@example.org>.\n"
    raw = plain(body, head=head, subject="You are not member (neko-nyaan ML)")
    parsed = reports.parse(raw)
    assert parsed.form == reports.PLAIN_BOUNCE
    assert [r.address for r in parsed.recipients] == ["neko-nyaan@example.org"]
    assert reports.classes(raw) == ["soft"]
    not_fml = head.replace("X-MLServer: fml", "X-Mailer: other")
    assert reports.classes(plain(body, head=not_fml, subject="About the list")) == ["ignored"]


JAMES = (
    "Error: Invalid user address\n\nError message below:\n"
    "550 - Requested action not taken: no such user here\n\nMessage details:\n"
    "  Subject: Hi\n  MAIL FROM: news@example.org\n  RCPT TO: 2025550100@{domain}\n"
    "  From: news@example.org\n"
)


def test_an_apache_james_notice_names_its_address_on_the_rcpt_to_line() -> None:
    head = "From: post_master@{domain}\nTo: news@example.org\nMessage-ID: <1.JavaMail.x@{domain}>\n"
    raw = plain(
        JAMES.format(domain="relay.example.com"),
        head=head.format(domain="relay.example.com"),
        subject="Re:Hi",
    )
    parsed = reports.parse(raw)
    assert [r.address for r in parsed.recipients] == ["2025550100@relay.example.com"]
    assert "no such user here" in parsed.recipients[0].diagnostic
    assert reports.classes(raw) == ["soft"]  # a relayed reply, at no stage it names
    # on Verizon's SMS gateway the same words say the number has no subscriber
    verizon = plain(
        JAMES.format(domain="vtext.com"), head=head.format(domain="vtext.com"), subject="Re:Hi"
    )
    assert reports.classes(verizon) == ["hard"]


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "text", "command", "kind", "rule"),
    [
        # user-unknown words prove it at RCPT TO only
        ("5.0.0", "550 <r@example.net>... User unknown", "RCPT", "hard", "H205"),
        ("5.0.0", "550 <r@example.net>... User unknown", "", "soft", "H205"),
        (
            "",
            "This user doesn't have a example.com account (r@example.com) [0]",
            "",
            "soft",
            "H205",
        ),
        # a lookup in the recipient system's own directory proves it at any stage
        ("", "User Neko (r@example.jp) not listed in Domino Directory", "DATA", "hard", "H204"),
        (
            "",
            "The recipient name is not recognized (000C05A6) Unknown Recipient",
            "",
            "hard",
            "H204",
        ),
        # Yahoo refuses an unknown user after DATA, with "dd"
        (
            "5.0.0",
            "554 delivery error: dd This user doesn't have a yahoo.com account (r@yahoo.com) [0]",
            "DATA",
            "hard",
            "H206",
        ),
        # a DNS failure is not an answer; a domain that does not exist is
        (
            "5.4.4",
            "Name service error for name=example.org type=A: Host not found",
            "",
            "hard",
            "H201",
        ),
        (
            "",
            "Name service error for domain example.com: Host not found, try again",
            "",
            "soft",
            "S112",
        ),
        (
            "5.4.4",
            "Name service error for name=example.org type=MX: Malformed or unexpected name "
            "server reply",
            "",
            "soft",
            "S112",
        ),
        # before RCPT TO the server did not know the recipient
        (
            "5.1.1",
            "550 5.1.1 <r@example.net>: User unknown (in reply to MAIL FROM command)",
            "",
            "soft",
            "R002",
        ),
        ("", "501 5.0.0 Invalid domain name", "CONN", "soft", "R002"),
        # Exim cannot route the address: the domain, at any stage
        ("", "r@example.org: Unrouteable address", "", "hard", "H201"),
    ],
)
def test_rules(status: str, text: str, command: str, kind: str, rule: str) -> None:
    found = classify(status, None, text, command=command)
    assert (found.kind, found.rule) == (kind, rule)
