"""SendGrid: ``POST /v3/mail/send``, one personalization per request.

Each subscriber's message differs (a signed unsubscribe link, a name), and
digest renders it whole, so each request carries one personalization; the
parallel requests and the shared connection pool make up for the batch.
SendGrid answers ``202 Accepted`` with the message id in ``X-Message-Id``;
errors come as ``{"errors": [{"message": ..., "field": ...}]}``. Custom
headers travel in ``headers``; SendGrid has no idempotency key, so the key
goes in ``custom_args`` for the event webhook.
"""

from __future__ import annotations

from typing import Any

import httpx

from digest.send.providers.provider import Provider, split_address
from digest.send.sender import OutgoingMessage, Result

# SendGrid builds these itself and refuses them in ``headers``.
RESERVED = {
    "from",
    "to",
    "subject",
    "reply-to",
    "cc",
    "bcc",
    "content-type",
    "content-transfer-encoding",
    "dkim-signature",
    "received",
    "x-sg-id",
    "x-sg-eid",
}


class SendGrid(Provider):
    name = "sendgrid"
    default_base_url = "https://api.sendgrid.com"
    max_batch = 1

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v3/mail/send"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        parts = message.parts
        from_name, from_email = split_address(parts.from_)
        to: dict[str, str] = {"email": message.email}
        if message.name:
            to["name"] = message.name
        sender: dict[str, str] = {"email": from_email}
        if from_name:
            sender["name"] = from_name
        body: dict[str, Any] = {
            "personalizations": [{"to": [to], "custom_args": {"digest_key": message.key}}],
            "from": sender,
            "subject": parts.subject,
            "content": [
                {"type": "text/plain", "value": parts.text},
                {"type": "text/html", "value": parts.html},
            ],
            "headers": {k: v for k, v in parts.headers.items() if k.lower() not in RESERVED},
            "tracking_settings": {
                "click_tracking": {"enable": False},
                "open_tracking": {"enable": False},
            },
        }
        if parts.reply_to and parts.reply_to != parts.from_:
            reply_name, reply_email = split_address(parts.reply_to)
            body["reply_to"] = {
                "email": reply_email,
                **({"name": reply_name} if reply_name else {}),
            }
        return body

    def request(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        if len(batch) != 1:
            raise ValueError("SendGrid requests carry one message each")
        return {
            "method": "POST",
            "url": self.endpoint,
            "headers": {
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
            },
            "content": self.json_body(batch),
        }

    def results(self, response: httpx.Response, batch: list[OutgoingMessage]) -> list[Result]:
        return [Result.accepted(response.headers.get("x-message-id", ""))]
