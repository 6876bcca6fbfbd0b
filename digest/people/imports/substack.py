"""Substack's email list: ``email_list.<publication>.csv`` from Settings → Exports.

The export's zip (with ``posts.csv`` beside it) is read as well: its email list
is found inside. Substack exports no names and no IP addresses.

======================================  ======================================
``email_disabled=false``                active (consent time: ``created_at``)
``email_disabled=true``                 suppressed: email turned off by the
                                        reader, or by Substack after bounces
``…@deletion-request.substack.com``     skipped: Substack's placeholder for an
                                        erased account, not a person
======================================  ======================================

``plan`` (``other`` for free readers, ``monthly``/``yearly`` for paid ones) is
kept as an attribute; a row without ``created_at`` is imported as pending.
"""

from __future__ import annotations

from collections.abc import Callable

from digest.people.imports.source import ACTIVE, PENDING, Row, Skipped, address, moment, row_hash
from digest.people.imports.tabular import Columns, Export, Part, Reader, flag, soft

PLACEHOLDER = "@deletion-request.substack.com"


class SubstackExport(Export):
    tool = "substack"
    title = "Substack"
    signature = (("email",), ("email_disabled",), ("created_at",))
    evidence_names = ("listed_as", "reason", "row_sha256")

    def prepare(self) -> None:
        self.attribute_names = ("plan",)

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        columns = Columns(part.file.header)
        email, disabled = columns.at("email"), columns.at("email_disabled")
        created = columns.at("created_at")
        plan = columns.at("plan")
        name = part.name
        make = Row._make
        notes = self.notes

        def listed(cells: list[str]) -> str:
            return f"email_disabled={cells[disabled].strip().lower() or 'false'}"

        def read(cells: list[str], line: int, text: str) -> Row | Skipped:
            raw = cells[email].strip()
            off = flag(cells[disabled], "email_disabled")
            shown = f"email_disabled={'true' if off else 'false'}"
            if raw.lower().endswith(PLACEHOLDER):
                return Skipped(
                    line, "Substack's placeholder for an erased account: not imported", shown, name
                )
            found = address(raw)
            if off:
                consented = soft(
                    notes,
                    line,
                    name,
                    "suppressed all the same",
                    lambda: moment(cells[created], latest, "created_at"),
                )
                reason = "email disabled at Substack (by the reader, or after bounces)"
                return make(
                    (
                        line,
                        found,
                        "",
                        "unsubscribed",
                        consented,
                        "",
                        (shown, reason, row_hash(text)),
                        (cells[plan].strip(),),
                        shown,
                        "",
                        name,
                        None,
                    )
                )
            consented = moment(cells[created], latest, "created_at")
            return make(
                (
                    line,
                    found,
                    "",
                    ACTIVE if consented else PENDING,
                    consented,
                    "",
                    (shown, "", row_hash(text)),
                    (cells[plan].strip(),),
                    shown,
                    "",
                    name,
                    None,
                )
            )

        return read, listed
