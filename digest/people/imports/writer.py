"""The one import writer: every source's rows become subscribers and ``imported`` events.

:func:`apply` takes the rows of a :class:`~digest.people.imports.source.Source`
in one transaction, all or nothing: rows are checked in one pass and
written in batches; an address already suppressed is never added, one seen
before (in the file or the store) is merged and keeps its first consent, so
importing a file twice changes nothing; each new subscriber's evidence
keeps what the file said about them, with its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from digest import clock, consent
from digest.addresses import clean_name, mask
from digest.errors import SubscriberError
from digest.people.imports.source import Policies, Refused, Row, Source
from digest.people.record import new_ids, write_transaction
from digest.store import Store, schema, stamp

_BATCH = 20_000
_MAX_LISTED = 200
_IMPORTABLE = ("active",)  # the statuses a Row may ask for


@dataclass
class ImportReport:
    path: str
    rows: int = 0
    imported: int = 0
    merged: int = 0
    suppressed: int = 0
    invalid: int = 0
    written: bool = False
    dry_run: bool = False
    problems: list[str] = field(default_factory=list)  # "line N: ..." for bad rows
    notes: list[str] = field(default_factory=list)  # merged duplicates and suppressed rows
    delimiter: str = "comma"

    def note(self, target: list[str], line: str) -> None:
        if len(target) < _MAX_LISTED:
            target.append(line)

    def in_file_order(self) -> list[str]:
        """Bad rows and notes together, by line number, as the file has them."""
        return sorted(self.problems + self.notes, key=_line_number)


def _line_number(text: str) -> int:
    match = re.match(r"line (\d+):", text)
    return int(match.group(1)) if match else 0


class _Abort(Exception):
    """Rolls the import's transaction back (dry run, or bad rows without --skip-invalid)."""


# A row waiting for its batch, with the policy version it holds (or the default) and its id.
_Pending = tuple[Row, str, int]


def apply(
    store: Store,
    source: Source,
    report: ImportReport,
    *,
    label: str,
    skip_invalid: bool = False,
    policy_version: str | None = None,
) -> None:
    """Import the rows of ``source`` into the store, counting them in ``report``.

    One transaction: it is rolled back on a dry run (``report.dry_run``) or
    when a row was refused and not ``skip_invalid``; else ``report.written``.
    ``label`` names the import in the ledger (the events' source and the
    evidence's ``file``); ``policy_version`` is the policy of rows that name
    none. Batched inserts and one bulk chain append per batch.
    """
    try:
        with write_transaction(store) as conn:
            _run(conn, store, source, report, label, skip_invalid, policy_version)
            if report.dry_run or (report.invalid and not skip_invalid):
                raise _Abort
            report.written = True
    except _Abort:
        pass


def _run(
    conn: Connection,
    store: Store,
    source: Source,
    report: ImportReport,
    label: str,
    skip_invalid: bool,
    policy_version: str | None,
) -> None:
    consent.texts_in_force(conn, store.workspace.config)
    policies = Policies(consent.policy_ids(conn), policy_version)
    ids, known = policies.ids, policies.known
    if policy_version is not None and policy_version not in ids:
        raise SubscriberError(
            f"--policy-version {policy_version!r} is unknown (known: {known}); "
            "set [privacy] policy_version to record a new one"
        )
    rows = source.rows(policies)  # the header is checked here
    spelling = _Spelling(source.evidence_names, source.attribute_names, label)
    default = policy_version or ""
    batch: dict[str, _Pending] = {}
    duplicates: dict[str, list[int]] = {}  # key -> later lines of an address in this batch
    start_seq, _ = consent.lock_head(conn, store.dialect)  # events after it are this import's
    pseudonym = store.pseudonym
    importable = _IMPORTABLE
    write = True
    for row in rows:
        report.rows += 1
        if isinstance(row, Refused):
            problem = row.reason
        elif (policy_id := ids.get(policy := row.policy or default)) is None:
            problem = (
                f"policy_version {policy!r} is unknown (known: {known}); "
                "set [privacy] policy_version to record a new one"
            )
        elif row.status not in importable:
            problem = f"status {row.status!r} cannot be imported"
        else:
            key = pseudonym(row.address.casefold())
            if key in batch:
                duplicates.setdefault(key, []).append(row.line)
            else:
                batch[key] = (row, policy, policy_id)
                if len(batch) >= _BATCH:
                    _flush(conn, store, batch, duplicates, report, spelling, start_seq, write)
                    batch, duplicates = {}, {}
            continue
        report.invalid += 1
        report.note(report.problems, f"line {row.line}: {problem}")
        write = skip_invalid  # the import will be rolled back: only keep checking
    _flush(conn, store, batch, duplicates, report, spelling, start_seq, write)


def _flush(
    conn: Connection,
    store: Store,
    batch: dict[str, _Pending],
    duplicates: dict[str, list[int]],
    report: ImportReport,
    spelling: _Spelling,
    start_seq: int,
    write: bool,
) -> None:
    if not batch:
        return
    keys = list(batch)
    suppressed = _present(conn, store.dialect, "suppressions", "key", keys)
    existing = _present(conn, store.dialect, "subscribers", "email_key", keys)
    ours = _created_since(conn, existing, start_seq) if existing else set()
    fresh: list[tuple[str, _Pending]] = []
    for key, item in batch.items():
        later = duplicates.get(key, ())
        if not later and key not in suppressed and key not in existing:
            fresh.append((key, item))  # the common case: new, once in the file
            continue
        line, shown = item[0].line, mask(item[0].address)
        if key in suppressed:
            report.suppressed += 1 + len(later)
            for each in (line, *later):
                report.note(report.notes, f"line {each}: {shown} is suppressed; not added")
            continue
        report.merged += len(later)
        for each in later:
            report.note(
                report.notes,
                f"line {each}: {shown} merged into line {line} "
                "(duplicate in the file; the first consent is kept)",
            )
        if key in existing:
            report.merged += 1
            where = "an earlier line" if key in ours else "an existing subscriber"
            report.note(
                report.notes,
                f"line {line}: {shown} merged into {where} (the first consent is kept)",
            )
            continue
        fresh.append((key, item))
    report.imported += len(fresh)
    if write and fresh:
        _write_imported(conn, store, fresh, spelling)


