"""The one clock of digest.

Everything that asks what time it is asks :func:`now`, so ``--now`` and
``DIGEST_NOW`` can rehearse a send or a schedule at any moment.

A rehearsal's clock runs forward from the instant it was given, on the real
monotonic clock: a retry "in 30 seconds" comes 30 seconds later, a log line
carries the rehearsed time, and nothing waits for a moment that never comes.
Tests may also freeze it at one instant (``set_now(t)``) to check exact times.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta, tzinfo

from digest.errors import ConfigError

# The pinned instant and the monotonic reading it was pinned at (None: frozen).
_override: tuple[datetime, float | None] | None = None
# DIGEST_NOW without --now: the text and the monotonic reading at its first use.
_from_env: tuple[str, float] | None = None


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant; a naive one is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"not an ISO-8601 time: {text!r} (write e.g. 2026-12-04T07:00:00+01:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_now(value: datetime | None, *, running: bool = False) -> None:
    """Pin the clock at ``value``; ``running`` lets it run forward from there (``--now``).

    ``None`` returns to the real clock.
    """
    global _override
    _override = None if value is None else (value, time.monotonic() if running else None)


def _since(instant: datetime, started: float | None) -> datetime:
    if started is not None:
        instant += timedelta(seconds=time.monotonic() - started)
    return instant.astimezone(UTC)


def _env_clock() -> datetime | None:
    global _from_env
    text = os.environ.get("DIGEST_NOW")
    if not text:
        return None
    if _from_env is None or _from_env[0] != text:
        _from_env = (text, time.monotonic())
    return _since(parse_instant(text), _from_env[1])


def now() -> datetime:
    """The current time, aware, in UTC."""
    if _override is not None:
        return _since(*_override)
    return _env_clock() or datetime.now(UTC)


def pinned() -> datetime | None:
    """The rehearsed time (``--now`` / ``DIGEST_NOW``), or None when the clock is real."""
    if _override is not None:
        return _since(*_override)
    return _env_clock()


class LogFormatter(logging.Formatter):
    """Log lines stamped by this clock (a rehearsal's time under ``--now``), in ``zone``.

    logging's own ``asctime`` reads the wall clock, which would put the real date
    beside a rehearsed slot.
    """

    def __init__(self, fmt: str, zone: tzinfo = UTC) -> None:
        super().__init__(fmt)
        self.zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = now().astimezone(self.zone)
        return stamp.strftime(datefmt or "%Y-%m-%d %H:%M:%S %Z")
