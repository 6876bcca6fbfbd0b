"""Kit's (ConvertKit's) subscriber export: Subscribers → select → Bulk actions → Export.

Kit documents no header for this file; it is read by the names of Kit's
subscriber object, in the spellings real exports use: ``first_name`` (or
``First Name``), ``email_address`` (or ``email``, ``Email Address``),
``state`` (or ``status``), ``created_at``; any other column (custom fields,
``tags``) is kept as an attribute.

===========  =================================================================
active       active (consent time: ``created_at``); Kit's "cold" readers too
inactive     pending: the double opt-in was never completed
cancelled    suppressed (unsubscribed)
bounced      suppressed (bounced)
complained   suppressed (complained)
===========  =================================================================
"""

from __future__ import annotations

from collections.abc import Callable

from digest.errors import SubscriberError
from digest.people.imports.source import ACTIVE, PENDING, Row, address, moment, row_hash
from digest.people.imports.tabular import Columns, Export, Part, Reader, soft

STATES = {
    "active": ACTIVE,
    "inactive": PENDING,
    "cancelled": "unsubscribed",
    "bounced": "bounced",
    "complained": "complained",
}
REASONS = {
    "cancelled": "cancelled (unsubscribed) at Kit",
    "bounced": "bounced at Kit",
    "complained": "complained at Kit",
}
EMAIL = ("email_address", "email")
STATE = ("state", "status")
_OWN = {*EMAIL, *STATE, "first_name", "last_name", "created_at"}


class KitExport(Export):
    tool = "kit"
    title = "Kit"
    signature = (EMAIL, STATE, ("created_at",))
    marks = ("state", "email_address", "first_name")  # "email,status,created_at" is not enough
    evidence_names = ("listed_as", "reason", "row_sha256")

    def _kept(self, columns: Columns) -> dict[str, int]:
        return {
            columns.header[i]: i
            for i, name in enumerate(columns.names)
            if name and name not in _OWN
        }

    def prepare(self) -> None:
        names: set[str] = set()
        for part in self.parts:
            names.update(self._kept(Columns(part.file.header)))
        self.attribute_names = tuple(sorted(names))

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        columns = Columns(part.file.header)
        at = columns.at
        email, state, first, last, created = (
            at(*EMAIL),
            at(*STATE),
            at("first_name"),
            at("last_name"),
            at("created_at"),
        )
        kept_at = self._kept(columns)
        kept = tuple(kept_at.get(n, columns.pad) for n in self.attribute_names)
        name = part.name
        make = Row._make
        notes = self.notes

        def listed(cells: list[str]) -> str:
            return cells[state].strip().lower()

        def read(cells: list[str], line: int, text: str) -> Row:
            shown = cells[state].strip().lower()
            status = STATES.get(shown)
            if status is None:
                raise SubscriberError(
                    f"state {shown[:40]!r} is not one of Kit's ({', '.join(STATES)})"
                )
            found = address(cells[email])
            if status in (ACTIVE, PENDING):
                consented = moment(cells[created], latest, "created_at")
                if not consented:
                    status = PENDING
            else:
                consented = soft(
                    notes,
                    line,
                    name,
                    "suppressed all the same",
                    lambda: moment(cells[created], latest, "created_at"),
                )
            given, surname = cells[first].strip(), cells[last].strip()
            return make(
                (
                    line,
                    found,
                    f"{given} {surname}" if given and surname else given or surname,
                    status,
                    consented,
                    "",
                    (shown, REASONS.get(shown, ""), row_hash(text)),
                    tuple([cells[i].strip() for i in kept]),
                    shown,
                    "",
                    name,
                    None,
                )
            )

        return read, listed
