"""The one way a long command stops: SIGINT or SIGTERM sets an event the work checks."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(notice: Callable[[int], None]) -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set the event; ``notice(signum)`` tells the user, once.

    The work stops claiming new messages and lets those in flight finish; the
    previous handlers are back when the block ends.
    """
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            return
        stop.set()
        notice(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
