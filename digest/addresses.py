"""Email addresses: the one normalising rule and the one masking rule of digest.

A leaf of the base layer, so the senders, the subscriber records and the web
pages all check and mask addresses the same way without loading each other.

Addresses are checked and normalised by email-validator (no DNS lookups;
internationalised addresses allowed). What logs, lists and stored failure
reasons show instead of an address is its mask, ``a***@example.com``.
"""

from __future__ import annotations

import functools
import re

from digest.errors import SubscriberError


def mask(address: str | None) -> str:
    """``a***@example.com``: what logs and lists show instead of an address."""
    if not address:
        return "(erased)"
    local, at, domain = address.rpartition("@")
    if not at:
        return address[:1] + "***"
    return f"{local[:1]}***@{domain}"


_ADDRESS = re.compile(r"[^\s<>()\[\]:;,\"']+@[A-Za-z0-9.-]+")


def mask_all(text: str) -> str:
    """``text`` with every address in it masked.

    Servers often quote the recipient ("550 <bob@example.com>: no such user");
    the deliveries ledger and ``digest deliveries`` must not list people by
    address, and failures then group by reason.
    """
    return _ADDRESS.sub(lambda m: mask(m.group(0)), text) if "@" in text else text


# Local parts of plain ASCII "atext" atoms: email-validator accepts these
# unchanged, so only their domain needs its (cached) check. Anything else
# takes the full validation.
_SIMPLE_LOCAL = re.compile(r"[A-Za-z0-9_%+=-]+(?:\.[A-Za-z0-9_%+=-]+)*")


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    from email_validator import validate_email  # deferred: only a new address needs it

    return validate_email(f"x@{domain}", check_deliverability=False).domain


def normalise(address: str) -> str:
    """The normalised form of an address, or :class:`SubscriberError` saying why not."""
    from email_validator import EmailNotValidError, validate_email  # deferred, as above

    text = address.strip()
    local, at, domain = text.rpartition("@")
    try:
        if at and len(local) <= 64 and len(text) <= 254 and _SIMPLE_LOCAL.fullmatch(local):
            return f"{local}@{_domain(domain)}"
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SubscriberError(f"{mask(text)!s} is not a valid email address: {exc}") from None
