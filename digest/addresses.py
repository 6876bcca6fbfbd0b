"""Email addresses: the one normalising, masking and name-cleaning rules of digest.

A leaf of the base layer, so the senders, the subscriber records and the web
pages all check and mask addresses the same way without loading each other.

Addresses are checked and normalised by email-validator (no DNS lookups;
internationalised addresses allowed). What logs, lists and stored failure
reasons show instead of an address is its mask, ``a***@example.com``.

A display name, wherever it comes from (the subscribe form, a CSV import,
the command line), is cleaned by :func:`clean_name` before it is stored and
again before it is written into a message: one line of printable text, so
no name can add a header or break one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

import idna

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
        said = f"is not a valid email address: {exc}"
        raise SubscriberError(f"{mask(text)} {said}", typed=f"{text!r} {said}") from None


NAME_MAX = 200  # characters kept of a display name


def clean_name(name: str | None) -> str:
    """One line of printable text: CR, LF, NUL and every other control or format
    character go, whitespace runs (line and paragraph separators included) become
    one space, the ends are trimmed, and at most ``NAME_MAX`` characters stay."""
    if not name:
        return ""
    if name.isprintable() and name == name.strip() and "  " not in name:
        return name[:NAME_MAX]
    out = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch.isspace() or category in ("Zl", "Zp", "Zs"):
            out.append(" ")
        elif category[0] != "C":
            out.append(ch)
    return " ".join("".join(out).split())[:NAME_MAX]


# -- where an address can go -----------------------------------------------------

_UNSAFE = re.compile(r"[\x00-\x20\x7f<>]")


class Unroutable(ValueError):
    """This server or API cannot take this address (one row's failure, not the send's)."""


def route(address: str, *, utf8: bool, who: str) -> tuple[str, bool]:
    """The address to send to and whether it needs SMTPUTF8 (RFC 6531) on the way.

    ``utf8``: the server (or mail API) ``who`` takes internationalised
    addresses; then an address goes as it is. Otherwise an address whose
    domain alone is non-ASCII goes with its IDNA (punycode) domain, and a
    non-ASCII local part, which has no ASCII form, cannot go at all.
    """
    if _UNSAFE.search(address):
        raise Unroutable("not an address mail can be sent to (a space, control character or <>)")
    if address.isascii():
        return address, False
    if utf8:
        return address, True
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise Unroutable(
            f"{who} does not accept internationalised addresses (no SMTPUTF8) and this "
            "address has no ASCII form"
        )
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise Unroutable(f"the domain has no IDNA form ({exc})") from None
    return f"{local}@{ascii_domain}", False


@functools.cache
def _public_suffixes() -> Any:
    # deferred: publicsuffixlist parses its bundled list (~0.1 s), wanted by check and doctor only
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The domain someone registered, as DMARC's relaxed alignment compares it.

    One label under the longest public suffix that matches, from the Public
    Suffix List bundled with ``publicsuffixlist`` (no network):
    ``news.example.co.uk`` -> ``example.co.uk``, ``mail.example.pvt.k12.ma.us`` ->
    ``example.pvt.k12.ma.us``. A public suffix, or a single label, is its own.
    """
    name = domain.strip().lower().rstrip(".")
    return str(_public_suffixes().privatesuffix(name) or name)
