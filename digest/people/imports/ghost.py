"""Ghost's member export (Members → Export): ``members.<date>.csv``.

``id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,``
``created_at,deleted_at,labels,tiers``, written by papaparse (CRLF, no line
break after the last row).

============================  ================================================
``subscribed_to_emails=true``   active (consent time: ``created_at``)
``subscribed_to_emails=false``  suppressed: a member who gets no newsletter
                                (unsubscribed, or never opted in)
============================  ================================================

``note``, ``labels`` and ``tiers`` are kept as attributes; the member's Ghost
id as evidence. Older exports call the column ``subscribed``.
"""

from __future__ import annotations

from collections.abc import Callable

from digest.people.imports.source import ACTIVE, PENDING, Row, address, moment, row_hash
from digest.people.imports.tabular import Columns, Export, Part, Reader, flag, soft

SUBSCRIBED = ("subscribed_to_emails", "subscribed")


class GhostExport(Export):
    tool = "ghost"
    title = "Ghost"
    signature = (("id",), ("email",), SUBSCRIBED, ("created_at",))
    evidence_names = ("listed_as", "reason", "row_sha256", "source_id")

    def prepare(self) -> None:
        self.attribute_names = ("labels", "note", "tiers")

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        columns = Columns(part.file.header)
        at = columns.at
        ident, email, name_at, subscribed = at("id"), at("email"), at("name"), at(*SUBSCRIBED)
        created = at("created_at")
        kept = (at("labels"), at("note"), at("tiers"))
        column = columns.header[subscribed] if subscribed < columns.pad else SUBSCRIBED[0]
        name = part.name
        make = Row._make
        notes = self.notes

        def listed(cells: list[str]) -> str:
            return f"{column}={cells[subscribed].strip().lower()}"

        def read(cells: list[str], line: int, text: str) -> Row:
            on = flag(cells[subscribed], column)
            found = address(cells[email])
            shown = f"{column}={'true' if on else 'false'}"
            attributes = tuple([cells[i].strip() for i in kept])
            if on:
                consented = moment(cells[created], latest, "created_at")
                status, reason = (ACTIVE if consented else PENDING), ""
            else:
                consented = soft(
                    notes,
                    line,
                    name,
                    "suppressed all the same",
                    lambda: moment(cells[created], latest, "created_at"),
                )
                status, reason = "unsubscribed", "gets no newsletter at Ghost"
            return make(
                (
                    line,
                    found,
                    cells[name_at].strip(),
                    status,
                    consented,
                    "",
                    (shown, reason, row_hash(text), cells[ident].strip()),
                    attributes,
                    shown,
                    "",
                    name,
                    None,
                )
            )

        return read, listed
