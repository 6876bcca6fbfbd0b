"""The subscriber list as an operator reads it: one row per subscriber, with consent.

:func:`rows` streams the list with each subscriber's consent date and source
(taken from the consent event that gave the consent, not from when the row
was made: an import made last week may carry consent given in 2023). The
whole list written to a file, for the operator or for another tool, is
:mod:`digest.portability`. :func:`neutralise` keeps spreadsheet formulas out
of a CSV: a cell that begins with ``=``, ``+``, ``-``, ``@`` (or a tab or
carriage return) gets a leading apostrophe, as OWASP advises for CSV
injection, so opening the file cannot run anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import select

from digest.addresses import mask
from digest.people.record import Subscriber, list_subscribers
from digest.store import Store, schema

# The events by which a person gives consent; the latest one is the consent shown.
CONSENT_KINDS = ("confirmed", "imported", "admin_added")
COLUMNS = ("id", "email", "name", "status", "consented_at", "source", "created_at")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PAGE = 1000

events_t = schema.consent_events
evidence_t = schema.consent_evidence
subs_t = schema.subscribers


class Row(NamedTuple):
    """One subscriber with the consent on record; ``email`` is the full address."""

    id: str
    email: str | None
    name: str | None
    status: str
    consented_at: str  # when consent was given (the import file's date for an import)
    source: str  # where: the form's URL, the import file (and its row's source), the operator
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()

    def masked(self) -> Row:
        """The row as lists show it: the address masked."""
        return self._replace(email=mask(self.email))


TABLE = "{:<22}  {:<30}  {:<20}  {:<12}  {:<10}  {}"
TABLE_HEADER = ("ID", "ADDRESS", "NAME", "STATUS", "CONSENTED", "SOURCE")


def table(listed: Iterable[Row]) -> Iterator[str]:
    """The header line, then one line per subscriber (address masked, consent date only)."""
    yield TABLE.format(*TABLE_HEADER).rstrip()
    for row in listed:
        yield TABLE.format(
            row.id,
            _fit(mask(row.email), 30),
            _fit(row.name or "", 20),
            row.status,
            row.consented_at[:10],
            row.source,
        ).rstrip()


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def rows(store: Store, status: str | None = None) -> Iterator[Row]:
    """Every subscriber (or those with ``status``) by id, with consent date and source."""
    page: list[Subscriber] = []
    for sub in list_subscribers(store, status, batch_size=_PAGE):
        page.append(sub)
        if len(page) >= _PAGE:
            yield from _with_consent(store, page)
            page = []
    yield from _with_consent(store, page)


def _with_consent(store: Store, page: Sequence[Subscriber]) -> Iterator[Row]:
    if not page:
        return
    latest: dict[str, tuple[str, str, str, str | None]] = {}
    with store.read() as conn:
        found = conn.execute(
            select(
                events_t.c.subject_id,
                events_t.c.kind,
                events_t.c.occurred_at,
                events_t.c.source,
                evidence_t.c.body,
            )
            .select_from(events_t.outerjoin(evidence_t, evidence_t.c.seq == events_t.c.seq))
            .where(
                events_t.c.subject_id.in_([s.id for s in page]),
                events_t.c.kind.in_(CONSENT_KINDS),
            )
            .order_by(events_t.c.seq)
        )
        for subject, kind, at, source, body in found:
            latest[subject] = (kind, at, source, body)
    for sub in page:
        consented, source = "", ""
        if sub.id in latest:
            consented, source = _consent_of(*latest[sub.id])
        if sub.status == "pending":
            consented = ""  # asked, not yet given
        yield Row(sub.id, sub.email, sub.name, sub.status, consented, source, sub.created_at)


def _consent_of(kind: str, at: str, source: str, body: str | None) -> tuple[str, str]:
    """(consent time, source) of one consent event; an import's come from its CSV row."""
    if kind != "imported" or not body:
        return at, source
    try:
        evidence = json.loads(body)
    except ValueError:
        return at, source
    row_source = str(evidence.get("source") or "").strip()
    return (
        str(evidence.get("consented_at") or at),
        f"{source}: {row_source}" if row_source else source,
    )


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell
