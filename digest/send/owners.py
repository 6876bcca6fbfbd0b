"""Who holds a claim, and whether that process still lives: one scheme for the whole send.

A claim on deliveries rows or on a scheduled send names its owner as
``host:pid:random``. A lease that has not expired is respected unless its
owner is a process of this host that is gone; a process of another host is
never judged (its lease runs out instead).
"""

from __future__ import annotations

import os
import socket
import uuid


def new_owner() -> str:
    """``host:pid:random``: the owner name of a claim made by this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool | None:
    """False when ``owner`` is a process of this host that is gone; None when unknowable.

    Also reads the older ``host:pid`` form.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
