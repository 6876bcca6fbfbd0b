"""Fixtures for the public pages: the app on each backend, mailing a real SMTP sink.

``site`` is the public app of a workspace whose sender is SMTP to an aiosmtpd
sink on loopback and whose database is SQLite or PostgreSQL (the ``backend``
parameter), reached through ``httpx.ASGITransport`` from a client address of
our choosing. ``site.subscribe(...)`` fills in the form as a browser would:
GET the page (which sets the form cookie), then POST with its token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from _send_fixtures import SmtpSink

from digest.web.public import PublicSite
from digest.web.public import app as public_app
from digest.workspace import Workspace

SECRET = "test-signing-key-for-links-0123456789"
CLIENT_IP = "203.0.113.7"


def configure(ws: Workspace, replacements: dict[str, str]) -> Workspace:
    """Edit digest.toml (each old text must be there) and read it again."""
    text = ws.config_path.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    ws.config_path.write_text(text, encoding="utf-8")
    return ws.reload()


def smtp_settings(sink: SmtpSink) -> dict[str, str]:
    return {
        'kind = "outbox"': 'kind = "smtp"',
        "port = 587": f"port = {sink.port}",
        'security = "starttls"': 'security = "none"',
    }


class Site:
    """The public app and a client; sync methods over one event loop of its own."""

    def __init__(self, ws: Workspace, sink: SmtpSink | None, ip: str = CLIENT_IP) -> None:
        self.ws = ws
        self.sink = sink
        self.app = public_app(ws)
        self.public = next(
            r.endpoint.__self__  # type: ignore[attr-defined]
            for r in self.app.routes
            if isinstance(getattr(getattr(r, "endpoint", None), "__self__", None), PublicSite)
        )
        self.loop = asyncio.new_event_loop()
        self.clients: list[httpx.AsyncClient] = []
        self.client = self.client_from(ip)

    def client_from(self, ip: str, port: int = 40000) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(ip, port)),
            base_url=self.ws.config.newsletter.base_url,
        )
        self.clients.append(client)
        return client

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def get(self, path: str, client: httpx.AsyncClient | None = None, **kw: Any) -> httpx.Response:
        return self.run((client or self.client).get(path, **kw))  # type: ignore[no-any-return]

    def post(self, path: str, client: httpx.AsyncClient | None = None, **kw: Any) -> httpx.Response:
        """POST, then wait for the confirmation worker to deal with what the post handed it."""
        response = self.run((client or self.client).post(path, **kw))
        self.public.mailer.drain()
        return response  # type: ignore[no-any-return]

    def form_token(self, client: httpx.AsyncClient | None = None) -> str:
        page = self.get("/subscribe", client)
        assert page.status_code == 200
        found = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    def subscribe(
        self,
        email: str,
        name: str = "",
        *,
        consent: bool = True,
        client: httpx.AsyncClient | None = None,
        **extra: str,
    ) -> httpx.Response:
        data = {"form_token": self.form_token(client), "email": email, "name": name, "website": ""}
        if consent:
            data["consent"] = "yes"
        data.update(extra)
        return self.post("/subscribe", client, data=data)

    def mails(self) -> list[EmailMessage]:
        assert self.sink is not None
        return [
            message_from_bytes(r.data, policy=policy.default)  # type: ignore[misc]
            for r in self.sink.received
        ]

    def close(self) -> None:
        for client in self.clients:
            self.run(client.aclose())
        self.loop.close()
        self.public.mailer.close()
        if self.public._store is not None:
            self.public._store.close()


def confirm_link(message: EmailMessage) -> str:
    """The confirm URL in a confirmation email's text part."""
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"https?://\S+/confirm/\S+", body.get_content())
    assert found, body.get_content()
    return found.group(0)


@pytest.fixture
def site_ws(
    workspace: Workspace,
    database_url: str,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> Workspace:
    """The workspace, mailing the sink, on the backend under test, with a signing key set."""
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    # No minimum reply time for the form but in the test of it: the suite stays quick.
    fast = {"subscribe_reply_seconds = 0.4": "subscribe_reply_seconds = 0"}
    return configure(workspace, {**smtp_settings(smtp_sink), **fast})


@pytest.fixture
def site(site_ws: Workspace, smtp_sink: SmtpSink) -> Iterator[Site]:
    opened = Site(site_ws, smtp_sink)
    yield opened
    opened.close()


__all__ = [
    "CLIENT_IP",
    "SECRET",
    "Site",
    "configure",
    "confirm_link",
    "site",
    "site_ws",
    "smtp_settings",
]
