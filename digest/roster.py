"""The subscriber list as an operator reads it: one row per subscriber, with consent.

:func:`rows` streams the list with each subscriber's consent date and source
(taken from the consent event that gave the consent, not from when the row
was made: an import made last week may carry consent given in 2023).
:func:`export_all` writes the full list, addresses included, to a CSV or
JSON file, and records in the consent ledger that each person's data was
exported, by whom and to which file. Spreadsheet formulas are neutralised in
the CSV: a cell that begins with ``=``, ``+``, ``-``, ``@`` (or a tab or
carriage return) gets a leading apostrophe, as OWASP advises for CSV
injection, so opening the file cannot run anything.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from sqlalchemy import Connection, select

from digest import consent
from digest.addresses import mask
from digest.consent import Draft
from digest.errors import SubscriberError
from digest.people.record import Subscriber, list_subscribers

# The events by which a person gives consent; the latest one is the consent shown.
from digest.people.rights import remember_list_export
from digest.store import Store, schema

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


# -- the full export -----------------------------------------------------------


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def export_all(store: Store, path: Path, *, status: str | None, operator: str) -> int:
    """Write every subscriber (or those with ``status``) to ``path`` (.csv or .json) with
    full addresses, record an ``exported`` event for each, and return how many.

    The file is written beside its final name and renamed once the ledger has
    recorded the export, in one transaction: no export without its record,
    no record without the file.
    """
    kind = path.suffix.lower()
    if kind not in (".csv", ".json"):
        raise SubscriberError(f"{path}: the export file must end in .csv or .json")
    if not path.parent.is_dir():
        raise SubscriberError(f"{path.parent}: no such folder; create it or pick another -o")
    scope = f"status {status}" if status else "all subscribers"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            writer = _Writer(handle, kind)
            evidence = {"file": path.name, "scope": scope, "operator": operator}
            with store.begin() as conn:
                consent.lock_head(conn, store.dialect)  # as every ledger writer does, first
                ids: list[str] = []
                for row in rows(store, status):
                    if row.email is None:
                        continue  # erased: nothing left to export
                    writer.write(row)
                    count += 1
                    ids.append(row.id)
                    if len(ids) >= _PAGE:
                        _record(conn, store, ids, operator, evidence)
                        ids = []
                _record(conn, store, ids, operator, evidence)
                writer.close()
                handle.flush()
                os.fsync(handle.fileno())
                os.replace(temporary, path)
                remember_list_export(store, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return count


def _record(
    conn: Connection, store: Store, ids: list[str], operator: str, evidence: dict[str, str]
) -> None:
    """One ``exported`` event per subscriber, under the pseudonym their events carry."""
    if not ids:
        return
    found = conn.execute(select(subs_t.c.id, subs_t.c.email_key).where(subs_t.c.id.in_(ids)))
    keys = {str(i): str(k) for i, k in found}
    drafts = [Draft("exported", i, keys[i], "admin", operator, evidence) for i in ids]
    consent.append(conn, store, drafts)


class _Writer:
    """Rows to CSV (neutralised) or to one JSON array, streamed."""

    def __init__(self, handle: TextIO, kind: str) -> None:
        self.handle = handle
        self.kind = kind
        self.first = True
        if kind == ".csv":
            self.csv = csv.writer(handle)
            self.csv.writerow(COLUMNS)
        else:
            handle.write("[")

    def write(self, row: Row) -> None:
        if self.kind == ".csv":
            self.csv.writerow([neutralise(str(v or "")) for v in row])
            return
        self.handle.write(("\n" if self.first else ",\n") + json.dumps(row.as_dict()))
        self.first = False

    def close(self) -> None:
        if self.kind == ".json":
            self.handle.write("\n]\n" if not self.first else "]\n")
