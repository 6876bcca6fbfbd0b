"""Postmark: bounce, spam complaint and subscription change webhooks.

Postmark authenticates a webhook with HTTP basic-auth credentials written
into the webhook URL (``https://USER:PASSWORD@host/webhooks/postmark``), so
the request carries no timestamp or signature: the credentials are checked,
and a repeated event (same ``ID``) changes nothing the second time.

Bounce ``Type`` values (Postmark's bounce types) map to the policy:
HardBounce, BadEmailAddress, ManuallyDeactivated are hard; SoftBounce,
Transient, DnsError, Blocked, DMARCPolicy, Unknown are soft; SpamComplaint
is a complaint; Unsubscribe is an unsubscribe; AutoResponder and the other
notices are ignored. ``RecordType: SubscriptionChange`` with
``SuppressSending`` for ``ManualSuppression`` is an unsubscribe made at
Postmark.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any

from digest.config import Config
from digest.send.intake.webhooks.common import Event, Refused, header, load_json, raw_json

HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked", "DMARCPolicy", "Unknown"}


def secrets(config: Config) -> tuple[str, str]:
    hook = config.webhooks.postmark
    return (
        config.secret(hook.username_env, "the Postmark webhook user name"),
        config.secret(hook.password_env, "the Postmark webhook password"),
    )


def verify(config: Config, headers: Mapping[str, str], body: bytes, now: float) -> str:
    user, password = secrets(config)
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    if not hmac.compare_digest(header(headers, "Authorization").encode(), expected.encode()):
        raise Refused(401, "postmark: wrong or missing basic-auth credentials")
    return ""  # no nonce: Postmark's retries repeat the request; events are idempotent


def events(body: bytes) -> list[Event]:
    data = load_json(body, "postmark")
    items = data if isinstance(data, list) else [data]
    return [event for item in items if isinstance(item, dict) for event in _one(item)]


def _one(item: dict[str, Any]) -> list[Event]:
    record = str(item.get("RecordType", ""))
    ident = str(item.get("ID", "")) or str(item.get("MessageID", ""))

    def event(kind: str, address: object, diagnostic: str, status: str = "") -> list[Event]:
        return [
            Event(
                kind,
                str(address or ""),
                raw_json(item),
                event_id=f"{record}:{ident}",
                provider_id=str(item.get("MessageID", "")),
                status=status,
                diagnostic=diagnostic[:300],
            )
        ]

    if record == "SubscriptionChange":
        manual = (
            item.get("SuppressSending") and item.get("SuppressionReason") == "ManualSuppression"
        )
        kind = "unsubscribe" if manual else "ignored"
        return event(kind, item.get("Recipient"), "unsubscribed at Postmark")
    if record == "SpamComplaint":
        return event("complaint", item.get("Email"), "spam complaint")
    if record != "Bounce":
        return []
    name = str(item.get("Type", ""))
    if name in HARD:
        kind = "hard"
    elif name in SOFT:
        kind = "soft"
    else:
        kind = {"SpamComplaint": "complaint", "Unsubscribe": "unsubscribe"}.get(name, "ignored")
    details = str(item.get("Details", "") or item.get("Description", ""))
    return event(kind, item.get("Email"), f"{name}: {details}", status=name)
