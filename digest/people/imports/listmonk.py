"""listmonk's subscriber export (Subscribers → Export), as ``ExportSubscribers`` writes it.

``uuid,email,name,attributes,status,created_at,updated_at``; ``attributes``
is the subscriber's JSON object (kept as attributes), times are Go's
``time.Time.String()`` (``2024-01-15 09:12:44.531902 +0000 UTC``; Go's zero
time, ``0001-01-01 00:00:00 +0000 UTC``, is a missing one).

=============  ===============================================================
enabled        active (consent time: ``created_at``); pending without one
disabled       suppressed (blocked): switched off by an administrator
blocklisted    suppressed (blocked): never mailed by listmonk (bounces,
               complaints, or the reader's own choice when unsubscribing)
=============  ===============================================================

The export holds neither the per-list subscription status nor the opt-in IP.
A file written by ``digest subscribers export --format listmonk`` carries
them in the attributes, under ``consent``: they are read back as evidence
(and a bounce or complaint behind a ``blocklisted``, as such).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from digest.errors import SubscriberError
from digest.people.imports.source import (
    ACTIVE,
    PENDING,
    Row,
    address,
    attributes,
    instant,
    ip,
    moment,
    row_hash,
)
from digest.people.imports.tabular import Columns, Export, Part, Reader, soft
from digest.store import stamp

STATUSES = {"enabled": ACTIVE, "disabled": "blocked", "blocklisted": "blocked"}
REASONS = {
    "disabled": "disabled by an administrator in listmonk",
    "blocklisted": "blocklisted in listmonk",
}
ZERO = "0001-01-01 00:00:00"
_GO_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? ([+-]\d\d)(\d\d)(?: \S+)?")


def go_time(text: str) -> str:
    """Go's ``time.Time.String()`` (or an ISO-8601 time) as a stored stamp; "" for Go's zero
    time, which is how a missing time prints."""
    if text.startswith(ZERO):
        return ""
    found = _GO_TIME.fullmatch(text)
    if found is None:
        return instant(text)
    day, clock_time, fraction, hours, minutes = found.groups()
    when = datetime.fromisoformat(
        f"{day}T{clock_time}{(fraction or '')[:7]}{hours}:{minutes}"
    ).astimezone(UTC)
    return stamp(when)


class ListmonkExport(Export):
    tool = "listmonk"
    title = "listmonk"
    signature = (("uuid",), ("email",), ("attributes",), ("status",), ("created_at",))
    evidence_names = (
        "confirm_ip",
        "confirmed_at",
        "listed_as",
        "optin_ip",
        "opted_out_at",
        "reason",
        "row_sha256",
        "source_id",
    )

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        columns = Columns(part.file.header)
        at = columns.at
        uuid, email, name_at, attrs, state = (
            at("uuid"),
            at("email"),
            at("name"),
            at("attributes"),
            at("status"),
        )
        created, updated = at("created_at"), at("updated_at")
        name = part.name
        make = Row._make
        notes = self.notes

        def listed(cells: list[str]) -> str:
            return cells[state].strip().lower()

        def when(cell: str, column: str) -> str:
            return moment(cell, latest, column, go_time)

        def read(cells: list[str], line: int, text: str) -> Row:
            shown = cells[state].strip().lower()
            status = STATUSES.get(shown)
            if status is None:
                raise SubscriberError(
                    f"status {shown[:40]!r} is not one of listmonk's ({', '.join(STATUSES)})"
                )
            found = address(cells[email])
            opted_out = status != ACTIVE

            def keep(what: str, read: Callable[[], Any]) -> Any:
                return soft(notes, line, name, what, read) if opted_out else read()

            extra = keep("kept without them", lambda: attributes(cells[attrs])) or {}
            proof = extra.pop("consent", None) if isinstance(extra.get("consent"), dict) else None
            consented = keep("kept without it", lambda: when(cells[created], "created_at"))
            first_ip = confirmed = second_ip = ""
            if proof is not None:  # written by digest: the evidence it held
                consented = keep(
                    "kept without it",
                    lambda: when(str(proof.get("consented_at") or ""), "consent.consented_at"),
                )
                confirmed = keep(
                    "kept without it",
                    lambda: when(str(proof.get("confirmed_at") or ""), "consent.confirmed_at"),
                )
                first_ip = keep("kept without it", lambda: ip(str(proof.get("ip") or ""), found))
                second_ip = keep(
                    "kept without it",
                    lambda: ip(str(proof.get("confirm_ip") or ""), found, "confirm_ip"),
                )
            if proof is not None and opted_out and proof.get("status") in ("bounced", "complained"):
                status = str(proof["status"])  # what digest knew, beyond listmonk's "blocklisted"
            left = ""
            if opted_out:
                left = soft(
                    notes,
                    line,
                    name,
                    "suppressed all the same, as of the import",
                    lambda: when(cells[updated], "updated_at"),
                )
            elif not consented:
                status = PENDING
            return make(
                (
                    line,
                    found,
                    cells[name_at].strip(),
                    status,
                    consented,
                    "",
                    (
                        second_ip,
                        confirmed,
                        shown,
                        first_ip,
                        left,
                        REASONS.get(shown, ""),
                        row_hash(text),
                        cells[uuid].strip(),
                    ),
                    (),
                    shown,
                    left,
                    name,
                    extra or None,
                )
            )

        return read, listed
