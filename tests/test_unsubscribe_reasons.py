""" "Why are you leaving?": optional, after the unsubscribe, and stored with nothing of the reader.

Through the public app (httpx.ASGITransport) on SQLite and PostgreSQL, with the
guards every public form has: the CSRF cookie and token, the rate limit and the
body limit. One page gives one answer: the second from the same page replaces
the first. An erasure of the reader leaves the answers, which name nobody.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from _public_fixtures import SECRET, Site, configure

from digest import consent
from digest.people import changes, record, rights
from digest.store import Store, reasons, schema
from digest.store.stats import collect
from digest.tokens import Tokens
from digest.workspace import Workspace

ISSUE = "2026-12-04"


def reader(store: Store, email: str = "leaving@example.org") -> str:
    return changes.admin_add(store, email, "Lee Ving", source="test", confirmed=True).id


def link(sid: str, issue: str = ISSUE) -> str:
    return f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sid, issue)}"


def field(page: httpx.Response, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    assert found, page.text
    return found.group(1)


def unsubscribed_page(site: Site, sid: str, issue: str = ISSUE) -> httpx.Response:
    """What a reader sees after pressing the button on the unsubscribe page."""
    page = site.post(link(sid, issue) if issue else _old_link(sid), data={"action": "unsubscribe"})
    assert page.status_code == 200 and "You are unsubscribed" in page.text
    return page


def _old_link(sid: str) -> str:
    return f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sid)}"


def answer(site: Site, page: httpx.Response, **values: str) -> httpx.Response:
    data = {"form_token": field(page, "form_token"), "answer_token": field(page, "answer_token")}
    data.update(values)
    return site.post("/leaving", data=data)


def stored(store: Store) -> list[tuple[str, str, str]]:
    t = schema.unsubscribe_reasons
    with store.read() as conn:
        rows = conn.execute(t.select().order_by(t.c.reason, t.c.text)).all()
    return [(row.issue, row.reason, row.text) for row in rows]


def test_the_form_comes_after_the_unsubscribe_and_the_answer_names_nobody(
    site: Site, store: Store
) -> None:
    sid = reader(store)
    page = unsubscribed_page(site, sid)
    assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]
    assert "Would you tell us why you are leaving?" in page.text
    assert "stored without your name or address" in page.text
    assert 'action="/leaving"' in page.text and 'maxlength="500"' in page.text
    assert "required" not in page.text.split('action="/leaving"')[1].split("</form>")[0]

    done = answer(site, page, reason="not_relevant", text="Too much on sport.\r\nMore on science!")
    assert done.status_code == 200 and "Thank you for telling us." in done.text
    assert stored(store) == [(ISSUE, "not_relevant", "Too much on sport.\nMore on science!")]
    t = schema.unsubscribe_reasons
    assert set(t.c.keys()) == {"answer_key", "issue", "reason", "text"}  # nothing of the reader


def test_a_second_answer_from_the_same_page_replaces_the_first(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store))
    assert answer(site, page, reason="too_often").status_code == 200
    again = answer(site, page, reason="other", text="Actually: I moved away.")
    assert again.status_code == 200 and "Thank you" in again.text
    assert stored(store) == [(ISSUE, "other", "Actually: I moved away.")]
    # Another reader's page is another answer.
    other = unsubscribed_page(site, reader(store, "second@example.org"))
    answer(site, other, reason="too_often")
    assert len(stored(store)) == 2


def test_the_form_needs_its_csrf_cookie_and_token(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store))
    stranger = site.client_from("198.51.100.9")  # another browser: no cookie
    data = {"form_token": field(page, "form_token"), "answer_token": field(page, "answer_token")}
    refused = site.post("/leaving", stranger, data={**data, "reason": "too_often"})
    assert refused.status_code == 403 and "The form had expired" in refused.text
    assert 'name="answer_token"' in refused.text  # the reader can still send it
    forged = site.post("/leaving", data={**data, "form_token": "x", "reason": "too_often"})
    assert forged.status_code == 403
    assert stored(store) == []
    assert answer(site, page, reason="too_often").status_code == 200  # the real one still works


def test_an_over_long_text_is_refused_and_given_back(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store))
    long = "é" * (reasons.MAX_TEXT + 1)
    refused = answer(site, page, reason="other", text=long)
    assert refused.status_code == 400
    assert "Please keep your words under 500 characters." in refused.text
    assert long in refused.text and 'value="other" checked' in refused.text
    assert stored(store) == []
    # 500 characters are fine: a browser sends a line break as CRLF, counted once.
    assert answer(site, page, reason="other", text="a\r\n" * 250).status_code == 200
    [(_, _, kept)] = stored(store)
    assert kept == "a\n" * 249 + "a"


def test_nothing_is_stored_for_an_empty_answer(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store))
    done = answer(site, page, reason="", text="   \r\n ")
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert "Thank you" not in done.text
    unknown = answer(site, page, reason="<script>", text="")
    assert unknown.status_code == 200 and stored(store) == []


def test_an_erasure_leaves_the_answers_which_name_nobody(site: Site, store: Store) -> None:
    sid = reader(store)
    address = "leaving@example.org"
    page = unsubscribed_page(site, sid)
    answer(site, page, reason="never_signed_up", text=f"I never asked. This is {address}.")
    [(issue, reason, text)] = stored(store)
    assert address not in text and "l***@example.org" in text  # an address typed in is masked
    sub = record.get_subscriber(store, sid)
    assert sub is not None
    pseudonym = rights.history(store, sub)[-1].pseudonym
    rights.erase(store, sid, source="test")
    assert stored(store) == [(issue, reason, text)]
    with store.read() as conn:
        every = " ".join(
            str(value) for row in conn.execute(schema.unsubscribe_reasons.select()) for value in row
        )
    for trace in (sid, address, "Lee Ving", pseudonym):
        assert trace not in every
    assert consent.verify(store).ok


def test_the_answer_token_is_checked(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store))
    data = {"form_token": field(page, "form_token"), "reason": "too_often"}
    forged = Tokens(b"another-key-entirely-0123456789abcdef").answer("n" * 24, ISSUE)
    for token in ("", "garbage", forged, Tokens(SECRET.encode()).confirm("someone")):
        refused = site.post("/leaving", data={**data, "answer_token": token})
        assert refused.status_code == 403 and "This form has expired" in refused.text
        assert 'name="answer_token"' not in refused.text
    assert stored(store) == []


def test_an_answer_a_day_late_is_not_taken(site: Site, store: Store) -> None:
    from datetime import timedelta

    from digest import clock

    page = unsubscribed_page(site, reader(store))
    clock.set_now(clock.now() + timedelta(hours=25))
    late = answer(site, page, reason="too_often")
    assert late.status_code == 403 and "This form has expired" in late.text
    assert stored(store) == []


def test_no_form_after_a_one_click_post_or_a_second_unsubscribe(site: Site, store: Store) -> None:
    sid = reader(store)
    one_click = site.post(link(sid), data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "answer_token" not in one_click.text
    again = site.post(link(sid), data={"action": "unsubscribe"})
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert "answer_token" not in again.text  # only the request that unsubscribed asks


def test_an_old_link_asks_too_and_its_answer_names_no_issue(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store), issue="")
    answer(site, page, reason="read_elsewhere")
    assert stored(store) == [("", "read_elsewhere", "")]
    with store.read() as conn:
        assert collect(conn, store.workspace, weeks=1).reasons == {"read_elsewhere": 1}


def test_the_form_is_rate_limited(site_ws: Workspace, smtp_sink: Any, store: Store) -> None:
    ws = configure(site_ws, {"rate_limit_per_minute = 10": "rate_limit_per_minute = 2"})
    site = Site(ws, smtp_sink)
    try:
        page = unsubscribed_page(site, reader(store))
        codes = [answer(site, page, reason="too_often").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    finally:
        site.close()


def test_the_form_has_the_body_limit(site: Site, store: Store) -> None:
    page = unsubscribed_page(site, reader(store))
    huge = answer(site, page, reason="other", text="x" * (70 * 1024))
    assert huge.status_code == 413
    assert stored(store) == []


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("  plain  ", "plain"),
        ("a\u202eb\x00c\x1b[31m", "abc[31m"),
        ("one\r\n\r\n\r\n\r\ntwo", "one\n\ntwo"),
        ("mail me: a.b@example.com", "mail me: a***@example.com"),
    ],
)
def test_clean_text(raw: str, kept: str) -> None:
    assert reasons.clean_text(raw) == kept


def test_the_form_speaks_the_newsletters_language(
    site_ws: Workspace, smtp_sink: Any, store: Store
) -> None:
    ws = configure(site_ws, {'language = "en"': 'language = "ru"'})
    site = Site(ws, smtp_sink)
    try:
        page = unsubscribed_page_in(site, reader(store), "Вы отписались")
        assert "Расскажете, почему вы уходите?" in page.text
        assert "Подписку оформили без моего ведома" in page.text
        refused = answer(site, page, reason="other", text="я" * (reasons.MAX_TEXT + 1))
        assert "Пожалуйста, уложитесь в 500 символов." in refused.text
        assert "Спасибо, что рассказали." in answer(site, page, reason="other").text
    finally:
        site.close()


def unsubscribed_page_in(site: Site, sid: str, heading: str) -> httpx.Response:
    page = site.post(link(sid), data={"action": "unsubscribe"})
    assert page.status_code == 200 and heading in page.text, page.text
    return page
