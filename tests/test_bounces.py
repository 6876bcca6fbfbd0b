"""The bounce policy: classification, and what a report does to a reader (both backends)."""

from __future__ import annotations

import hashlib
import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import bounces, consent
from digest.bounces import Report, classify
from digest.errors import TokenError
from digest.people import audience, changes, record, rights
from digest.store import Store
from digest.tokens import Tokens


@pytest.mark.parametrize(
    ("status", "code", "text", "kind", "by"),
    [
        ("5.1.1", None, "", "hard", "status"),
        ("5.1.10", None, "RESOLVER.ADR.RecipientNotFound", "hard", "status"),
        ("5.2.1", None, "mailbox disabled", "soft", "wording"),
        ("5.4.4", None, "", "soft", "default"),
        ("5.2.2", None, "mailbox full", "soft", "wording"),
        ("5.7.1", None, "blocked: user unknown", "soft", "wording"),  # a block wins
        ("5.1.8", None, "", "soft", "status"),
        ("4.2.2", None, "", "soft", "status"),
        ("", None, "550 5.1.1 <a@example.net>: user unknown", "hard", "status"),
        ("", None, "452 4.2.2", "soft", "status"),
        ("5.0.0", None, "550 No such user here (in reply to RCPT TO command)", "hard", "wording"),
        ("5.0.0", None, "550 No such user here", "soft", "wording"),  # at DATA, a filter
        ("", 551, "", "hard", "reply"),
        ("", 553, "", "hard", "reply"),
        ("", 552, "", "soft", "reply"),
        ("", None, "421 try later", "soft", "reply"),
        (
            "",
            None,
            "554 delivery error: dd This user doesn't have a yahoo.com account",
            "hard",
            "wording",
        ),
        ("", None, "550 message rejected as spam", "soft", "wording"),
        ("", None, "something odd happened", "soft", "default"),
        ("2.0.0", None, "delivered", "ignored", "status"),
    ],
)
def test_classify(status: str, code: int | None, text: str, kind: str, by: str) -> None:
    found = classify(status, code, text)
    assert (found.kind, found.by) == (kind, by)


def _reader(store: Store, n: int = 1) -> record.Subscriber:
    return changes.admin_add(store, f"reader{n}@example.net", source="test", confirmed=True)


def _report(
    sub_id: str, kind: str = "hard", *, raw: bytes = b"report one", **more: object
) -> Report:
    values: dict[str, object] = {
        "source": "file",
        "kind": kind,
        "raw": raw,
        "subscriber_id": sub_id,
        "issue": "2026-12-04",
        "status": "5.1.1",
        "diagnostic": "550 5.1.1 <reader1@example.net>: user unknown",
        "proven": True,
    }
    values.update(more)
    return Report(**values)  # type: ignore[arg-type]


def _mailable(store: Store) -> set[str]:
    return {s.id for s in audience.audience(store)}


def test_hard_bounce_suppresses_once_with_evidence(store: Store) -> None:
    sub, other = _reader(store, 1), _reader(store, 2)
    first = bounces.apply(store, _report(sub.id))
    assert first.outcome == bounces.SUPPRESSED
    assert record.get_subscriber(store, sub.id).status == "bounced"  # type: ignore[union-attr]
    assert record.is_suppressed(store, "READER1@example.net")
    assert _mailable(store) == {other.id}
    events = rights.history(store, sub)
    last = events[-1]
    assert (last.kind, last.method) == ("bounced", "bounce_report")
    assert last.evidence is not None
    assert last.evidence["report_sha256"] == hashlib.sha256(b"report one").hexdigest()
    assert last.evidence["status"] == "5.1.1"
    assert "reader1@example.net" not in str(last.evidence)  # masked
    assert "r***@example.net" in last.evidence["diagnostic"]
    # The same report again changes nothing.
    again = bounces.apply(store, _report(sub.id))
    assert again.outcome == bounces.DUPLICATE
    assert len(rights.history(store, sub)) == len(events)
    assert consent.verify(store).ok


def test_soft_bounces_suppress_after_three_issues_in_a_row(store: Store) -> None:
    sub = _reader(store)
    for n, issue in enumerate(("2026-11-20", "2026-11-27"), 1):
        out = bounces.apply(
            store, _report(sub.id, "soft", raw=f"soft {n}".encode(), issue=issue, status="5.2.2")
        )
        assert out.outcome == bounces.COUNTED
    # A second report about the same issue is not a second issue.
    out = bounces.apply(store, _report(sub.id, "soft", raw=b"soft again", issue="2026-11-27"))
    assert out.outcome == bounces.COUNTED
    assert sub.id in _mailable(store)
    out = bounces.apply(store, _report(sub.id, "soft", raw=b"soft 3", issue="2026-12-04"))
    assert out.outcome == bounces.SUPPRESSED
    assert record.get_subscriber(store, sub.id).status == "bounced"  # type: ignore[union-attr]
    last = rights.history(store, sub)[-1]
    assert last.evidence is not None and last.evidence["soft_bounces_in_a_row"] == 3
    assert consent.verify(store).ok


