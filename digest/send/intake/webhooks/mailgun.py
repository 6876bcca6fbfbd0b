"""Mailgun: webhooks signed with HMAC-SHA256.

The signature is inside the JSON body, so the body is parsed first, with a depth cap
(:func:`~digest.send.intake.webhooks.common.load_json`). Each JSON request holds
``signature: {timestamp, token, signature}``: the
hex HMAC-SHA256 of timestamp and token concatenated, keyed with the
account's webhook signing key. A token is used once, so a repeated one is a
replay. ``event-data`` holds one event: ``failed`` with ``severity``
permanent (a bounce, classified by its delivery status; Mailgun's own
suppressions are hard) or temporary (ignored: Mailgun retries),
``complained``, ``unsubscribed``. digest's ``v:digest-key`` comes back in
``user-variables``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from digest import bounces
from digest.config import Config
from digest.send.intake.webhooks.common import Event, Refused, fresh, load_json, raw_json


def secrets(config: Config) -> str:
    env = config.webhooks.mailgun.signing_key_env
    return config.secret(env, "the Mailgun webhook signing key")


def verify(config: Config, headers: Mapping[str, str], body: bytes, now: float) -> str:
    key = secrets(config)
    data = load_json(body, "mailgun")  # the signature is inside the body
    try:
        signed = data.get("signature") or {}
        timestamp, token = str(signed["timestamp"]), str(signed["token"])
        signature = str(signed["signature"])
    except (ValueError, KeyError, AttributeError, TypeError):
        raise Refused(401, "mailgun: the request is not signed") from None
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Refused(401, "mailgun: the signature does not match")
    fresh(timestamp, now, config.webhooks.tolerance_seconds, "mailgun")
    return token


def events(body: bytes) -> list[Event]:
    data: dict[str, Any] = load_json(body, "mailgun").get("event-data") or {}
    name = str(data.get("event", ""))
    delivery = data.get("delivery-status") or {}
    code = delivery.get("code")
    message = str(delivery.get("message", "") or delivery.get("description", ""))
    reason = str(data.get("reason", ""))
    if name == "failed":
        if data.get("severity") != "permanent":
            return []
        if reason.startswith("suppress-"):
            kind = "complaint" if reason == "suppress-complaint" else "hard"
        else:
            kind = bounces.classify(
                str(delivery.get("enhanced-code", "")), _int(code), message
            ).kind
    elif name == "complained":
        kind = "complaint"
    elif name == "unsubscribed":
        kind = "unsubscribe"
    else:
        return []
    headers = (data.get("message") or {}).get("headers") or {}
    variables = data.get("user-variables") or {}
    return [
        Event(
            kind,
            str(data.get("recipient", "")),
            raw_json(data),
            event_id=str(data.get("id", "")),
            provider_id=str(headers.get("message-id", "")),
            digest_key=str(variables.get("digest-key", "")),
            status=str(delivery.get("enhanced-code", "") or code or ""),
            diagnostic=f"{name} {reason}: {code or ''} {message}".strip()[:300],
        )
    ]


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
