"""Buttondown's subscriber export (Subscribers → Export).

``id,secondary_id,email,notes,subscriber_type,referrer_url,utm_source,``
``utm_medium,utm_campaign,creation_date,ip_address,subscription_date,``
``unsubscription_date,tags,metadata``; times as Python prints them
(``2024-03-13 00:03:09.183465+00:00``), ``metadata`` as a Python dict.

=====================================================  ========================
regular, premium, gifted, trialed, churning, churned,  active (consent time:
past_due, paused, upcoming                             ``subscription_date``)
unactivated (never confirmed), unpaid (no free         pending
subscription and not paying)
unsubscribed                                           suppressed (unsubscribed)
undeliverable                                          suppressed (bounced)
complained                                             suppressed (complained)
removed (banned), blocked (Buttondown's signup         suppressed (blocked)
filter)
=====================================================  ========================

``ip_address`` is the opt-in IP; ``creation_date`` (when the record was made)
is not a consent time. The name is ``metadata``'s ``name``; the rest of
``metadata``, ``notes`` and ``tags`` are kept as attributes, the referrer and
UTM fields as evidence of where the reader signed up.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from digest.errors import SubscriberError
from digest.people.imports.source import ACTIVE, PENDING, Row, address, ip, moment, row_hash
from digest.people.imports.tabular import Columns, Export, Part, Reader, soft

TYPES = {
    **dict.fromkeys(
        (
            "regular",
            "premium",
            "gifted",
            "trialed",
            "churning",
            "churned",
            "past_due",
            "paused",
            "upcoming",
        ),
        ACTIVE,
    ),
    "unactivated": PENDING,
    "unpaid": PENDING,
    "unsubscribed": "unsubscribed",
    "undeliverable": "bounced",
    "complained": "complained",
    "removed": "blocked",
    "blocked": "blocked",
}
REASONS = {
    "unsubscribed": "unsubscribed at Buttondown",
    "undeliverable": "undeliverable at Buttondown (the address does not exist)",
    "complained": "complained at Buttondown",
    "removed": "removed (banned) at Buttondown",
    "blocked": "blocked by Buttondown's signup filter",
}


def metadata_of(cell: str) -> dict[str, Any]:
    """The ``metadata`` cell (a Python dict, as Buttondown prints it; JSON is fine too)."""
    text = cell.strip()
    if not text or text == "{}":
        return {}
    try:
        value = ast.literal_eval(text)  # literals only: nothing in the cell is run
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise SubscriberError(f"metadata {text[:40]!r} is not a dict") from None
    if not isinstance(value, dict):
        raise SubscriberError(f"metadata {text[:40]!r} is not a dict")
    return {
        str(k): v if isinstance(v, str | int | float | bool) else str(v) for k, v in value.items()
    }


class ButtondownExport(Export):
    tool = "buttondown"
    title = "Buttondown"
    signature = (("email",), ("subscriber_type",), ("subscription_date",))
    evidence_names = (
        "listed_as",
        "optin_ip",
        "opted_out_at",
        "reason",
        "referrer_url",
        "row_sha256",
        "source_id",
        "utm_campaign",
        "utm_medium",
        "utm_source",
    )

    def prepare(self) -> None:
        self.attribute_names = ("notes", "tags")

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        columns = Columns(part.file.header)
        at = columns.at
        ident, email, kind = at("id"), at("email"), at("subscriber_type")
        subscribed, left, address_ip = (
            at("subscription_date"),
            at("unsubscription_date"),
            at("ip_address"),
        )
        referrer, source, medium, campaign = (
            at("referrer_url"),
            at("utm_source"),
            at("utm_medium"),
            at("utm_campaign"),
        )
        notes_at, tags, meta = at("notes"), at("tags"), at("metadata")
        name = part.name
        make = Row._make
        notes = self.notes

        def listed(cells: list[str]) -> str:
            return cells[kind].strip().lower()

        def read(cells: list[str], line: int, text: str) -> Row:
            shown = cells[kind].strip().lower()
            status = TYPES.get(shown)
            if status is None:
                raise SubscriberError(
                    f"subscriber_type {shown[:40]!r} is not one of Buttondown's "
                    f"({', '.join(TYPES)})"
                )
            found = address(cells[email])
            opted_out = status not in (ACTIVE, PENDING)

            def keep(what: str, read: Callable[[], Any]) -> Any:
                return soft(notes, line, name, what, read) if opted_out else read()

            extra = keep("kept without it", lambda: metadata_of(cells[meta])) or {}
            given = str(extra.pop("name", "") or "").strip()
            consented = keep(
                "kept without it", lambda: moment(cells[subscribed], latest, "subscription_date")
            )
            first_ip = keep("kept without it", lambda: ip(cells[address_ip], found, "ip_address"))
            when = ""
            if opted_out:
                when = soft(
                    notes,
                    line,
                    name,
                    "suppressed all the same, as of the import",
                    lambda: moment(cells[left], latest, "unsubscription_date"),
                )
            elif status == ACTIVE and not consented:
                status = PENDING
            return make(
                (
                    line,
                    found,
                    given,
                    status,
                    consented,
                    "",
                    (
                        shown,
                        first_ip,
                        when,
                        REASONS.get(shown, ""),
                        cells[referrer].strip(),
                        row_hash(text),
                        cells[ident].strip(),
                        cells[campaign].strip(),
                        cells[medium].strip(),
                        cells[source].strip(),
                    ),
                    (cells[notes_at].strip(), cells[tags].strip()),
                    shown,
                    when,
                    name,
                    extra or None,
                )
            )

        return read, listed
