"""Report messages: the corpus read by `digest bounces ingest`, on both backends."""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Any

import pytest
from _bounce_fixtures import bounce_config, reader_values, report

from digest import bounces, consent
from digest.people import audience, changes, record
from digest.send.intake import files, reports
from digest.send.intake.reader import Reader, tokens_for
from digest.store import open_store

ISSUE = "2026-12-04"

# (file, the kind of report, what the policy does to an active reader)
CORPUS = [
    ("postfix-user-unknown.eml", "hard", "suppressed"),
    ("exim-no-such-user.eml", "hard", "suppressed"),
    ("outlook-recipient-not-found.eml", "hard", "suppressed"),
    ("gmail-account-does-not-exist.eml", "hard", "suppressed"),
    ("yahoo-no-account.eml", "hard", "suppressed"),
    ("qmail-no-dsn.eml", "hard", "suppressed"),
    ("mailbox-full.eml", "soft", "counted"),
    ("policy-block-571.eml", "soft", "counted"),
    ("delayed.eml", "ignored", "ignored"),
    ("arf-abuse.eml", "complaint", "suppressed"),
    ("arf-redacted.eml", "complaint", "suppressed"),
    ("auto-reply.eml", "ignored", "ignored"),
    ("mailto-unsubscribe.eml", "unsubscribe", "unsubscribed"),
]


@pytest.fixture
def readers(database_url: str, workspace: Any) -> tuple[Any, list[record.Subscriber]]:
    ws = bounce_config(workspace)
    with open_store(ws) as store:
        made = [
            changes.admin_add(store, f"reader{n}@example.net", source="t", confirmed=True)
            for n in range(3)
        ]
    return ws, made


def test_parse_reads_each_format() -> None:
    values = {
        "RETURN_PATH": "bounce+x@bounces.example.org",
        "RCPT": "ana@example.net",
        "MESSAGE_ID": "<2026-12-04.abc@news.example.org>",
        "UNSUBSCRIBE_URL": "https://n.example.org/unsubscribe/t",
        "MAILTO": "unsubscribe+t@news.example.org",
    }
    postfix = reports.parse(report("postfix-user-unknown.eml", values))
    assert postfix.form == reports.DSN
    assert postfix.recipients == [
        reports.Failed(
            "ana@example.net",
            "failed",
            "5.1.1",
            "550 5.1.1 <ana@example.net>: Recipient address rejected: User unknown in "
            "virtual mailbox table",
            command="RCPT",
        )
    ]
    assert postfix.original_message_id == values["MESSAGE_ID"]
    assert "bounce+x@bounces.example.org" in postfix.to
    arf = reports.parse(report("arf-abuse.eml", values))
    assert (arf.form, arf.feedback_type) == (reports.ARF, "abuse")
    assert [r.address for r in arf.recipients] == ["ana@example.net"]
    assert arf.original is not None and arf.original["List-Unsubscribe"]
    plain = reports.parse(report("qmail-no-dsn.eml", values))
    assert plain.form == reports.PLAIN_BOUNCE
    assert plain.recipients[0].address == "ana@example.net"
    assert "550 5.1.1" in plain.recipients[0].diagnostic
    assert plain.original_message_id == values["MESSAGE_ID"]
    assert reports.parse(report("auto-reply.eml", values)).form == reports.AUTOREPLY
    delayed = reports.parse(report("delayed.eml", values))
    assert delayed.recipients[0].action == "delayed"


@pytest.mark.parametrize(("name", "kind", "outcome"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_through_the_policy(readers: Any, name: str, kind: str, outcome: str) -> None:
    ws, (sub, other, _) = readers
    raw = report(name, reader_values(ws, sub.id, sub.email, ISSUE))
    with open_store(ws) as store:
        done = Reader(store, tokens_for(store), "file").process(raw)
        assert [(o.kind, o.outcome, o.subscriber_id) for o in done] == [(kind, outcome, sub.id)]
        again = Reader(store, tokens_for(store), "file").process(raw)
        assert [o.outcome for o in again] == ["duplicate"]
        mailable = {s.id for s in audience.audience(store)}
        assert (sub.id in mailable) == (outcome in ("counted", "ignored"))
        assert other.id in mailable
        assert consent.verify(store).ok


def test_bounce_without_verp_is_matched_by_message_id(readers: Any) -> None:
    """Without a return path, the original Message-ID proves the message was ours."""
    ws, (sub, _, _) = readers
    values = reader_values(ws, sub.id, sub.email, ISSUE)
    values["RETURN_PATH"] = "brief@news.example.org"
    with open_store(ws) as store:
        done = Reader(store, tokens_for(store), "file").process(report("qmail-no-dsn.eml", values))
        assert [(o.outcome, o.subscriber_id, o.issue) for o in done] == [
            ("suppressed", sub.id, ISSUE)
        ]


def test_a_report_for_mail_we_did_not_send_changes_nothing(readers: Any) -> None:
    ws, (sub, _, _) = readers
    values = reader_values(ws, sub.id, sub.email, ISSUE)
    values["RETURN_PATH"] = "someone@elsewhere.example"
    values["MESSAGE_ID"] = "<not-ours-123@elsewhere.example>"
    values["UNSUBSCRIBE_URL"] = "https://elsewhere.example/unsubscribe/abc.def"
    forged_verp = dict(
        values, RETURN_PATH="bounce+20261204." + sub.id + ".AAAAAAAAAAA@bounces.news.example.org"
    )
    with open_store(ws) as store:
        reader = Reader(store, tokens_for(store), "file")
        assert [o.outcome for o in reader.process(report("postfix-user-unknown.eml", values))] == [
            "not ours"
        ]
        assert [
            o.outcome
            for o in reader.process(report("gmail-account-does-not-exist.eml", forged_verp))
        ] == ["not ours"]
        strangers = dict(values, RCPT="stranger@example.com")
        assert [o.outcome for o in reader.process(report("exim-no-such-user.eml", strangers))] == [
            "unknown"
        ]
        assert record.get_subscriber(store, sub.id).status == "active"  # type: ignore[union-attr]


def test_ingest_reads_a_maildir_an_mbox_and_a_file(readers: Any, tmp_path: Path) -> None:
    ws, subs_ = readers
    raws = [
        report(name, reader_values(ws, s.id, s.email, ISSUE))
        for name, s in zip(
            ("postfix-user-unknown.eml", "arf-abuse.eml", "mailbox-full.eml"), subs_, strict=True
        )
    ]
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in raws[:2]:
        box.add(raw)
    mbox_path = tmp_path / "saved.mbox"
    mbox = mailbox.mbox(mbox_path, create=True)
    mbox.add(raws[2])
    mbox.close()
    single = tmp_path / "one.eml"
    single.write_bytes(raws[0])
    with open_store(ws) as store:
        first = files.ingest(store, str(tmp_path / "Maildir"))
        assert first.messages == 2
        assert dict(first.outcomes) == {"suppressed": 2}
        second = files.ingest(store, str(mbox_path))
        assert dict(second.kinds) == {"soft": 1}
        third = files.ingest(store, str(single))
        assert dict(third.outcomes) == {"duplicate": 1}
        summary = bounces.issue_summary(store, ISSUE)
        assert (summary["hard"], summary["soft"], summary["complaints"]) == (1, 1, 1)


def test_ingest_names_a_missing_file(readers: Any, tmp_path: Path) -> None:
    ws, _ = readers
    with open_store(ws) as store, pytest.raises(Exception, match="no such file"):
        files.ingest(store, str(tmp_path / "missing.eml"))
