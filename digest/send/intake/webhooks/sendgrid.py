"""SendGrid: the signed Event Webhook.

SendGrid signs each request with ECDSA (P-256, SHA-256) over the timestamp
header followed by the raw body; the base64 signature is in
``X-Twilio-Email-Event-Webhook-Signature``, the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``, and the verification key SendGrid
shows is a base64 DER public key. The body is a JSON array of events:
``bounce`` (``type`` bounce is hard, blocked is soft; ``status`` holds the
enhanced code), ``dropped`` for a suppressed or invalid address (hard),
``spamreport`` (complaint), ``unsubscribe`` and ``group_unsubscribe``; the
others (delivered, deferred, processed, open, click) are ignored. digest's
``custom_args`` come back on each event as ``digest_key``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from digest import bounces
from digest.config import Config
from digest.errors import ConfigError
from digest.send.intake.webhooks.common import (
    Event,
    Refused,
    fresh,
    header,
    load_json,
    raw_json,
)

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
# Reasons of a "dropped" event that mean the address itself is refused.
_DROPPED_HARD = ("bounced address", "invalid", "unsubscribed address", "spam reporting address")


def secrets(config: Config) -> ec.EllipticCurvePublicKey:
    env = config.webhooks.sendgrid.public_key_env
    text = config.secret(env, "the SendGrid webhook verification key")
    try:
        key = load_der_public_key(base64.b64decode(text.strip()))
    except (ValueError, binascii.Error):
        raise ConfigError(
            f"the environment variable {env} does not hold a SendGrid verification key "
            "(base64 of a public key, as SendGrid's Mail Settings show it)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"the key in {env} is not an elliptic-curve (ECDSA) public key")
    return key


def verify(config: Config, headers: Mapping[str, str], body: bytes, now: float) -> str:
    key = secrets(config)
    signature, timestamp = header(headers, SIGNATURE), header(headers, TIMESTAMP)
    if not signature or not timestamp:
        raise Refused(401, "sendgrid: the request is not signed")
    try:
        key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, binascii.Error):
        raise Refused(401, "sendgrid: the signature does not match") from None
    fresh(timestamp, now, config.webhooks.tolerance_seconds, "sendgrid")
    # The replay guard keys on what was signed, not on the signature's text: base64 read
    # leniently and ECDSA's malleability let one request carry many valid signatures.
    return hashlib.sha256(timestamp.encode() + b"\0" + body).hexdigest()


def events(body: bytes) -> list[Event]:
    data = load_json(body, "sendgrid")
    return [event for item in data if isinstance(item, dict) for event in _one(item)]


def _one(item: dict[str, Any]) -> list[Event]:
    name = str(item.get("event", ""))
    reason = str(item.get("reason", "") or item.get("response", ""))
    status = str(item.get("status", ""))
    if name == "bounce":
        found = bounces.classify(status, None, reason)
        kind = "soft" if item.get("type") == "blocked" else found.kind
    elif name == "dropped":
        kind = "hard" if reason.lower().startswith(_DROPPED_HARD) else "ignored"
    elif name == "spamreport":
        kind = "complaint"
    elif name in ("unsubscribe", "group_unsubscribe"):
        kind = "unsubscribe"
    else:
        return []  # delivered, deferred, processed, open, click: nothing for the policy
    message = str(item.get("sg_message_id", ""))
    return [
        Event(
            kind,
            str(item.get("email", "")),
            raw_json(item),
            event_id=str(item.get("sg_event_id", "")),
            provider_id=message,
            digest_key=str(item.get("digest_key", "")),
            status=status,
            diagnostic=f"{name}: {reason}"[:300],
        )
    ]
