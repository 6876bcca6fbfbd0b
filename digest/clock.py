"""The one clock of digest.

Everything that asks what time it is asks :func:`now`, so ``--now`` and
``DIGEST_NOW`` can rehearse a send or a schedule at any moment.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from digest.errors import ConfigError

_override: datetime | None = None


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant; a naive one is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"not an ISO-8601 time: {text!r} (write e.g. 2026-12-04T07:00:00+01:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_now(value: datetime | None) -> None:
    """Pin the clock (``--now``); ``None`` returns to the real one."""
    global _override
    _override = value


def now() -> datetime:
    """The current time, aware, in UTC."""
    if _override is not None:
        return _override.astimezone(UTC)
    env = os.environ.get("DIGEST_NOW")
    if env:
        return parse_instant(env).astimezone(UTC)
    return datetime.now(UTC)


def pinned() -> datetime | None:
    """The pinned time (``--now`` / ``DIGEST_NOW``), or None when the clock is real."""
    if _override is not None:
        return _override.astimezone(UTC)
    env = os.environ.get("DIGEST_NOW")
    return parse_instant(env).astimezone(UTC) if env else None
