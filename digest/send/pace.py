"""A token bucket shared by every connection of a send.

``rate`` caps messages per second across all connections (0: no cap).
``hold(seconds)`` is how a throttling reply (429, a 421 "slow down") slows the
whole send, not just the worker that saw it: every ``take`` waits until the
hold is over, and a capped rate is halved, then creeps back up as messages
are accepted.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float = 0.0, *, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.current = float(rate)
        self.capacity = max(1.0, burst if burst is not None else self.rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.not_before = 0.0
        self._lock = asyncio.Lock()

    async def take(self, n: int = 1) -> None:
        """Wait until ``n`` messages may go."""
        async with self._lock:
            now = time.monotonic()
            wait = max(0.0, self.not_before - now)
            if self.current > 0:
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.current)
                self.stamp = now
                self.tokens -= n
                if self.tokens < 0:
                    wait = max(wait, -self.tokens / self.current)
            if wait > 0:
                await asyncio.sleep(wait)

    def hold(self, seconds: float) -> None:
        """Nobody sends for ``seconds``; a capped rate is halved."""
        self.not_before = max(self.not_before, time.monotonic() + max(0.0, seconds))
        if self.rate > 0:
            self.current = max(self.rate / 16, self.current / 2)

    def recovered(self, n: int = 1) -> None:
        """Accepted messages bring a halved rate back toward the configured one."""
        if 0 < self.current < self.rate:
            self.current = min(self.rate, self.current * (1 + 0.01 * n))
