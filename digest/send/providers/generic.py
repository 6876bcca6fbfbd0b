"""A generic JSON API for in-house gateways: one message per POST to ``url``.

The body is a Jinja template (``body_template``: inline text, or the name of
a file in the workspace's templates/) that must render to JSON. It sees
``message`` (subject, from_, to, reply_to, html, text, headers,
message_id), ``email``, ``name``, ``subscriber_id`` and ``key``, and the
``tojson`` filter. The message's key goes in an ``Idempotency-Key`` header;
a gateway is not assumed to honour it. A 2xx reply is acceptance; the id is
read from ``id`` or ``message_id`` in a JSON reply, else ``X-Message-Id``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jinja2

from digest.config import Http
from digest.errors import ConfigError
from digest.send.providers.provider import Provider
from digest.send.sender import OutgoingMessage, Result

DEFAULT_BODY = """{
  "from": {{ message.from_ | tojson }},
  "to": {{ email | tojson }},
  "to_name": {{ name | tojson }},
  "reply_to": {{ message.reply_to | tojson }},
  "subject": {{ message.subject | tojson }},
  "html": {{ message.html | tojson }},
  "text": {{ message.text | tojson }},
  "headers": {{ message.headers | tojson }},
  "message_id": {{ message.message_id | tojson }},
  "idempotency_key": {{ key | tojson }}
}"""


class Generic(Provider):
    name = "generic"
    max_batch = 1

    def __init__(self, settings: Http, token: str, *, template_text: str = "") -> None:
        super().__init__(settings, token)
        if not settings.url:
            raise ConfigError('[sender.http] url must be set for provider = "generic"')
        self.url = settings.url
        env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
        env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
        try:
            self.template = env.from_string(template_text or settings.body_template or DEFAULT_BODY)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"[sender.http] body_template line {exc.lineno}: {exc.message}"
            ) from None

    @property
    def endpoint(self) -> str:
        return self.url

    def body(self, message: OutgoingMessage) -> bytes:
        try:
            text = self.template.render(
                message=message.parts,
                email=message.email,
                name=message.name,
                subscriber_id=message.subscriber_id,
                key=message.key,
            )
        except jinja2.TemplateError as exc:
            raise ConfigError(f"[sender.http] body_template: {exc}") from None
        try:
            json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"[sender.http] body_template does not render to JSON ({exc}); "
                "use the tojson filter for every value"
            ) from None
        return text.encode("utf-8")

    def request(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        (message,) = batch
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {
            "method": "POST",
            "url": self.url,
            "headers": headers,
            "content": self.body(message),
        }

    def results(self, response: httpx.Response, batch: list[OutgoingMessage]) -> list[Result]:
        ident = response.headers.get("x-message-id", "")
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            ident = str(data.get("id") or data.get("message_id") or ident)
        return [Result.accepted(ident)]
