"""Attacks on the public and preview apps, each reproduced, then defended.

Resubscribing with an old link, Host headers and redirects, rate-limit keys,
the archive of a broken issue file. Body limits, timeouts and the access log
run against a real ``digest serve`` in ``test_security_serve.py``.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from _public_fixtures import SECRET, Site, configure, confirm_link
from _render_fixtures import sample_issue, write_issue

from digest import clock, consent
from digest.people import audience, changes, record, rights
from digest.store import Store
from digest.tokens import Tokens
from digest.web import preview
from digest.web.public_guard import rate_key
from digest.workspace import Workspace


def _unsubscribed(store: Store, email: str = "reader@example.com") -> tuple[str, str]:
    """An active reader who has since unsubscribed, and the unsubscribe token of their mail."""
    sub = changes.admin_add(store, email, source="test", confirmed=True)
    changes.unsubscribe(store, sub.id, method="one_click", source="test", evidence={})
    return sub.id, Tokens(SECRET.encode()).unsubscribe(sub.id)


def _status(store: Store, sid: str) -> str:
    found = record.get_subscriber(store, sid)
    assert found is not None
    return found.status


# -- 1. resubscribing ------------------------------------------------------------------


def test_an_old_unsubscribe_link_cannot_resubscribe_without_the_form(
    site: Site, store: Store
) -> None:
    """A third party holding a forwarded email posts straight to /resubscribe."""
    sid, token = _unsubscribed(store)
    attacker = site.client_from("198.51.100.66")
    reply = site.post(
        f"/resubscribe/{token}",
        attacker,
        data={"consent": "yes"},
        headers={"Origin": "https://evil.example"},
    )
    assert reply.status_code == 403
    assert _status(store, sid) == "unsubscribed"
    kinds = [e.kind for e in rights.history(store, record.get_subscriber(store, sid))]  # type: ignore[arg-type]
    assert kinds == ["admin_added", "unsubscribed"]
    assert site.mails() == []


def test_resubscribing_goes_through_double_opt_in_again(site: Site, store: Store) -> None:
    sid = changes.admin_add(store, "back@example.com", "Back Again", source="t", confirmed=True).id
    path = f"/unsubscribe/{Tokens(SECRET.encode()).unsubscribe(sid)}"
    done = site.post(path, data={"action": "unsubscribe"})
    assert done.status_code == 200 and _status(store, sid) == "unsubscribed"
    action = re.search(r'action="(/resubscribe/[^"]+)"', done.text)
    token = re.search(r'name="form_token" value="([^"]+)"', done.text)
    assert action and token, done.text
    assert "digest_form" in done.headers.get("set-cookie", "")

    # The form with its token, from the same browser: pending, and a fresh confirmation email.
    back = site.post(action.group(1), data={"consent": "yes", "form_token": token.group(1)})
    assert back.status_code == 200 and "Check your inbox" in back.text
    assert _status(store, sid) == "pending"
    assert [s.id for s in audience.audience(store)] == []
    [mail] = site.mails()
    assert mail["To"] == "Back Again <back@example.com>"
    events = rights.history(store, record.get_subscriber(store, sid))  # type: ignore[arg-type]
    assert [(e.kind, e.method) for e in events][1:] == [
        ("unsubscribed", "link"),
        ("resubscribed", "web_form"),
    ]
    assert events[-1].evidence is not None
    assert events[-1].evidence["path"] == "resubscribe form, then a confirmation email"

    # Only the reader's own confirmation puts them back.
    assert site.post(urlsplit(confirm_link(mail)).path).status_code == 200
    assert _status(store, sid) == "active"
    assert consent.verify(store).ok


def test_a_resubscribe_token_from_another_browser_is_refused(site: Site, store: Store) -> None:
    sid, token = _unsubscribed(store)
    victim_page = site.post(f"/unsubscribe/{token}", data={"action": "unsubscribe"})
    form_token = re.search(r'name="form_token" value="([^"]+)"', victim_page.text)
    assert form_token
    other = site.client_from("198.51.100.67")  # no cookie of the page that made the token
    reply = site.post(
        f"/resubscribe/{token}", other, data={"consent": "yes", "form_token": form_token.group(1)}
    )
    assert reply.status_code == 403 and _status(store, sid) == "unsubscribed"


# -- 3. Host headers, redirects, HSTS -------------------------------------------------


def _preview_get(
    ws: Workspace, url: str, host: str | None = None, served_on: str | None = None
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=preview.app(ws, host=served_on))
        async with httpx.AsyncClient(transport=transport) as client:
            headers = {"Host": host} if host is not None else {}
            return await client.get(url, headers=headers)

    return asyncio.run(go())


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:8765", "localhost.attacker.example:8765", "127.0.0.1:9"],
)
def test_preview_refuses_other_hosts_dns_rebinding(workspace: Workspace, host: str) -> None:
    write_issue(workspace, sample_issue())
    reply = _preview_get(workspace, "http://127.0.0.1:8765/", host)
    assert reply.status_code == 400
    assert "port strike" not in reply.text


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765/", "http://localhost:8765/", "http://[::1]:8765/"]
)
def test_preview_answers_its_loopback_names(workspace: Workspace, url: str) -> None:
    write_issue(workspace, sample_issue())
    reply = _preview_get(workspace, url)
    assert reply.status_code == 200 and "The port strike" in reply.text


def test_preview_served_on_a_chosen_address_answers_it_and_still_refuses_others(
    workspace: Workspace,
) -> None:
    write_issue(workspace, sample_issue())
    url = "http://192.0.2.10:8765/"
    assert _preview_get(workspace, url, served_on="192.0.2.10").status_code == 200
    refused = _preview_get(workspace, url, "attacker.example:8765", served_on="192.0.2.10")
    assert refused.status_code == 400


def test_public_redirects_never_echo_the_request_host(site: Site) -> None:
    evil = {"Host": "evil.example"}
    for path in ("/archive/2026-12-04/", "/subscribe/", "/"):
        reply = site.get(path, headers=evil)
        assert reply.status_code in (301, 303, 307, 308), (path, reply.status_code)
        location = reply.headers["location"]
        assert location.startswith("https://newsletter.example.com/"), location
        assert "evil" not in location


def test_hsts_only_when_base_url_is_https(site: Site, workspace: Workspace) -> None:
    assert site.get("/subscribe").headers["strict-transport-security"].startswith("max-age=")
    plain = configure(
        site.ws, {'base_url = "https://newsletter.example.com"': 'base_url = "http://127.0.0.1"'}
    )
    other = Site(plain, None)
    try:
        assert "strict-transport-security" not in other.get("/subscribe").headers
    finally:
        other.close()


# -- 2. body limits on every route, for every content type ---------------------------

CONTENT_TYPES = [
    "text/plain",
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
]


def _stream_post(app: Any, path: str, content_type: str, total: int) -> tuple[int, int]:
    """POST ``total`` bytes in 64 KiB chunks without Content-Length; (status, bytes read)."""
    chunk = b"A" * 65536
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.disconnect"}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pulled < total}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"newsletter.example.com"),
            (b"content-type", content_type.encode()),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("203.0.113.9", 5000),
        "server": ("newsletter.example.com", 443),
    }
    asyncio.run(app(scope, receive, send))
    return status, pulled


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_route_stops_reading_at_its_limit(
    site: Site, store: Store, content_type: str
) -> None:
    sid = changes.admin_add(store, "big@example.com", source="t", confirmed=True).id
    tokens = Tokens(SECRET.encode())
    paths = [
        "/subscribe",
        f"/unsubscribe/{tokens.unsubscribe(sid)}",
        f"/resubscribe/{tokens.unsubscribe(sid)}",
        f"/confirm/{tokens.confirm(sid)}",
        "/archive",
        "/healthz",
        "/no-such-page",
    ]
    total = 400 * 1024 * 1024
    for path in paths:
        status, pulled = _stream_post(site.app, path, content_type, total)
        assert pulled <= 128 * 1024, (path, content_type, pulled)
        reads_a_form = path.startswith(("/subscribe", "/unsubscribe/", "/resubscribe/"))
        if reads_a_form:  # a multipart parser may give up on the garbage first (400)
            assert status == 413 or (status == 400 and "multipart" in content_type), path
        else:
            assert status != 500, (path, status)
    assert _status(store, sid) == "active"


def test_a_declared_length_past_the_limit_is_refused_before_reading(site: Site) -> None:
    reply = site.post(
        "/subscribe",
        content=b"x" * (65 * 1024),
        headers={"Content-Type": "text/plain"},
    )
    assert reply.status_code == 413 and "Too much data" in reply.text


# -- 4. rate-limit keys and the global cap on confirmation emails -------------------


def test_rotating_addresses_within_one_ipv6_64_does_not_escape_the_limit(
    site_ws: Workspace, smtp_sink: Any, store: Store
) -> None:
    ws = configure(site_ws, {"rate_limit_per_minute = 10": "rate_limit_per_minute = 3"})
    site = Site(ws, smtp_sink)
    try:
        codes = [
            site.subscribe(
                f"victim{n}@example.com", client=site.client_from(f"2001:db8:1:2::{n + 1:x}")
            ).status_code
            for n in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        assert len(site.mails()) == 3
        # Another /64 is someone else; IPv4 addresses count one by one.
        assert (
            site.subscribe("x@example.com", client=site.client_from("2001:db8:1:3::1")).status_code
            == 200
        )
        v4 = [
            site.subscribe(
                f"v4-{n}@example.com", client=site.client_from(f"192.0.2.{n}")
            ).status_code
            for n in range(1, 5)
        ]
        assert v4 == [200] * 4
    finally:
        site.close()


def test_the_ipv6_prefix_is_configurable() -> None:
    assert rate_key("2001:db8:1:2:aaaa::1", 64) == rate_key("2001:db8:1:2:bbbb::9", 64)
    assert rate_key("2001:db8:1:2:aaaa::1", 128) != rate_key("2001:db8:1:2:aaaa::2", 128)
    assert rate_key("2001:db8:1:2:aaaa::1", 48) == rate_key("2001:db8:1:ffff::1", 48)
    assert rate_key("192.0.2.1", 64) != rate_key("192.0.2.2", 64)
    assert rate_key("::ffff:192.0.2.1", 64) == rate_key("192.0.2.1", 64)
    assert rate_key("unknown", 64) == "unknown"


def test_confirmation_emails_have_a_global_hourly_cap(
    site_ws: Workspace, smtp_sink: Any, store: Store
) -> None:
    ws = configure(site_ws, {"confirmations_per_hour = 200": "confirmations_per_hour = 2"})
    site = Site(ws, smtp_sink)
    try:
        start = clock.now()
        clock.set_now(start)
        codes = [
            site.subscribe(
                f"c{n}@example.com", client=site.client_from(f"198.51.100.{n}")
            ).status_code
            for n in range(1, 5)
        ]
        assert codes == [200, 200, 503, 503]
        assert len(site.mails()) == 2
        assert record.find_by_email(store, "c3@example.com") is None
        clock.set_now(start + timedelta(minutes=61))
        late = site.subscribe("c3@example.com", client=site.client_from("198.51.100.3"))
        assert late.status_code == 200 and len(site.mails()) == 3
    finally:
        site.close()


def test_one_client_cannot_spend_the_hour_s_cap_alone(
    site_ws: Workspace, smtp_sink: Any, store: Store
) -> None:
    """A client posting a new address each time, within its rate limit, got every email
    of the hour sent, and the form then said 503 to everyone. Each client (an IPv4
    address, an IPv6 prefix) may cause a tenth of the hour's confirmation emails."""
    ws = configure(site_ws, {"confirmations_per_hour = 200": "confirmations_per_hour = 20"})
    site = Site(ws, smtp_sink)
    try:
        greedy = site.client_from("198.51.100.7")
        codes = [site.subscribe(f"g{n}@example.com", client=greedy).status_code for n in range(4)]
        assert codes == [200, 200, 429, 429]
        assert len(site.mails()) == 2
        assert record.find_by_email(store, "g2@example.com") is None  # nothing recorded
        other = site.subscribe("reader@example.com", client=site.client_from("192.0.2.8"))
        assert other.status_code == 200
        assert [m["To"] for m in site.mails()][-1] == "reader@example.com"
        clock.set_now(clock.now() + timedelta(minutes=61))
        assert site.subscribe("g2@example.com", client=greedy).status_code == 200
    finally:
        site.close()


