"""Resend: webhooks signed the Svix way.

Headers ``svix-id``, ``svix-timestamp`` and ``svix-signature`` (space-separated
``v1,<base64>`` values); the signed content is ``id.timestamp.body`` and the
key is the base64 part of the ``whsec_...`` signing secret. A request is
refused when no listed signature matches, when the timestamp is outside the
tolerance, or when the same signature comes again. Events: ``email.bounced``
(``data.bounce.type`` Permanent is hard, Transient soft), ``email.complained``;
others are ignored. ``data.email_id`` is the id the send recorded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any

from digest.config import Config
from digest.errors import ConfigError
from digest.send.intake.webhooks.common import Event, Refused, fresh, header, load_json, raw_json


def secrets(config: Config) -> bytes:
    env = config.webhooks.resend.secret_env
    text = config.secret(env, "the Resend webhook signing secret")
    try:
        return base64.b64decode(text.strip().removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error):
        raise ConfigError(
            f"the environment variable {env} does not hold a Resend signing secret (whsec_...)"
        ) from None


def verify(config: Config, headers: Mapping[str, str], body: bytes, now: float) -> str:
    key = secrets(config)
    ident, timestamp = header(headers, "svix-id"), header(headers, "svix-timestamp")
    signatures = header(headers, "svix-signature")
    if not ident or not timestamp or not signatures:
        raise Refused(401, "resend: the request is not signed")
    content = f"{ident}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    given = [part.partition(",")[2] for part in signatures.split() if part.startswith("v1,")]
    match = next((g for g in given if hmac.compare_digest(g, expected)), None)
    if match is None:
        raise Refused(401, "resend: the signature does not match")
    fresh(timestamp, now, config.webhooks.tolerance_seconds, "resend")
    return match


def events(body: bytes) -> list[Event]:
    item: dict[str, Any] = load_json(body, "resend")
    name = str(item.get("type", ""))
    data = item.get("data") or {}
    if name == "email.bounced":
        bounce = data.get("bounce") or {}
        kind = "hard" if str(bounce.get("type", "")).lower() == "permanent" else "soft"
        diagnostic = (
            f"{bounce.get('type', '')} {bounce.get('subType', '')}: {bounce.get('message', '')}"
        )
        status = str(bounce.get("subType", ""))
    elif name == "email.complained":
        kind, diagnostic, status = "complaint", "spam complaint", ""
    else:
        return []
    to = data.get("to") or []
    listed = [to] if isinstance(to, str) else [str(t) for t in to]
    recipients = [parseaddr(t)[1] or t for t in listed]
    return [
        Event(
            kind,
            address,
            raw_json(item),
            event_id=f"{name}:{data.get('email_id', '')}:{address}",
            provider_id=str(data.get("email_id", "")),
            status=status[:16],
            diagnostic=diagnostic.strip()[:300],
        )
        for address in recipients
    ]
