"""A reader suppressed by a report (a bounce, a complaint) may come back, by double opt-in.

A report can be wrong (a forwarded message, a full mailbox read as gone), so
what it did is the reader's to undo: subscribing again, on the form or by
the resubscribe link, mails a fresh confirmation, and confirming makes them
active again, the suppression lifted, with the events to show each step.
What the operator or an erasure suppressed stays suppressed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from _public_fixtures import SECRET, Site, confirm_link

from digest import bounces, consent
from digest.errors import SubscriberError
from digest.people import audience, changes, record, rights
from digest.store import Store
from digest.tokens import Tokens

FORM = {"method": "web_form", "source": "https://newsletter.example.com/subscribe"}


def _kinds(store: Store, subscriber_id: str) -> list[str]:
    sub = record.get_subscriber(store, subscriber_id)
    assert sub is not None
    return [event.kind for event in rights.history(store, sub)]


def _reported(store: Store, email: str, kind: str) -> str:
    """An active reader, then a proven report of ``kind`` (hard or complaint) about them."""
    sub = changes.admin_add(store, email, source="test", confirmed=True)
    outcome = bounces.apply(
        store,
        bounces.Report(
            source="file",
            kind=kind,
            raw=f"report about {sub.id}".encode(),
            subscriber_id=sub.id,
            address=email,
            status="5.1.1" if kind == bounces.HARD else "",
            proven=True,
        ),
    )
    assert outcome.outcome == bounces.SUPPRESSED
    assert record.is_suppressed(store, email)
    return sub.id


@pytest.mark.parametrize(("kind", "status"), [("hard", "bounced"), ("complaint", "complained")])
def test_a_reported_reader_signs_up_again_and_confirms(
    store: Store, kind: str, status: str
) -> None:
    sid = _reported(store, "back@example.com", kind)
    assert record.get_subscriber(store, sid).status == status  # type: ignore[union-attr]

    again = changes.request_signup(store, "Back@Example.com", None, evidence={"ip": "x"}, **FORM)
    assert (again.id, again.status) == (sid, "pending")
    assert [s.id for s in audience.audience(store)] == []  # not before confirming
    changes.confirm(store, sid, method="link", source="t", evidence={})

    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]
    assert not record.is_suppressed(store, "back@example.com")
    assert [s.id for s in audience.audience(store)] == [sid]
    assert _kinds(store, sid) == ["admin_added", status, "resubscribed", "confirmed"]
    assert consent.verify(store).ok


def test_what_the_operator_or_an_erasure_suppressed_stays_suppressed(store: Store) -> None:
    sid = _reported(store, "op@example.com", "hard")
    # The operator's suppression outranks the report's: it is no longer the reader's to lift.
    assert changes.suppress(store, "op@example.com", reason="asked by phone", source="t")
    with pytest.raises(SubscriberError, match="suppression list"):
        changes.request_signup(store, "op@example.com", None, evidence={}, **FORM)
    with pytest.raises(SubscriberError):
        changes.resubscribe(store, sid, evidence={}, **FORM)
    changes.suppress(store, "nobody@example.com", reason="spam trap", source="t")
    with pytest.raises(SubscriberError, match="suppression list"):
        changes.request_signup(store, "nobody@example.com", None, evidence={}, **FORM)
    gone = changes.admin_add(store, "gone@example.com", source="t", confirmed=True)
    rights.erase(store, gone.id, source="t")
    with pytest.raises(SubscriberError, match="suppression list"):
        changes.request_signup(store, "gone@example.com", None, evidence={}, **FORM)
    assert consent.verify(store).ok


def test_an_address_suppressed_by_a_report_alone_may_sign_up(store: Store) -> None:
    """A bounce for an address nobody had subscribed suppresses its hash; its owner may ask."""
    changes.suppress(store, "new@example.com", reason="550", kind="bounced", source="t")
    sub = changes.request_signup(store, "new@example.com", None, evidence={}, **FORM)
    assert sub.status == "pending"
    assert record.is_suppressed(store, "new@example.com")  # until the owner confirms
    changes.confirm(store, sub.id, method="link", source="t", evidence={})
    assert not record.is_suppressed(store, "new@example.com")
    assert [s.id for s in audience.audience(store)] == [sub.id]


def test_the_form_mails_a_complained_reader_a_confirmation(site: Site, store: Store) -> None:
    sid = _reported(store, "carol@example.com", "complaint")
    assert site.subscribe("carol@example.com").status_code == 200
    [mail] = site.mails()
    assert mail["To"] == "carol@example.com"
    assert site.post(urlsplit(confirm_link(mail)).path).status_code == 200
    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]
    assert [s.id for s in audience.audience(store)] == [sid]
    assert _kinds(store, sid)[-2:] == ["resubscribed", "confirmed"]


def test_the_resubscribe_link_brings_a_bounced_reader_back(site: Site, store: Store) -> None:
    sid = _reported(store, "alice@example.com", "hard")
    path = f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sid)}"
    done = site.post(path, data={"action": "unsubscribe"})
    assert done.status_code == 200
    action = re.search(r'action="(/resubscribe/[^"]+)"', done.text)
    token = re.search(r'name="form_token" value="([^"]+)"', done.text)
    assert action and token
    back = site.post(action.group(1), data={"consent": "yes", "form_token": token.group(1)})
    assert back.status_code == 200 and "Check your inbox" in back.text
    assert record.get_subscriber(store, sid).status == "pending"  # type: ignore[union-attr]
    [mail] = site.mails()
    assert site.post(urlsplit(confirm_link(mail)).path).status_code == 200
    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]
    assert _kinds(store, sid) == ["admin_added", "bounced", "resubscribed", "confirmed"]
    assert consent.verify(store).ok


def test_the_resubscribe_link_of_an_operator_suppression_is_refused(
    site: Site, store: Store
) -> None:
    sid = changes.admin_add(store, "held@example.com", source="t", confirmed=True).id
    changes.suppress(store, sid, reason="legal hold", source="t")
    path = f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sid)}"
    done = site.post(path, data={"action": "unsubscribe"})
    action = re.search(r'action="(/resubscribe/[^"]+)"', done.text)
    token = re.search(r'name="form_token" value="([^"]+)"', done.text)
    assert action and token
    refused = site.post(action.group(1), data={"consent": "yes", "form_token": token.group(1)})
    assert refused.status_code == 400
    assert site.mails() == []
    assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]


def test_the_database_lets_a_report_suppression_go_only_after_a_confirmation(
    store: Store,
) -> None:
    """Raw SQL cannot lift a bounce without the reader's confirmation in the ledger."""
    from sqlalchemy.exc import DBAPIError

    sid = _reported(store, "raw@example.com", "hard")
    for sql in (
        "DELETE FROM suppressions",
        "UPDATE suppressions SET reason = 'complained'",
        "UPDATE suppressions SET key = 'x', reason = 'admin'",
    ):
        with pytest.raises(DBAPIError, match="suppressions"), store.begin() as conn:
            conn.exec_driver_sql(sql)
    changes.request_signup(store, "raw@example.com", None, evidence={}, **FORM)
    with pytest.raises(DBAPIError, match="suppressions"), store.begin() as conn:
        conn.exec_driver_sql("DELETE FROM suppressions")  # pending is not confirmed
    assert record.is_suppressed(store, sid)
    assert consent.verify(store).ok