def test_the_hourly_cap_counts_emails_sent_not_posts(
    site_ws: Workspace, smtp_sink: Any, store: Store
) -> None:
    """25 clients posting one address 10 times each send it one email and spend one of
    the hour's confirmations; a fresh reader still gets theirs."""
    ws = configure(site_ws, {"confirmations_per_hour = 200": "confirmations_per_hour = 20"})
    site = Site(ws, smtp_sink)
    try:
        changes.admin_add(store, "already@example.com", source="t", confirmed=True)
        codes = set()
        for n in range(1, 26):
            client = site.client_from(f"198.51.100.{n}")
            for email in ["target@example.com"] * 9 + ["already@example.com"]:
                codes.add(site.subscribe(email, client=client).status_code)
        assert codes == {200}
        assert [m["To"] for m in site.mails()] == ["target@example.com"]
        target = record.find_by_email(store, "target@example.com")
        assert target is not None
        assert [e.kind for e in rights.history(store, target)] == ["signup_requested"]
        fresh = site.subscribe("fresh@example.com", client=site.client_from("192.0.2.77"))
        assert fresh.status_code == 200
        assert [m["To"] for m in site.mails()] == ["target@example.com", "fresh@example.com"]
    finally:
        site.close()


# -- 5. timing ---------------------------------------------------------------------------


