"""HTTP providers on httpx.MockTransport handlers that follow each provider's documents."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from digest.config import Http
from digest.errors import ConfigError, SendError
from digest.send.http import HttpSender
from digest.send.keys import batch_key
from digest.send.providers import provider_for
from digest.send.sender import ACCEPTED, PERMANENT, TRANSIENT, UNKNOWN, OutgoingMessage

UNSUB = "<https://news.example.com/u/TOKEN>"


@dataclass
class Parts:
    subject: str
    from_: str = "The Brief <brief@example.com>"
    to: str = ""
    reply_to: str = "The Brief <brief@example.com>"
    html: str = "<p>Hello</p>"
    text: str = "Hello"
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = ""


def message(n: int) -> OutgoingMessage:
    email = f"reader{n}@example.net"
    parts = Parts(
        subject="Friday brief",
        to=f"Reader {n} <{email}>",
        html=f"<p>Hello reader {n}</p>",
        text=f"Hello reader {n}",
        headers={
            "List-Unsubscribe": UNSUB.replace("TOKEN", str(n)),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        message_id=f"<{n}@example.com>",
    )
    wire = (
        f"From: The Brief <brief@example.com>\r\nTo: {email}\r\nSubject: Friday brief\r\n"
        f"List-Unsubscribe: {UNSUB}\r\n\r\nHello\r\n"
    ).encode()
    return OutgoingMessage(
        n, email, f"digest-2026-12-04-{n}", parts=lambda: parts, wire=wire, name=f"Reader {n}"
    )


def run(provider: str, handler: Any, batch: list[OutgoingMessage], **settings: Any) -> list:
    http = Http(
        provider=provider, base_url="https://api.test", token_env="DIGEST_API_TOKEN", **settings
    )
    options = {"domain": "news.example.com"} if provider == "mailgun" else {}
    sender = HttpSender(
        provider_for(http, "tok-123", **options), http, transport=httpx.MockTransport(handler)
    )

    async def go() -> list:
        async with sender:
            return await sender.send(batch)

    return asyncio.run(go())


# -- Postmark ----------------------------------------------------------------------------


def postmark_handler(fail: dict[int, tuple[int, str]] | None = None) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/email/batch"
        assert request.headers["X-Postmark-Server-Token"] == "tok-123"
        assert request.headers["Accept"] == "application/json"
        body = json.loads(request.content)
        assert isinstance(body, list)
        reply = []
        for i, item in enumerate(body):
            assert set(item) >= {"From", "To", "Subject", "HtmlBody", "TextBody", "MessageStream"}
            names = {h["Name"]: h["Value"] for h in item["Headers"]}
            assert names["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert names["List-Unsubscribe"].startswith("<https://")
            if fail and i in fail:
                code, text = fail[i]
                reply.append({"ErrorCode": code, "Message": text, "To": item["To"]})
            else:
                reply.append(
                    {
                        "ErrorCode": 0,
                        "Message": "OK",
                        "MessageID": f"pm-{i}",
                        "SubmittedAt": "2026-12-04T07:00:00Z",
                        "To": item["To"],
                    }
                )
        return httpx.Response(200, json=reply)

    return handler


def test_postmark_batch_reads_each_message_of_a_200() -> None:
    results = run(
        "postmark",
        postmark_handler({1: (406, "Inactive recipient"), 2: (300, "Invalid 'To' address")}),
        [message(n) for n in range(4)],
    )
    assert [r.state for r in results] == [ACCEPTED, PERMANENT, PERMANENT, ACCEPTED]
    assert results[0].provider_id == "pm-0"
    assert "406" in results[1].reason and "Inactive" in results[1].reason


def test_postmark_bad_token_stops_the_send() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"ErrorCode": 10, "Message": "Bad or missing Server API token."}
        )

    with pytest.raises(SendError, match="api.test.*DIGEST_API_TOKEN"):
        run("postmark", handler, [message(1)])


def test_postmark_422_for_the_request_is_permanent_with_the_reply() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"ErrorCode": 300, "Message": "Invalid email request"})

    results = run("postmark", handler, [message(1), message(2)])
    assert [r.state for r in results] == [PERMANENT, PERMANENT]
    assert results[0].reason == "422 Invalid email request"


def test_429_is_transient_throttled_and_honours_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"Retry-After": "7"},
            json={"ErrorCode": 429, "Message": "Rate limit exceeded"},
        )

    results = run("postmark", handler, [message(1), message(2)])
    assert all(r.state == TRANSIENT and r.throttled and r.retry_after == 7.0 for r in results)


def test_500_is_transient_without_throttling() -> None:
    results = run("postmark", lambda r: httpx.Response(500, text="oops"), [message(1)])
    assert results[0].state == TRANSIENT and not results[0].throttled
    assert results[0].reason.startswith("500")


def test_a_lost_reply_is_unknown_for_a_provider_without_idempotency() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    assert run("postmark", handler, [message(1)])[0].state == UNKNOWN
    # Resend honours the Idempotency-Key: the same batch may simply go again.
    assert run("resend", handler, [message(1)])[0].state == TRANSIENT


def test_refused_connection_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert run("sendgrid", handler, [message(1)])[0].state == TRANSIENT


# -- Resend ------------------------------------------------------------------------------


def test_resend_batch_with_idempotency_key_and_permissive_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.url.path == "/emails/batch"
        assert request.headers["Authorization"] == "Bearer tok-123"
        assert request.headers["x-batch-validation"] == "permissive"
        body = json.loads(request.content)
        assert len(body) == 3
        for item in body:
            assert isinstance(item["to"], list) and item["subject"] == "Friday brief"
            assert item["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        return httpx.Response(
            200,
            json={
                "data": [{"id": "re-a"}, {"id": "re-c"}],
                "errors": [{"index": 1, "message": "Invalid `to` field."}],
            },
        )

    batch = [message(n) for n in range(3)]
    results = run("resend", handler, batch)
    assert [(r.state, r.provider_id) for r in results] == [
        (ACCEPTED, "re-a"),
        (PERMANENT, ""),
        (ACCEPTED, "re-c"),
    ]
    assert "Invalid `to`" in results[1].reason
    key = seen[0].headers["Idempotency-Key"]
    assert key == batch_key(batch)
    run("resend", handler, batch)
    assert seen[1].headers["Idempotency-Key"] == key  # the same batch, the same key


# -- SendGrid ----------------------------------------------------------------------------


def test_sendgrid_request_shape_and_message_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v3/mail/send"
        assert request.headers["Authorization"] == "Bearer tok-123"
        body = json.loads(request.content)
        (personalization,) = body["personalizations"]
        assert personalization["to"] == [{"email": "reader5@example.net", "name": "Reader 5"}]
        assert body["from"] == {"email": "brief@example.com", "name": "The Brief"}
        assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
        assert body["headers"]["List-Unsubscribe"] == "<https://news.example.com/u/5>"
        assert body["tracking_settings"]["open_tracking"] == {"enable": False}
        return httpx.Response(202, headers={"X-Message-Id": "sg-5"})

    results = run("sendgrid", handler, [message(5)])
    assert results[0].state == ACCEPTED and results[0].provider_id == "sg-5"


def test_sendgrid_400_is_permanent_with_its_error_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "errors": [
                    {
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email",
                    }
                ]
            },
        )

    result = run("sendgrid", handler, [message(1)])[0]
    assert result.state == PERMANENT and "valid address" in result.reason


def test_sendgrid_rate_limit_reset_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"X-RateLimit-Reset": "3"}, json={"errors": []})

    result = run("sendgrid", handler, [message(1)])[0]
    assert result.throttled and result.retry_after == 3.0


# -- Mailgun -----------------------------------------------------------------------------


def test_mailgun_sends_the_mime_message_with_basic_auth() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v3/news.example.com/messages.mime"
        user, _, password = (
            base64.b64decode(request.headers["Authorization"].split()[1]).decode().partition(":")
        )
        assert (user, password) == ("api", "tok-123")
        assert request.headers["Content-Type"].startswith("multipart/form-data")
        body = request.content
        assert b'name="to"\r\n\r\nreader3@example.net' in body
        assert b'name="message"; filename="message.mime"' in body
        assert b"List-Unsubscribe: <https://news.example.com/u/TOKEN>" in body
        return httpx.Response(
            200, json={"id": "<mg-3@news.example.com>", "message": "Queued. Thank you."}
        )

    result = run("mailgun", handler, [message(3)])[0]
    assert result.state == ACCEPTED and result.provider_id == "<mg-3@news.example.com>"


# -- generic -----------------------------------------------------------------------------


def test_generic_posts_the_default_json_body_with_an_idempotency_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "https://gateway.test/send"
        assert request.headers["Idempotency-Key"] == "digest-2026-12-04-2"
        body = json.loads(request.content)
        assert body["to"] == "reader2@example.net" and body["subject"] == "Friday brief"
        assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        return httpx.Response(201, json={"id": "gw-2"})

    result = run("generic", handler, [message(2)], url="https://gateway.test/send")[0]
    assert result.state == ACCEPTED and result.provider_id == "gw-2"


def test_generic_custom_template() -> None:
    template = '{"rcpt": {{ email | tojson }}, "html": {{ message.html | tojson }}}'

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {
            "rcpt": "reader4@example.net",
            "html": "<p>Hello reader 4</p>",
        }
        return httpx.Response(200, text="ok")

    result = run(
        "generic", handler, [message(4)], url="https://gateway.test/send", body_template=template
    )[0]
    assert result.state == ACCEPTED


def test_generic_template_that_is_not_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not render to JSON"):
        run(
            "generic",
            lambda r: httpx.Response(200),
            [message(1)],
            url="https://gateway.test/send",
            body_template="to={{ email }}",
        )
