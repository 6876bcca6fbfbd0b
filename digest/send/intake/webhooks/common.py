"""What every provider's webhook module shares: the event, the refusal, the checks."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from digest.errors import DigestError

MAX_BODY = 1024 * 1024  # providers batch events; a megabyte is far more than one batch


class Refused(DigestError):
    """The request is not the provider's (401), or is stale or replayed (403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Event:
    """One event of a provider's request, as the policy needs it."""

    kind: str  # hard | soft | complaint | unsubscribe | ignored
    address: str
    raw: bytes  # the event's own JSON, for its digest
    event_id: str = ""
    provider_id: str = ""  # the provider's message id, as the send recorded it
    digest_key: str = ""  # digest-ISSUE-SUBSCRIBER, when the provider echoes it
    message_id: str = ""  # the Message-ID header digest gave the message, when echoed
    status: str = ""
    diagnostic: str = ""


MAX_DEPTH = 32  # no provider's event nests deeper than a few levels


def load_json(body: bytes, provider: str) -> Any:
    """The JSON of a request body; anything else, or nested deeper than any event, is
    refused (400) before the parser recurses into it."""
    depth = 0
    for byte in body:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                raise Refused(400, f"{provider}: the request body is not an event")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, f"{provider}: the request body is not JSON") from None


def header(headers: Mapping[str, str], name: str) -> str:
    return str(headers.get(name) or headers.get(name.lower()) or "")


def raw_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def fresh(timestamp: str, now: float, tolerance: int, provider: str) -> None:
    """Refuse a request whose signed timestamp is not within ``tolerance`` seconds of now."""
    try:
        when = float(timestamp)
    except ValueError:
        when = math.nan
    if not math.isfinite(when):
        raise Refused(401, f"{provider}: the request has no valid timestamp")
    if abs(now - when) > tolerance:
        raise Refused(403, f"{provider}: the request is {int(abs(now - when))}s old (stale)")