def _timed_subscribe(site: Site, email: str, form_token: str) -> float:
    """Seconds from the request to the reply's first byte, as the server sends it.

    Measured at the ASGI ``send`` (not after the background task, which a real
    server runs after the reply has gone).
    """
    cookie = site.client.cookies.get("digest_form")
    body = urlencode({"email": email, "consent": "yes", "form_token": form_token, "website": ""})
    replied = 0.0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal replied
        if message["type"] == "http.response.start" and not replied:
            assert message["status"] == 200
            replied = time.perf_counter()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/subscribe",
        "raw_path": b"/subscribe",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"newsletter.example.com"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"cookie", f"digest_form={cookie}".encode()),
        ],
        "client": ("203.0.113.9", 5000),
        "server": ("newsletter.example.com", 443),
    }
    started = time.perf_counter()
    site.run(site.app(scope, receive, send))
    return replied - started


@pytest.mark.slow
def test_reply_time_does_not_tell_suppressed_from_subscribed(
    site_ws: Workspace, smtp_sink: Any, store: Store
) -> None:
    ws = configure(
        site_ws,
        {
            "subscribe_reply_seconds = 0": "subscribe_reply_seconds = 0.1",
            "rate_limit_per_minute = 10": "rate_limit_per_minute = 0",
        },
    )
    site = Site(ws, smtp_sink)
    try:
        changes.suppress(store, "gone@example.com", reason="spam trap", source="t")
        changes.admin_add(store, "here@example.com", source="test", confirmed=True)
        token = site.form_token()
        suppressed, active = [], []
        for _ in range(40):
            suppressed.append(_timed_subscribe(site, "gone@example.com", token))
            active.append(_timed_subscribe(site, "here@example.com", token))
    finally:
        site.close()
    # How often a suppressed reply is faster than an active one: 0.5 when the two
    # distributions are alike, near 0 when the suppressed path is quicker.
    faster = sum(s < a for s in suppressed for a in active) / (len(suppressed) * len(active))
    assert 0.25 < faster < 0.75, (faster, statistics.median(suppressed), statistics.median(active))
    assert min(suppressed + active) >= 0.1


