"""The whole life of a subscriber through the public pages, on SQLite and PostgreSQL.

Subscribe on the form -> the confirmation email arrives at a real SMTP server
-> the link in it confirms -> the subscriber is in the audience -> a mailbox
provider's one-click POST to the URL in the rendered message's
List-Unsubscribe header -> out of the audience, and the consent ledger
still verifies.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from urllib.parse import urlsplit

from _public_fixtures import Site, confirm_link
from _render_fixtures import sample_issue, write_issue

from digest import consent, render
from digest.message import MessageBuilder
from digest.people import audience, record, rights
from digest.store import Store


def test_subscribe_confirm_unsubscribe(site: Site, store: Store, cli) -> None:
    # 1. The form.
    reply = site.subscribe("Reader.One@Example.com", "Reader One")
    assert reply.status_code == 200
    assert "Check your inbox" in reply.text

    # 2. One confirmation email, at the real SMTP server, to the address given.
    [mail] = site.mails()
    assert site.sink is not None
    assert site.sink.recipients() == ["Reader.One@example.com"]
    assert mail["Subject"] == "Confirm your subscription to The Weekly Brief"
    assert "Reader One" in mail["To"]
    html = mail.get_body(("html",))
    assert html is not None and "/confirm/" in html.get_content()
    sub = record.find_by_email(store, "reader.one@example.com")
    assert sub is not None and sub.status == "pending"
    assert [e.kind for e in rights.history(store, sub)] == ["signup_requested"]
    assert not any(s.id == sub.id for s in audience.audience(store))

    # 3. The link from the email: GET shows a button and changes nothing; POST confirms.
    link = confirm_link(mail)
    assert link.startswith("https://newsletter.example.com/confirm/")
    path = urlsplit(link).path
    page = site.get(path)
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    assert record.get_subscriber(store, sub.id).status == "pending"  # type: ignore[union-attr]
    welcome = site.post(path)
    assert welcome.status_code == 200 and "You are subscribed" in welcome.text
    assert [s.id for s in audience.audience(store)] == [sub.id]
    events = rights.history(store, sub)
    assert [(e.kind, e.method) for e in events] == [
        ("signup_requested", "web_form"),
        ("confirmed", "link"),
    ]
    assert events[0].evidence is not None
    assert events[0].evidence["ip"] == "203.0.113.7"
    assert events[0].evidence["form"]["consent"] is True
    assert events[0].evidence["policy_version"] == site.ws.config.privacy.policy_version

    # 4. An issue goes out; the mailbox provider uses its List-Unsubscribe header.
    issue = write_issue(site.ws, sample_issue())
    builder = MessageBuilder(render.prepare(site.ws, issue))
    wire = builder.build(render.Recipient(sub.id, "Reader.One@example.com", "Reader One"))
    message = message_from_bytes(wire, policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [url] = re.findall(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
    one_click = site.post(
        urlsplit(url).path,
        data={"List-Unsubscribe": "One-Click"},
        headers={"User-Agent": "MailboxProvider/1.0"},
    )
    assert one_click.status_code == 200
    assert "set-cookie" not in one_click.headers
    assert not any(s.id == sub.id for s in audience.audience(store))
    kinds = [(e.kind, e.method) for e in rights.history(store, sub)]
    assert kinds[-1] == ("unsubscribed", "one_click")

    # 5. The ledger still verifies, by library and by command.
    assert consent.verify(store).ok
    result = cli("consent", "verify")
    assert result.exit_code == 0, result.output
