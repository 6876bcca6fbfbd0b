"""Loaded only for CI's run under a shifted clock (libfaketime).

Debian 12's libfaketime 0.9.10 rejects clock_nanosleep with EINVAL when the
monotonic clock is left real, so time.sleep() raises; sleep in select() instead.
"""

import errno
import select
import time

_sleep = time.sleep


def _sleep_in_select(seconds: float) -> None:
    try:
        _sleep(seconds)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        select.select([], [], [], seconds)


time.sleep = _sleep_in_select
