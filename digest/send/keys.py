"""Idempotency keys: the same message, or the same batch, always carries the same key.

An HTTP mail API that honours an ``Idempotency-Key`` then refuses to deliver
a message twice when a send is resumed after a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.send.sender import OutgoingMessage


def idempotency_key(issue: str, subscriber_id: object) -> str:
    """One key per (issue, subscriber): the same message always carries the same key."""
    return f"digest-{issue}-{subscriber_id}"


def batch_key(messages: Sequence[OutgoingMessage]) -> str:
    """A key for a whole batch: the same messages in the same order give the same key."""
    digest = hashlib.sha256("\n".join(m.key for m in messages).encode("utf-8")).hexdigest()
    return f"digest-batch-{digest[:40]}"
