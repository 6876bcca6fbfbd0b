"""A person in a real (headless Chromium) browser subscribes and confirms."""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from typing import Any
from urllib.parse import urlsplit

import pytest
from _browser_fixtures import browser, serve_app  # noqa: F401  (makes the fixture known here)
from _public_fixtures import SECRET, configure, confirm_link, smtp_settings
from _send_fixtures import SmtpSink

from digest.people import audience, rights
from digest.store import open_store
from digest.web.public import app as public_app
from digest.workspace import Workspace

pytestmark = pytest.mark.browser


def test_a_reader_fills_in_the_form_and_confirms(
    request: pytest.FixtureRequest,
    workspace: Workspace,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chromium: Any = request.getfixturevalue("browser")  # skips (or fails on CI) without one
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    ws = configure(workspace, smtp_settings(smtp_sink))
    app = public_app(ws)
    problems: list[str] = []
    context = chromium.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        with serve_app(app) as url:
            page.goto(f"{url}/subscribe")
            assert page.title() == "Subscribe to The Weekly Brief"
            # The stylesheet applied: the honeypot is out of sight, the statement is a label.
            trap = page.locator("#website").bounding_box()
            assert trap is None or trap["x"] < 0
            page.fill("#email", "browser.reader@example.com")
            page.fill("#name", "Browser Reader")
            page.click("button[type=submit]")  # the box is not ticked
            assert page.locator(".error").inner_text().startswith("Please tick the box")
            assert page.input_value("#email") == "browser.reader@example.com"
            page.click("label[for=consent]")  # ticking it by its label, as people do
            assert page.is_checked("#consent")
            page.click("button[type=submit]")
            assert page.locator("h2").inner_text() == "Check your inbox"

            # The email goes after the reply (so its timing tells nothing): wait for it.
            deadline = time.monotonic() + 10
            while not smtp_sink.received and time.monotonic() < deadline:
                time.sleep(0.05)
            [mail] = smtp_sink.received
            assert mail.rcpt == "browser.reader@example.com"
            message = message_from_bytes(mail.data, policy=policy.default)
            path = urlsplit(confirm_link(message)).path  # type: ignore[arg-type]
            page.goto(f"{url}{path}")
            page.click("text=Confirm my subscription")
            assert page.locator("h2").inner_text() == "You are subscribed"
    finally:
        context.close()
    # The one expected complaint: the refused form (no tick) answered 400. No CSP reports.
    assert [p for p in problems if "status of 400" not in p] == []
    with open_store(ws) as store:
        [reader] = list(audience.audience(store))
        assert reader.email == "browser.reader@example.com" and reader.name == "Browser Reader"
        events = rights.history(store, reader)
        assert [e.kind for e in events] == ["signup_requested", "confirmed"]
        assert "Chrome" in events[0].evidence["user_agent"]  # type: ignore[index]
