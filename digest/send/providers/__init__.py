"""Provider adapters for the HTTP sender: one module each, one small class.

An adapter turns a batch of messages into one request (``request``), reads
one :class:`~digest.send.sender.Result` per message from a 2xx reply
(``results``), and from a refused request (``rejected``). A new provider is
one module with a class like these (a :class:`~digest.send.providers.provider.Provider`),
added to ``PROVIDERS``; it is imported only when it is the configured one.

A JSON API describes one message as ``payload(message)``, the plain dict it
documents, and sends ``json_body(batch)``: the same bytes as ``json.dumps``
of the payloads (a JSON array when ``batched``), spliced from pieces encoded
once per issue (digest.send.splice).
"""

from __future__ import annotations

import importlib
from typing import Any

from digest.config import Http
from digest.send.providers.provider import Provider

PROVIDERS = {
    "postmark": "digest.send.providers.postmark:Postmark",
    "sendgrid": "digest.send.providers.sendgrid:SendGrid",
    "mailgun": "digest.send.providers.mailgun:Mailgun",
    "resend": "digest.send.providers.resend:Resend",
    "generic": "digest.send.providers.generic:Generic",
}


def provider_for(settings: Http, token: str, **options: Any) -> Provider:
    module_name, _, class_name = PROVIDERS[settings.provider].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls(settings, token, **options)
    return provider


__all__ = ["PROVIDERS", "Provider", "provider_for"]