def test_unproven_soft_reports_do_not_build_up_the_streak(store: Store) -> None:
    sub = _reader(store)
    for n, issue in enumerate(("2026-11-20", "2026-11-27"), 1):
        forged = _report(sub.id, "soft", raw=f"forged {n}".encode(), issue=issue, proven=False)
        assert bounces.apply(store, forged).outcome == bounces.NOT_OURS
    out = bounces.apply(store, _report(sub.id, "soft", raw=b"real", issue="2026-12-04"))
    assert out.outcome == bounces.COUNTED
    assert sub.id in _mailable(store)


def test_a_delivered_issue_resets_the_soft_count(store: Store) -> None:
    from digest.store.schema import deliveries

    sub = _reader(store)
    with store.begin() as conn:  # issue 2026-11-27 went to the reader and did not bounce
        conn.execute(
            deliveries.insert().values(
                issue="2026-11-27",
                subscriber_id=sub.id,
                state="sent",
                attempts=1,
                updated_at="2026-11-27T07:00:00.000000Z",
            )
        )
    for n, issue in enumerate(("2026-11-20", "2026-12-04", "2026-12-11"), 1):
        out = bounces.apply(store, _report(sub.id, "soft", raw=f"s{n}".encode(), issue=issue))
    assert out.outcome == bounces.COUNTED  # 11-20 is cut off by the delivered 11-27
    out = bounces.apply(store, _report(sub.id, "soft", raw=b"s4", issue="2026-12-18"))
    assert out.outcome == bounces.SUPPRESSED


def test_complaint_suppresses_until_the_reader_confirms_again(store: Store) -> None:
    sub = _reader(store)
    out = bounces.apply(store, _report(sub.id, "complaint", status=""))
    assert out.outcome == bounces.SUPPRESSED
    assert record.get_subscriber(store, sub.id).status == "complained"  # type: ignore[union-attr]
    again = changes.request_signup(
        store, "reader1@example.net", None, method="web_form", source="t", evidence={}
    )
    assert again.status == "pending" and record.is_suppressed(store, sub.id)


def test_mailbox_unsubscribe_withdraws_consent_only(store: Store) -> None:
    sub = _reader(store)
    out = bounces.apply(store, _report(sub.id, "unsubscribe", method="mailto"))
    assert out.outcome == bounces.UNSUBSCRIBED
    assert record.get_subscriber(store, sub.id).status == "unsubscribed"  # type: ignore[union-attr]
    assert rights.history(store, sub)[-1].method == "mailto"
    assert not record.is_suppressed(store, sub.id)  # they may subscribe again


def test_unknown_and_unproven_reports_are_counted_and_ignored(store: Store) -> None:
    sub = _reader(store)
    before = len(rights.history(store, sub))
    unknown = bounces.apply(store, _report("", address="nobody@example.net", raw=b"x", issue=""))
    assert unknown.outcome == bounces.UNKNOWN
    forged = bounces.apply(store, _report("", address="reader1@example.net", proven=False))
    assert forged.outcome == bounces.NOT_OURS
    assert record.get_subscriber(store, sub.id).status == "active"  # type: ignore[union-attr]
    assert len(rights.history(store, sub)) == before
    assert bounces.unattributed(store) == {"unknown": 1}
    summary = bounces.issue_summary(store, "2026-12-04")
    assert summary["hard"] == 0 and summary["not_counted"] == {"not ours": 1}


def test_history_and_summary(store: Store) -> None:
    a, b = _reader(store, 1), _reader(store, 2)
    bounces.apply(store, _report(a.id))
    bounces.apply(
        store,
        _report(b.id, "soft", raw=b"full", status="5.2.2", diagnostic="552 5.2.2 mailbox full"),
    )
    summary = bounces.issue_summary(store, "2026-12-04")
    assert (summary["hard"], summary["soft"], summary["complaints"]) == (1, 1, 0)
    assert {d["domain"] for d in summary["by_domain"]} == {"example.net"}
    assert {r["status"] for r in summary["by_reason"]} == {"5.1.1", "5.2.2"}
    shown = rights.bounce_history(store, a.id)
    assert [(h["kind"], h["outcome"]) for h in shown] == [("hard", "suppressed")]


def test_erasure_leaves_bounce_reports_without_domain_or_reply(store: Store) -> None:
    sub = _reader(store)
    bounces.apply(store, _report(sub.id))
    rights.erase(store, sub.id, source="test")
    (seen,) = rights.bounce_history(store, sub.id)
    assert (seen["kind"], seen["reason"]) == ("hard", "")
    assert bounces.issue_summary(store, "2026-12-04")["by_domain"] == [
        {"kind": "hard", "domain": "", "count": 1}
    ]
    assert consent.verify(store).ok


@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    subscriber_id=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1),
)
def test_address_tokens_round_trip_and_refuse_tampering(day: date, subscriber_id: str) -> None:
    tokens = Tokens(b"address-token-test-key-0123456789")
    token = tokens.return_path(day.isoformat(), subscriber_id)
    assert len(f"bounce+{token}") <= 64 or len(subscriber_id) > 22
    assert tokens.read_return_path(token) == (day.isoformat(), subscriber_id)
    assert tokens.read_mailto(tokens.mailto(subscriber_id)) == subscriber_id
    with pytest.raises(TokenError):
        Tokens(b"another-key-entirely-0123456789").read_return_path(token)
    with pytest.raises(TokenError):
        tokens.read_mailto(tokens.mailto(subscriber_id) + "x")
    with pytest.raises(TokenError):  # a return-path token is no unsubscribe address
        tokens.read_mailto(token.partition(".")[2])
