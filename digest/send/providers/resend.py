"""Resend: ``POST /emails/batch``, up to 100 emails, with an ``Idempotency-Key``.

Resend keeps an idempotency key for 24 hours and answers a repeated request
with the same ids without sending again, so a batch left unknown by a crash
is re-sent automatically with the same key (the key is made from the
batch's messages, so the same batch always carries the same key). The
``x-batch-validation: permissive`` header asks Resend to send the valid
emails and list the invalid ones under ``errors`` (``index`` and
``message``) instead of refusing the whole batch; ``data`` holds the ids of
the emails it accepted, in order.
"""

from __future__ import annotations

from typing import Any

import httpx

from digest.send.keys import batch_key
from digest.send.providers.provider import Provider, recipient_refused
from digest.send.sender import OutgoingMessage, Result


class Resend(Provider):
    name = "resend"
    default_base_url = "https://api.resend.com"
    max_batch = 100
    idempotent = True
    batched = True

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/emails/batch"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        parts = message.parts
        body: dict[str, Any] = {
            "from": parts.from_,
            "to": [parts.to],
            "subject": parts.subject,
            "html": parts.html,
            "text": parts.text,
            "headers": dict(parts.headers),
        }
        if parts.reply_to and parts.reply_to != parts.from_:
            body["reply_to"] = parts.reply_to
        return body

    def request(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": self.endpoint,
            "headers": {
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": batch_key(batch),
                "x-batch-validation": "permissive",
            },
            "content": self.json_body(batch),
        }

    def results(self, response: httpx.Response, batch: list[OutgoingMessage]) -> list[Result]:
        body = response.json()
        failed = {
            int(e["index"]): str(e.get("message", "refused"))
            for e in body.get("errors") or []
            if isinstance(e, dict) and "index" in e
        }
        ids = iter(item.get("id", "") for item in body.get("data") or [])
        results = []
        for index in range(len(batch)):
            if index in failed:
                reason = f"Resend: {failed[index]}"
                results.append(Result.permanent(reason, bounce=recipient_refused(reason)))
            else:
                results.append(Result.accepted(str(next(ids, ""))))
        return results
