"""Mailgun: ``POST /v3/DOMAIN/messages.mime`` with digest's own MIME message.

Sending the finished MIME keeps every header exactly as digest built it
(List-Unsubscribe, List-Unsubscribe-Post, Message-ID, a DKIM signature when
configured), which is Mailgun's documented way to send a message built
elsewhere. The form has ``to`` and the ``message`` file; Mailgun answers
``{"id": "<...>", "message": "Queued. Thank you."}``. Authentication is
HTTP Basic with the user ``api``. The EU region is
``base_url = "https://api.eu.mailgun.net"``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from digest.config import Http
from digest.send.providers.provider import Provider
from digest.send.sender import OutgoingMessage, Result


class Mailgun(Provider):
    name = "mailgun"
    eai = True  # documented: internationalised addresses through the Messages API
    default_base_url = "https://api.mailgun.net"
    max_batch = 1

    def __init__(self, settings: Http, token: str, *, domain: str = "") -> None:
        super().__init__(settings, token)
        self.domain = settings.domain or domain

    @property
    def authorization(self) -> str:
        return "Basic " + base64.b64encode(f"api:{self.token}".encode()).decode("ascii")

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v3/{self.domain}/messages.mime"

    def request(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        (message,) = batch
        return {
            "method": "POST",
            "url": self.endpoint,
            "headers": {"Authorization": self.authorization},
            "data": {"to": message.email, "v:digest-key": message.key},
            "files": {"message": ("message.mime", message.wire, "message/rfc822")},
        }

    def results(self, response: httpx.Response, batch: list[OutgoingMessage]) -> list[Result]:
        try:
            ident = str(response.json().get("id", ""))
        except ValueError:
            ident = ""
        return [Result.accepted(ident)]