# -- 11. a sent issue whose file was broken later ---------------------------------------


def test_a_broken_sent_issue_gets_an_error_page_with_the_security_headers(site: Site) -> None:
    issue = sample_issue()
    issue.status = "sent"
    write_issue(site.ws, issue)
    path = site.ws.issues_dir / f"{issue.date}.yaml"
    path.write_text(path.read_text() + "\narticles: [unclosed\n", encoding="utf-8")
    reply = site.get(f"/archive/{issue.date}")
    assert reply.status_code == 500
    assert "Something went wrong on our side" in reply.text
    assert "cannot be shown" in reply.text
    assert "Traceback" not in reply.text and str(path) not in reply.text
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert site.get("/archive").status_code == 200


def test_an_unexpected_failure_gets_the_error_page_with_the_security_headers(
    site_ws: Workspace, smtp_sink: Any, dead_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is down: the reader sees the site's 500 page, never a bare one."""
    monkeypatch.setenv("DIGEST_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{dead_port}/x")
    site = Site(site_ws, smtp_sink)
    try:
        reply = site.subscribe("down@example.com")
    finally:
        site.close()
    assert reply.status_code == 500
    assert "Something went wrong on our side" in reply.text
    assert "Traceback" not in reply.text and str(dead_port) not in reply.text
    assert "default-src 'self'" in reply.headers["content-security-policy"]
