"""Postmark: ``POST /email/batch``, up to 500 messages, on the broadcast stream.

The reply is a JSON array in the order of the request, one object per
message: ``ErrorCode`` 0 and a ``MessageID`` when accepted, else a code and a
``Message``, while the HTTP status is still 200. Custom headers travel as
``Headers: [{"Name": ..., "Value": ...}]``. Postmark has no idempotency key.
"""

from __future__ import annotations

from typing import Any

import httpx

from digest.errors import SendError
from digest.send.providers.provider import Provider, recipient_refused
from digest.send.sender import OutgoingMessage, Result

# Codes that say "not now" rather than "never" for this message.
TRANSIENT_CODES = {100: "maintenance", 429: "rate limit exceeded"}
# 406: the recipient hard-bounced or complained before and Postmark will not mail it;
# 300 (invalid email request) is a bounce only when it names the address.
INACTIVE_RECIPIENT = 406


class Postmark(Provider):
    name = "postmark"
    default_base_url = "https://api.postmarkapp.com"
    max_batch = 500
    stream = "broadcast"
    batched = True

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/email/batch"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        parts = message.parts
        body: dict[str, Any] = {
            "From": parts.from_,
            "To": parts.to,
            "Subject": parts.subject,
            "HtmlBody": parts.html,
            "TextBody": parts.text,
            "Headers": [{"Name": k, "Value": v} for k, v in parts.headers.items()],
            "MessageStream": self.stream,
            "TrackOpens": False,
            "TrackLinks": "None",
        }
        if parts.reply_to and parts.reply_to != parts.from_:
            body["ReplyTo"] = parts.reply_to
        return body

    def request(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": self.endpoint,
            "headers": {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Postmark-Server-Token": self.token,
            },
            "content": self.json_body(batch),
        }

    def results(self, response: httpx.Response, batch: list[OutgoingMessage]) -> list[Result]:
        data = response.json()
        if not isinstance(data, list):
            return [Result.unknown(f"unexpected reply from Postmark: {response.text[:120]}")] * len(
                batch
            )
        return [self._one(item) for item in data]

    def _one(self, item: dict[str, Any]) -> Result:
        code = int(item.get("ErrorCode", -1))
        if code == 0:
            return Result.accepted(str(item.get("MessageID", "")))
        reason = f"Postmark {code}: {item.get('Message', '')}".strip()
        if code in TRANSIENT_CODES:
            return Result.transient(reason, throttled=code == 429)
        if code == INACTIVE_RECIPIENT:
            return Result.permanent(reason, bounce="hard")
        return Result.permanent(reason, bounce=recipient_refused(reason))

    def rejected(
        self, response: httpx.Response, batch: list[OutgoingMessage], reason: str
    ) -> list[Result]:
        try:
            code = int(response.json().get("ErrorCode", -1))
        except (ValueError, AttributeError):
            code = -1
        if code == 10:
            raise SendError(
                f"{self.base_url}: Postmark refused the server token ({reason}); check the token "
                f"in the environment variable {self.settings.token_env}"
            )
        bounce = "hard" if code == INACTIVE_RECIPIENT else recipient_refused(reason)
        return [Result.permanent(reason, bounce=bounce)] * len(batch)
