"""The public pages one rule at a time: the form, tokens, enumeration, limits, archive."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from _public_fixtures import SECRET, Site, configure, confirm_link
from _render_fixtures import sample_issue, write_issue
from starlette.requests import Request

from digest import clock, consent
from digest.errors import ConfigError
from digest.people import audience, changes, record, rights
from digest.store import Store
from digest.tokens import Tokens
from digest.web.public import app as public_app
from digest.web.public_guard import RateLimiter, client_ip, parse_proxies
from digest.workspace import Workspace

# -- the form and the app ----------------------------------------------------------


def test_subscribe_form_shows_consent_statement_privacy_link_and_guards(site: Site) -> None:
    page = site.get("/subscribe")
    assert page.status_code == 200
    html = page.text
    statement = site.ws.config.consent_statement
    checkbox = re.search(r'<input type="checkbox"[^>]*id="consent"[^>]*>', html)
    assert checkbox and "required" in checkbox.group(0) and "checked" not in checkbox.group(0)
    assert f'<label for="consent">{statement}</label>' in html
    assert f'href="{site.ws.config.privacy.policy_url}"' in html
    assert 'name="website"' in html and 'name="form_token"' in html
    assert "<script" not in html
    assert "digest_form=" in page.headers["set-cookie"]
    assert "HttpOnly" in page.headers["set-cookie"] and "Secure" in page.headers["set-cookie"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # Links are absolute, https, from base_url; the stylesheet is ours.
    assert 'href="https://newsletter.example.com/archive"' in html
    assert site.get("/static/public.css").headers["content-type"].startswith("text/css")
    assert site.get("/healthz").text == "ok"


def test_the_app_refuses_to_start_without_a_signing_key(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="digest secret"):
        public_app(workspace)
    # The workspace key file that other commands would make is not enough for `serve`,
    # but the refusal says how to keep links signed with it working.
    workspace.secret("DIGEST_SECRET_KEY")
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY is not set") as info:
        public_app(workspace)
    assert ".keys/DIGEST_SECRET_KEY" in str(info.value) and "keep working" in str(info.value)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        public_app(workspace)


def test_serve_get_and_secret_commands(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    refused = cli("serve", "--get", "/healthz")
    assert refused.exit_code == 1
    assert "DIGEST_SECRET_KEY" in refused.output and "digest secret" in refused.output
    assert "Traceback" not in refused.output
    first, second = cli("secret").output.strip(), cli("secret").output.strip()
    assert len(first) >= 40 and first != second
    monkeypatch.setenv("DIGEST_SECRET_KEY", first)
    ok = cli("serve", "--get", "/healthz")
    assert ok.exit_code == 0 and ok.output.splitlines() == ["200 OK", "ok"]
    missing = cli("serve", "--get", "/archive/2001-01-05")
    assert missing.exit_code == 1 and missing.output.startswith("404 Not Found")


def test_config_names_its_own_key_variable(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = configure(
        workspace, {'secret_key_env = "DIGEST_SECRET_KEY"': 'secret_key_env = "BRIEF_KEY"'}
    )
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    with pytest.raises(ConfigError, match="BRIEF_KEY"):
        public_app(ws)
    monkeypatch.setenv("BRIEF_KEY", SECRET)
    public_app(ws)


# -- submitting the form --------------------------------------------------------------


def test_missing_checkbox_is_refused_and_nothing_recorded(site: Site, store: Store) -> None:
    reply = site.subscribe("nobox@example.com", consent=False)
    assert reply.status_code == 400
    assert "Please tick the box" in reply.text
    assert 'value="nobox@example.com"' in reply.text  # what was typed is kept
    assert record.find_by_email(store, "nobox@example.com") is None
    assert site.mails() == []


def test_invalid_address_is_refused(site: Site, store: Store) -> None:
    reply = site.subscribe("not an address")
    assert reply.status_code == 400
    assert "valid email address" in reply.text
    assert audience.stats(store)["events"] == 0


def test_form_without_a_matching_token_is_refused(site: Site, store: Store) -> None:
    data = {"email": "csrf@example.com", "consent": "yes"}
    assert site.post("/subscribe", data=data).status_code == 403
    # A token made for another browser's cookie does not pass either.
    other = site.client_from("198.51.100.1")
    token = site.form_token(other)
    reply = site.post("/subscribe", data={**data, "form_token": token})
    assert reply.status_code == 403 and "expired" in reply.text
    assert record.find_by_email(store, "csrf@example.com") is None
    # A tampered token with the right cookie fails too.
    good = site.form_token()
    reply = site.post("/subscribe", data={**data, "form_token": good[:-2] + "xx"})
    assert reply.status_code == 403


def test_honeypot_gets_the_usual_reply_and_nothing_happens(site: Site, store: Store) -> None:
    human = site.subscribe("human@example.com")
    bot = site.subscribe("bot@example.com", website="http://spam.example")
    assert bot.status_code == human.status_code == 200
    assert bot.text == human.text
    assert record.find_by_email(store, "bot@example.com") is None
    assert [m["To"] for m in site.mails()] == ["human@example.com"]


def test_same_reply_whatever_the_address_state(site: Site, store: Store) -> None:
    """No enumeration: new, pending, active, unsubscribed, suppressed look the same."""
    start = clock.now()
    clock.set_now(start - timedelta(days=2))  # asked two days ago: may be mailed again
    changes.request_signup(
        store, "pending@example.com", None, method="admin", source="t", evidence={}
    )
    changes.request_signup(
        store, "recent@example.com", None, method="admin", source="t", evidence={}
    )
    clock.set_now(start - timedelta(hours=1))
    changes.request_signup(
        store, "recent@example.com", None, method="admin", source="t", evidence={}
    )
    clock.set_now(start)
    changes.admin_add(store, "active@example.com", source="test", confirmed=True)
    gone = changes.admin_add(store, "gone@example.com", source="test", confirmed=True)
    changes.unsubscribe(store, gone.id, method="admin", source="test", evidence={})
    changes.suppress(store, "bounced@example.com", reason="hard bounce", kind="bounced", source="t")
    changes.suppress(store, "held@example.com", reason="spam trap", source="t")
    replies = {
        email: site.subscribe(email)
        for email in (
            "new@example.com",
            "pending@example.com",
            "recent@example.com",
            "active@example.com",
            "gone@example.com",
            "bounced@example.com",
            "held@example.com",
        )
    }
    shapes = {
        (r.status_code, r.text, tuple(sorted(k for k in r.headers if k != "date")))
        for r in replies.values()
    }
    assert len(shapes) == 1, shapes
    # Mail went only where a confirmation makes sense: a bounce is the reader's to undo,
    # the operator's suppression is not.
    assert sorted(m["To"] for m in site.mails()) == [
        "bounced@example.com",
        "gone@example.com",
        "new@example.com",
        "pending@example.com",
    ]
    assert record.find_by_email(store, "active@example.com").status == "active"  # type: ignore[union-attr]
    assert record.find_by_email(store, "gone@example.com").status == "pending"  # type: ignore[union-attr]


def test_one_confirmation_email_per_address_per_day(site: Site, store: Store) -> None:
    start = clock.now()
    clock.set_now(start)
    for _ in range(3):
        assert site.subscribe("Again@Example.com").status_code == 200
    site.subscribe("again@example.com")  # the same address in another case
    assert len(site.mails()) == 1
    sub = record.find_by_email(store, "again@example.com")
    assert sub is not None
    assert [e.kind for e in rights.history(store, sub)] == ["signup_requested"]
    clock.set_now(start + timedelta(hours=23))
    site.subscribe("again@example.com")
    assert len(site.mails()) == 1
    clock.set_now(start + timedelta(hours=24, minutes=1))
    site.subscribe("again@example.com")
    assert len(site.mails()) == 2
    assert [e.kind for e in rights.history(store, sub)] == ["signup_requested"] * 2


def test_posts_are_rate_limited_per_client_address(
    site_ws: Workspace, smtp_sink, store: Store
) -> None:
    ws = configure(site_ws, {"rate_limit_per_minute = 10": "rate_limit_per_minute = 3"})
    site = Site(ws, smtp_sink)
    try:
        start = clock.now()
        clock.set_now(start)
        codes = [site.subscribe(f"r{n}@example.com").status_code for n in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = site.subscribe("r9@example.com")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "Too many attempts" in limited.text
        json_reply = site.post(
            "/subscribe", data={"email": "x@example.com"}, headers={"Accept": "application/json"}
        )
        assert json_reply.status_code == 429 and json_reply.json()["status"] == 429
        assert record.find_by_email(store, "r9@example.com") is None
        # Another address is not held back, and the limit lifts after a minute.
        other = site.client_from("198.51.100.20")
        assert site.subscribe("other@example.com", client=other).status_code == 200
        clock.set_now(start + timedelta(seconds=61))
        assert site.subscribe("later@example.com").status_code == 200
    finally:
        site.close()


def test_rate_limiter_window() -> None:
    start = clock.now()
    clock.set_now(start)
    limiter = RateLimiter(2)
    assert [limiter.retry_after("a"), limiter.retry_after("a")] == [0, 0]
    assert limiter.retry_after("a") == 60
    clock.set_now(start + timedelta(seconds=45))
    assert limiter.retry_after("a") == 15
    assert limiter.retry_after("b") == 0
    clock.set_now(start + timedelta(seconds=60, microseconds=1))
    assert limiter.retry_after("a") == 0
    assert RateLimiter(0).retry_after("a") == 0


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5555), "headers": headers})


def test_client_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    proxies = parse_proxies(["10.0.0.1", "192.168.0.0/16"])
    assert client_ip(_request("203.0.113.5", "1.2.3.4"), proxies) == "203.0.113.5"
    assert client_ip(_request("10.0.0.1", "198.51.100.9"), proxies) == "198.51.100.9"
    # A client's own forged hop is left of the real one and is ignored.
    assert client_ip(_request("10.0.0.1", "6.6.6.6, 198.51.100.9"), proxies) == "198.51.100.9"
    assert client_ip(_request("10.0.0.1", "198.51.100.9, 192.168.1.2"), proxies) == "198.51.100.9"
    assert client_ip(_request("10.0.0.1"), proxies) == "10.0.0.1"
    assert client_ip(_request("10.0.0.1", "junk"), proxies) == "10.0.0.1"
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_proxies(["not-an-ip"])


def test_evidence_records_the_forwarded_address_behind_a_trusted_proxy(
    site_ws: Workspace, smtp_sink, store: Store
) -> None:
    ws = configure(site_ws, {"trusted_proxies = []": 'trusted_proxies = ["127.0.0.1"]'})
    site = Site(ws, smtp_sink, ip="127.0.0.1")
    try:
        site.form_token()
        token = site.form_token()
        site.post(
            "/subscribe",
            data={"form_token": token, "email": "proxied@example.com", "consent": "yes"},
            headers={"X-Forwarded-For": "198.51.100.77", "User-Agent": "TestBrowser/2"},
        )
        sub = record.find_by_email(store, "proxied@example.com")
        assert sub is not None
        [event] = rights.history(store, sub)
        assert event.evidence is not None
        assert event.evidence["ip"] == "198.51.100.77"
        assert event.evidence["user_agent"] == "TestBrowser/2"
        assert event.evidence["url"] == "https://newsletter.example.com/subscribe"
        assert event.evidence["consent_statement"] == ws.config.consent_statement
    finally:
        site.close()


# -- tokens -----------------------------------------------------------------------------


def _pending(site: Site, store: Store, email: str = "t@example.com") -> tuple[str, str]:
    site.subscribe(email)
    sub = record.find_by_email(store, email)
    assert sub is not None
    return sub.id, urlsplit(confirm_link(site.mails()[-1])).path


def test_get_never_changes_state(site: Site, store: Store) -> None:
    sid, path = _pending(site, store)
    for _ in range(3):
        assert site.get(path).status_code == 200
    assert record.get_subscriber(store, sid).status == "pending"  # type: ignore[union-attr]
    site.post(path)
    unsubscribe = f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sid)}"
    assert "Unsubscribe" in site.get(unsubscribe).text
    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]


def test_tampered_confirm_link_gets_a_clear_page_and_a_way_back(site: Site, store: Store) -> None:
    sid, path = _pending(site, store)
    token = path.rsplit("/", 1)[1]
    for bad in (token[:-3] + "abc", token[:10], "nonsense"):
        for reply in (site.get(f"/confirm/{bad}"), site.post(f"/confirm/{bad}")):
            assert reply.status_code == 400
            assert "not valid" in reply.text
            assert 'href="https://newsletter.example.com/subscribe"' in reply.text
    assert record.get_subscriber(store, sid).status == "pending"  # type: ignore[union-attr]


def test_expired_confirm_link(site: Site, store: Store) -> None:
    start = clock.now()
    clock.set_now(start)
    sid, path = _pending(site, store)
    clock.set_now(start + timedelta(days=6, hours=23))
    assert site.get(path).status_code == 200
    clock.set_now(start + timedelta(days=7, minutes=1))
    for reply in (site.get(path), site.post(path)):
        assert reply.status_code == 400 and "expired" in reply.text
        assert "Subscribe again" in reply.text
    assert record.get_subscriber(store, sid).status == "pending"  # type: ignore[union-attr]


def test_tokens_of_one_purpose_do_not_work_for_another(site: Site, store: Store) -> None:
    sid, confirm_path = _pending(site, store)
    confirm_token = confirm_path.rsplit("/", 1)[1]
    unsubscribe_token = Tokens(SECRET.encode()).unsubscribe(sid)
    assert site.post(f"/confirm/{unsubscribe_token}").status_code == 400
    assert record.get_subscriber(store, sid).status == "pending"  # type: ignore[union-attr]
    site.post(confirm_path)
    reply = site.post(f"/unsubscribe/{confirm_token}", data={"List-Unsubscribe": "One-Click"})
    assert reply.status_code == 400
    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]
    # A token signed with another key is refused as well.
    forged = Tokens(secrets.token_bytes(32)).unsubscribe(sid)
    assert (
        site.post(f"/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 400
    )
    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]


def test_confirming_twice_or_after_unsubscribing(site: Site, store: Store) -> None:
    sid, path = _pending(site, store)
    assert "You are subscribed" in site.post(path).text
    assert "You are subscribed" in site.post(path).text
    assert [e.kind for e in rights.history(store, record.get_subscriber(store, sid))].count(  # type: ignore[arg-type]
        "confirmed"
    ) == 1
    changes.unsubscribe(store, sid, method="admin", source="test", evidence={})
    reply = site.post(path)
    assert reply.status_code == 400 and "no longer valid" in reply.text
    assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]


# -- unsubscribe ----------------------------------------------------------------------


def _active(store: Store, email: str = "u@example.com") -> tuple[str, str]:
    sub = changes.admin_add(store, email, source="test", confirmed=True)
    return sub.id, f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sub.id)}"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe(site: Site, store: Store, encoding: str) -> None:
    sid, path = _active(store)
    if encoding == "urlencoded":
        kw: dict = {"data": {"List-Unsubscribe": "One-Click"}}
    else:
        kw = {"files": {"List-Unsubscribe": (None, "One-Click")}}
    reply = site.post(path, **kw)
    assert reply.status_code == 200
    assert "location" not in reply.headers and "set-cookie" not in reply.headers
    assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]
    # Again: harmless, still 200, nothing more recorded.
    assert site.post(path, **kw).status_code == 200
    events = rights.history(store, record.get_subscriber(store, sid))  # type: ignore[arg-type]
    assert [(e.kind, e.method) for e in events] == [
        ("admin_added", "admin"),
        ("unsubscribed", "one_click"),
    ]
    assert consent.verify(store).ok


def test_unsubscribe_page_then_resubscribe_with_fresh_consent(site: Site, store: Store) -> None:
    sid, path = _active(store)
    page = site.get(path)
    assert page.status_code == 200 and f'action="{path}"' in page.text
    done = site.post(path, data={"action": "unsubscribe"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]
    resubscribe = re.search(r'action="(/resubscribe/[^"]+)"', done.text)
    assert resubscribe and site.ws.config.consent_statement in done.text
    token = re.search(r'name="form_token" value="([^"]+)"', done.text)
    assert token
    refused = site.post(resubscribe.group(1), data={"form_token": token.group(1)})
    assert refused.status_code == 400 and "Please tick the box" in refused.text
    assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]
    back = site.post(resubscribe.group(1), data={"consent": "yes", "form_token": token.group(1)})
    assert back.status_code == 200 and "Check your inbox" in back.text
    assert record.get_subscriber(store, sid).status == "pending"  # type: ignore[union-attr]
    assert site.post(urlsplit(confirm_link(site.mails()[0])).path).status_code == 200
    assert [s.id for s in audience.audience(store)] == [sid]
    events = rights.history(store, record.get_subscriber(store, sid))  # type: ignore[arg-type]
    assert [(e.kind, e.method) for e in events][1:] == [
        ("unsubscribed", "link"),
        ("resubscribed", "web_form"),
        ("confirmed", "link"),
    ]
    assert consent.verify(store).ok


def test_bad_unsubscribe_links(site: Site, store: Store) -> None:
    sid, path = _active(store)
    reply = site.get(path[:-4] + "AAAA")
    assert reply.status_code == 400 and "unsubscribe link" in reply.text
    assert site.get("/unsubscribe").status_code == 200  # the archive copy's footer link
    assert record.get_subscriber(store, sid).status == "active"  # type: ignore[union-attr]


def test_unsubscribe_is_not_rate_limited(site_ws: Workspace, smtp_sink, store: Store) -> None:
    ws = configure(site_ws, {"rate_limit_per_minute = 10": "rate_limit_per_minute = 1"})
    site = Site(ws, smtp_sink)
    try:
        paths = [_active(store, f"u{n}@example.com")[1] for n in range(4)]
        codes = [site.post(p, data={"List-Unsubscribe": "One-Click"}).status_code for p in paths]
        assert codes == [200] * 4
        assert list(audience.audience(store)) == []
    finally:
        site.close()


# -- archive -----------------------------------------------------------------------------


def test_archive_lists_and_shows_only_sent_issues(site: Site, store: Store) -> None:
    sent = sample_issue()
    sent.status = "sent"
    write_issue(site.ws, sent)
    draft = sample_issue(day=sent.date + timedelta(days=7))
    draft.subject = "Next week's draft"
    write_issue(site.ws, draft)
    changes.admin_add(
        store, "private.reader@example.com", "Private Reader", source="t", confirmed=True
    )

    index = site.get("/archive")
    assert index.status_code == 200
    assert f'href="https://newsletter.example.com/archive/{sent.date}"' in index.text
    assert "Next week" not in index.text

    shown = site.get(f"/archive/{sent.date}")
    assert shown.status_code == 200
    assert "Story 0: what the port strike means" in shown.text
    assert "private.reader" not in shown.text and "Private Reader" not in shown.text
    assert not re.search(r"/unsubscribe/[A-Za-z0-9_.-]{20,}", shown.text)
    assert "zq9dg" not in shown.text  # no unfilled placeholder

    for path in (f"/archive/{draft.date}", "/archive/2001-01-05", "/archive/nonsense"):
        assert site.get(path).status_code == 404
    as_json = site.get(f"/archive/{draft.date}", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and as_json.json()["status"] == 404
    as_html = site.get(f"/archive/{draft.date}", headers={"Accept": "text/html"})
    assert "Page not found" in as_html.text and "<script" not in as_html.text


# -- the form cookie over http and https --------------------------------------------


def test_the_form_cookie_is_secure_only_when_the_request_came_over_https(
    site_ws: Workspace, smtp_sink, store: Store
) -> None:
    """An https base_url, and a form posted over plain http (a local trial, curl, httpx):
    the cookie is not Secure, so the client sends it back and the form goes through."""
    ws = configure(site_ws, {"trusted_proxies = []": 'trusted_proxies = ["127.0.0.1"]'})
    site = Site(ws, smtp_sink)

    def cookie(ip: str, scheme: str, **headers: str) -> str:
        fresh = site.client_from(ip)  # no cookie yet: the page sets one
        fresh.base_url = httpx.URL(f"{scheme}://newsletter.example.com")
        return site.get("/subscribe", fresh, headers=headers).headers["set-cookie"]

    try:
        assert "Secure" in cookie("198.51.100.9", "https")
        assert "Secure" not in cookie("198.51.100.9", "http")
        plain = site.client_from("198.51.100.9")
        plain.base_url = httpx.URL("http://newsletter.example.com")
        answer = site.subscribe("plain@example.com", client=plain)
        assert answer.status_code == 200, answer.text
        assert record.find_by_email(store, "plain@example.com") is not None

        # Through a trusted proxy that terminated TLS: X-Forwarded-Proto says https.
        assert "Secure" in cookie("127.0.0.1", "http", **{"X-Forwarded-Proto": "https"})
        assert "Secure" not in cookie("127.0.0.1", "http")
        assert "Secure" not in cookie("127.0.0.1", "http", **{"X-Forwarded-Proto": "http"})
        # From anyone else the header is not believed.
        assert "Secure" not in cookie("198.51.100.9", "http", **{"X-Forwarded-Proto": "https"})
    finally:
        site.close()


def test_pages_in_a_language_without_a_catalog_say_they_are_english(
    site_ws: Workspace, smtp_sink
) -> None:
    """With no catalog for the newsletter's language the pages are in digest's English,
    and say so: a screen reader would read English words with Dutch sounds."""
    from digest.confirmation import _context

    ws = configure(site_ws, {'language = "en"': 'language = "nl"'})
    opened = Site(ws, smtp_sink)
    try:
        form = opened.get("/subscribe")
    finally:
        opened.close()
    assert form.status_code == 200 and "Subscribe" in form.text
    assert '<html lang="en" dir="ltr">' in form.text
    assert _context(ws, "a@example.org", "", "https://x.example/c")["language"].code == "en"
    russian = configure(ws, {'language = "nl"': 'language = "ru"'})
    assert _context(russian, "a@example.org", "", "https://x.example/c")["language"].code == "ru"