# One JSON string as canonical() spells it (ensure_ascii=False): the json module's
# own C escaper, called directly rather than through an encoder object per value.
_text = json.encoder.encode_basestring


class _Spelling:
    """The evidence of an ``imported`` event as :func:`~digest.consent.canonical` spells it.

    Made once per import: a format string with the keys in sorted order,
    filled per row by position (0 consented_at, 1 email, 2 line, 3 name,
    4 policy_version, 5 attributes, then the source's evidence values), so no
    dict is built and sorted per row.
    """

    def __init__(
        self, evidence_names: Sequence[str], attribute_names: Sequence[str], label: str
    ) -> None:
        if list(attribute_names) != sorted(set(attribute_names)):
            raise ValueError(f"attribute names {attribute_names} are not sorted and unique")
        self.labels = [_text(name) for name in attribute_names]
        own = {
            "consented_at": '"{0}"',  # a stored stamp: nothing to escape
            "email": "{1}",
            "file": _braces(_text(label)),
            "line": "{2}",
            "name": "{3}",
            "policy_version": "{4}",
        }
        theirs = {name: f"{{{i}}}" for i, name in enumerate(evidence_names, start=6)}
        if clash := {*own, "attributes"} & set(theirs):
            raise ValueError(f"evidence names {sorted(clash)} are the writer's own")
        self.label = label
        self.plain = _template({**own, **theirs})
        self.with_attributes = _template({**own, **theirs, "attributes": "{5}"})


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _template(fields: dict[str, str]) -> str:
    pairs = ",".join(f"{_braces(_text(key))}:{fields[key]}" for key in sorted(fields))
    return f"{{{{{pairs}}}}}"


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _write_imported(
    conn: Connection,
    store: Store,
    fresh: list[tuple[str, _Pending]],
    spelling: _Spelling,
) -> None:
    """Insert the batch's new subscribers and their ``imported`` events with evidence.

    The evidence is spelled by :class:`_Spelling`, byte for byte what
    :func:`~digest.consent.canonical` makes of the same dict (a test holds it
    to that), without building and sorting a dict per row.

    The rows go in by pseudonym, and the batch's random ids are drawn at once
    and handed out in sorted order, so every index (address key, id, status
    and id, the events' subject) grows in order within the batch instead of
    at random pages: with a million rows the indexes outgrow SQLite's cache,
    and random inserts would read and spill a page each. The events of one
    batch follow that order too; each holds its line in its evidence.
    """
    fresh.sort(key=_first)
    now = stamp(clock.now())
    text = _text
    plain, with_attributes, labels = spelling.plain, spelling.with_attributes, spelling.labels
    rows: list[tuple[Any, ...]] = []
    items: list[tuple[str, str, int, str]] = []
    for sid, (key, (row, policy, policy_id)) in zip(
        sorted(new_ids(len(fresh))), fresh, strict=True
    ):
        given = row.name  # the evidence keeps the file's cell
        if row.attributes and (
            cells := [
                f"{label}:{text(v)}" for label, v in zip(labels, row.attributes, strict=True) if v
            ]
        ):
            kept, template = f"{{{','.join(cells)}}}", with_attributes
        else:
            kept, template = "{}", plain
        evidence = template.format(
            row.consented_at,
            text(row.address),
            row.line,
            text(given) if given else "null",
            text(policy),
            kept,
            *map(text, row.evidence),
        )
        rows.append((sid, row.address, key, clean_name(given) or None, row.status, now, now, kept))
        items.append((sid, key, policy_id, evidence))
    consent.bulk_insert(conn, store.dialect, "subscribers", _SUBSCRIBER_COLUMNS, rows)
    consent.append_many(conn, store, "imported", "import", spelling.label, items)


def _present(conn: Connection, dialect: str, table: str, column: str, keys: list[str]) -> set[str]:
    """Those of ``keys`` (hex digests) found in ``table.column``: one query, one parameter.

    The keys travel as one text (comma-joined, or a JSON array on SQLite),
    not as thousands of bound values or an array adapted element by element.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if dialect == "postgresql":
            cursor.execute(
                f"SELECT {column} FROM {table} WHERE {column} = ANY(string_to_array(%s, ','))",
                (",".join(keys),),
            )
        else:
            cursor.execute(
                f"SELECT {column} FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                (json.dumps(keys),),
            )
        return {found for (found,) in cursor.fetchall()}
    finally:
        cursor.close()


def _created_since(conn: Connection, keys: set[str], start_seq: int) -> set[str]:
    """Those of ``keys`` whose subscriber's first event came after ``start_seq``."""
    subs_t, events = schema.subscribers, consent.events_t
    rows = conn.execute(
        select(subs_t.c.email_key)
        .join(events, events.c.subject_id == subs_t.c.id)
        .where(subs_t.c.email_key.in_(keys))
        .group_by(subs_t.c.email_key)
        .having(func.min(events.c.seq) > start_seq)
    )
    return {key for (key,) in rows}


_SUBSCRIBER_COLUMNS = (
    "id",
    "email",
    "email_key",
    "name",
    "status",
    "created_at",
    "updated_at",
    "attributes",
)
