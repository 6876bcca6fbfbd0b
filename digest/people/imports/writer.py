"""The one import writer: every source's rows become subscribers, suppressions and events.

:func:`apply` takes the rows of a :class:`~digest.people.imports.source.Source`
in one transaction: rows are checked in one pass and written in batches. A
bad row is refused with its line and reason, and the rest of the import goes
on (the CLI exits 1 so that it is noticed; importing the fixed file again
merges what is already in). The rules, the same for every tool:

* **Opt-outs are sacred.** A row that opted out (unsubscribed, blocked,
  bounced, complained) puts the address on the suppression list, with the
  reason and the time of the opt-out at the old tool; an address suppressed
  already is never added or revived, whatever a row says.
* **The stricter state wins** when one import names an address twice (in
  one file or in several): an opt-out over pending over active. (Pending
  over active only within a batch of :data:`_BATCH` addresses: a reader
  written as active by an earlier batch stays so, with a note.) A reader
  already here keeps their state and first consent, unless the row opts
  out: then the reader is suppressed (a newer export updates the list).
  Importing the same export twice changes nothing.
* **Evidence is kept.** Each new subscriber gets one ``imported`` event whose
  evidence holds what the file said about them (opt-in and confirmation
  times and IPs, the tool, list, file and line, a hash of the original row),
  under an import statement that names the tool and the list: never our own
  form's wording, which they did not see.
* **No evidence, no mail.** A row without a consent time is imported as
  ``pending``: not mailed until the reader confirms
  (``digest subscribers reconfirm``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from digest import clock, consent
from digest.addresses import clean_name, mask
from digest.errors import SubscriberError
from digest.people import changes
from digest.people.imports.source import (
    OPT_OUTS,
    STRICTNESS,
    Note,
    Policies,
    Refused,
    Row,
    Skipped,
    Source,
)
from digest.people.record import (
    REPORT_REASONS,
    hold_for_good,
    new_ids,
    suppress_key,
    write_transaction,
)
from digest.store import Store, schema, stamp
from digest.translations import N_, Catalog

_BATCH = 20_000
_MAX_LISTED = 200
OUTCOMES = ("active", "pending", "suppressed", "merged", "refused", "skipped")
# Opt-outs for good: a bounce or complaint suppressed here (which the reader may lift by
# confirming again) becomes permanent when the old tool says they left or were blocked.
_FOR_GOOD = ("unsubscribed", "blocked")
# The lifecycle transition that records an opt-out for a reader already here.
_TRANSITION = {
    "unsubscribed": "suppress",
    "blocked": "suppress",
    "bounced": "bounce",
    "complained": "complaint",
}


@dataclass
class ImportReport:
    """What an import did (or would do), row by row, and per status of the source tool."""

    path: str
    dry_run: bool = False
    tool: str = "csv"
    title: str = "CSV"
    list_name: str = ""
    rows: int = 0
    active: int = 0  # new readers, consent on record
    pending: int = 0  # new readers without evidence of consent
    suppressed: int = 0  # rows whose address is suppressed after the import
    merged: int = 0  # rows of an address seen before, in the import or the list
    invalid: int = 0  # refused rows
    skipped: int = 0  # rows that are not people (not an error)
    written: bool = False
    delimiter: str = "comma"
    statement: str = ""  # the version of the consent statement the events name
    detected: bool = False  # the tool was recognised from the header (no --from)
    by_status: dict[str, dict[str, int]] = field(default_factory=dict)  # listed as -> outcome
    parts: list[str] = field(default_factory=list)  # the files of an archive, in reading order
    _entries: list[tuple[int, int, str, bool]] = field(default_factory=list)
    _listed: list[int] = field(default_factory=lambda: [0, 0])  # problems, notes

    @property
    def imported(self) -> int:
        """New readers (active or pending)."""
        return self.active + self.pending

    def count(self, listed_as: str, outcome: str, n: int = 1) -> None:
        counts = self.by_status.get(listed_as)
        if counts is None:
            counts = self.by_status[listed_as] = dict.fromkeys(OUTCOMES, 0)
        counts[outcome] += n
        if outcome == "refused":
            self.invalid += n
        else:
            setattr(self, outcome, getattr(self, outcome) + n)

    def _add(self, part: str, line: int, text: str, problem: bool) -> None:
        kind = 0 if problem else 1
        if self._listed[kind] >= _MAX_LISTED:
            return
        self._listed[kind] += 1
        if part and part not in self.parts:
            self.parts.append(part)
        order = self.parts.index(part) + 1 if part else 0
        self._entries.append((order, line, text, problem))

    def problem(self, line: int, text: str, part: str = "") -> None:
        self._add(part, line, text, True)

    def note(self, line: int, text: str, part: str = "") -> None:
        self._add(part, line, text, False)

    def _spell(self, entry: tuple[int, int, str, bool]) -> str:
        order, line, text, _ = entry
        where = f"{self.parts[order - 1]}: " if order else ""
        return f"{where}line {line}: {text}"

    @property
    def problems(self) -> list[str]:
        """``line N: why`` for each refused row (``FILE: line N: why`` in an archive)."""
        return [self._spell(e) for e in self._entries if e[3]]

    @property
    def notes(self) -> list[str]:
        """Merged duplicates, suppressed rows and the like, as they were met."""
        return [self._spell(e) for e in self._entries if not e[3]]

    def in_file_order(self) -> list[str]:
        """Bad rows and notes together, by file and line number, as the files have them."""
        return [self._spell(e) for e in sorted(self._entries, key=_place)]

    def table(self) -> list[str]:
        """The outcome of the rows per status of the source tool, and the total."""
        columns = [c for c in OUTCOMES if c != "skipped" or self.skipped]
        head = f"{self.title} status"
        labels = {listed: listed or "(no status column)" for listed in self.by_status}
        width = max([len(head), len("total"), *map(len, labels.values())])
        lines = [f"{head:<{width}}  {'rows':>6}" + "".join(f"  {c:>{_cell(c)}}" for c in columns)]
        totals = dict.fromkeys(OUTCOMES, 0)
        for listed, counts in self.by_status.items():
            for name, n in counts.items():
                totals[name] += n
            lines.append(_table_line(labels[listed], counts, columns, width))
        if len(self.by_status) != 1:
            lines.append(_table_line("total", totals, columns, width))
        return lines


def _place(entry: tuple[int, int, str, bool]) -> tuple[int, int]:
    return entry[0], entry[1]


def _cell(column: str) -> int:
    return max(len(column), 6)


def _table_line(label: str, counts: dict[str, int], columns: list[str], width: int) -> str:
    total = sum(counts.values())
    cells = "".join(f"  {counts[c]:>{_cell(c)}}" for c in columns)
    return f"{label:<{width}}  {total:>6}{cells}"


IMPORT_STATEMENT = N_(
    'Imported from %(tool)s, list "%(list)s": the reader consented there, before the list '
    "moved to digest. The wording they were shown was not recorded with the import."
)


def import_statement(words: Catalog, title: str, list_name: str) -> tuple[str, str]:
    """The consent statement an import records when the old form's wording is not known,
    in the newsletter's language (a reader sees it in their data), and that language."""
    return words(IMPORT_STATEMENT, tool=title, list=list_name), words.spoken


class _Abort(Exception):
    """Rolls a dry run's transaction back."""


# A row waiting for its batch, with the policy version it holds (or the default) and its id.
_Pending = tuple[Row, str, int]


def apply(
    store: Store,
    source: Source,
    report: ImportReport,
    *,
    label: str,
    policy_version: str | None = None,
    statement: str | None = None,
) -> None:
    """Import the rows of ``source`` into the store, counting them in ``report``.

    One transaction: it is rolled back on a dry run (``report.dry_run``), else
    ``report.written``. Refused rows are counted and named in ``report``; the
    others are written.
    ``label`` names the import in the ledger (the events' source and the
    evidence's ``file``); ``policy_version`` is the policy of rows that name
    none; ``statement`` the exact wording the old form showed (recorded as a
    new statement version), else :func:`import_statement`. Batched inserts
    and one bulk chain append per batch.
    """
    try:
        with write_transaction(store) as conn:
            _Run(conn, store, source, report, label).run(policy_version, statement)
            if report.dry_run:
                raise _Abort
            report.written = True
    except _Abort:
        pass


class _Run:
    """One import inside its transaction."""

    def __init__(
        self,
        conn: Connection,
        store: Store,
        source: Source,
        report: ImportReport,
        label: str,
    ) -> None:
        self.conn, self.store, self.source, self.report = conn, store, source, report
        self.label = label
        self.now = stamp(clock.now())
        self.statement_id = 0
        self.start_seq = 0
        self.spelling: _Spelling | None = None

    def run(self, policy_version: str | None, statement: str | None) -> None:
        conn, store, source, report = self.conn, self.store, self.source, self.report
        _, in_force = consent.texts_in_force(conn, store.workspace.config)
        current = store.workspace.config.privacy.policy_version
        policies = Policies(consent.policy_ids(conn), policy_version, self.now)
        ids, known = policies.ids, policies.known
        if policy_version is not None and policy_version not in ids:
            raise SubscriberError(
                f"--policy-version {policy_version!r} is unknown (known: {known}); register "
                "it first: digest consent policy add VERSION --url URL --published DATE"
            )
        rows = source.rows(policies)  # the header is checked here
        report.tool, report.title, report.list_name = source.tool, source.title, source.list_name
        # The old form's wording (--statement-file), else digest's import statement: in
        # the newsletter's language, or in English where digest has no catalog for it.
        language = store.workspace.config.newsletter.language
        if statement is None:
            statement, language = import_statement(
                store.workspace.config.words, source.title, source.list_name or self.label
            )
        self.statement_id, report.statement = consent.statement_id(conn, statement, language)
        self.spelling = _Spelling(source, self.label)
        default = policy_version or ""
        batch: dict[str, _Pending] = {}
        duplicates: dict[str, list[Row]] = {}  # key -> rows merged into the kept one
        self.start_seq, _ = consent.lock_head(conn, store.dialect)  # later events: this import's
        pseudonym = store.pseudonym
        strictness = STRICTNESS
        for row in rows:
            if type(row) is Row:
                report.rows += 1
                policy_id = ids.get(policy := row.policy or default)
                if policy_id is None and row.status in OPT_OUTS:  # an opt-out needs no policy
                    report.note(
                        row.line,
                        f"policy_version {policy!r} is unknown; suppressed all the same",
                        row.part,
                    )
                    policy, policy_id = current, in_force
                if policy_id is None:
                    self.refuse(
                        row.line,
                        f"policy_version {policy!r} is unknown (known: {known}); register it: "
                        "digest consent policy add VERSION --url URL --published DATE",
                        row.listed_as,
                        row.part,
                    )
                    continue
                if (rank := strictness.get(row.status)) is None:
                    self.refuse(
                        row.line,
                        f"status {row.status!r} cannot be imported",
                        row.listed_as,
                        row.part,
                    )
                    continue
                key = pseudonym(row.address.casefold())
                held = batch.get(key)
                if held is None:
                    batch[key] = (row, policy, policy_id)
                    if len(batch) >= _BATCH:
                        self.flush(batch, duplicates)
                        batch, duplicates = {}, {}
                elif rank > strictness[held[0].status]:  # the stricter state wins
                    batch[key] = (row, policy, policy_id)
                    duplicates.setdefault(key, []).append(held[0])
                else:
                    duplicates.setdefault(key, []).append(row)
            elif isinstance(row, Refused):
                report.rows += 1
                self.refuse(row.line, row.reason, row.listed_as, row.part)
            elif isinstance(row, Skipped):
                report.rows += 1
                report.count(row.listed_as, "skipped")
                report.note(row.line, row.reason, row.part)
            elif isinstance(row, Note):
                report.note(row.line, row.text, row.part)
        self.flush(batch, duplicates)

    def refuse(self, line: int, reason: str, listed_as: str, part: str) -> None:
        self.report.count(listed_as, "refused")
        self.report.problem(line, reason, part)

    def flush(self, batch: dict[str, _Pending], duplicates: dict[str, list[Row]]) -> None:
        if not batch:
            return
        conn, dialect, report = self.conn, self.store.dialect, self.report
        keys = list(batch)
        suppressed = _suppressions(conn, dialect, keys)  # key -> reason
        existing = _existing(conn, dialect, keys)
        ours = _created_since(conn, set(existing), self.start_seq) if existing else set()
        fresh: list[tuple[str, _Pending]] = []
        flips: list[tuple[str, str, Row]] = []
        hold: list[str] = []
        count = report.count
        tally: dict[tuple[str, str], int] = {}  # the common case's outcomes, counted at the end
        outcome_of = _OUTCOME
        for key, item in batch.items():
            row = item[0]
            later = duplicates.get(key)
            if later is None and key not in suppressed and key not in existing:
                fresh.append((key, item))  # the common case: new, once in the file
                seen = (row.listed_as, outcome_of[row.status])
                tally[seen] = tally.get(seen, 0) + 1
                continue
            shown = mask(row.address)
            opts_out = row.status in OPT_OUTS
            if key in suppressed:
                outcome = "suppressed"
                if not opts_out:
                    report.note(row.line, f"{shown} is suppressed; not added", row.part)
                elif row.status in _FOR_GOOD and suppressed[key] in REPORT_REASONS:
                    hold.append(key)  # a bounce here, an unsubscribe there: for good
            elif key in existing:
                subscriber_id, status = existing[key]
                if opts_out:
                    outcome = "suppressed"
                    flips.append((key, subscriber_id, row))
                    report.note(
                        row.line,
                        f"{shown} was {status}; now {OPT_OUTS[row.status]} and suppressed "
                        f"({self.source.title}: {row.listed_as or row.status})",
                        row.part,
                    )
                else:
                    outcome = "merged"
                    where = "an earlier line" if key in ours else "an existing subscriber"
                    if key in ours and STRICTNESS[row.status] > STRICTNESS.get(status, 0):
                        # Written already: one batch back, the stricter state had no say.
                        why = (
                            f"line {row.line} says {row.status}; an earlier batch of this "
                            f"import had already added them as {status}: check with the old tool"
                        )
                        text = f"{shown} merged into {where}, who stays {status} ({why})"
                    else:
                        kept = "" if status == "active" else f", who stays {status}"
                        text = f"{shown} merged into {where}{kept} (the first consent is kept)"
                    report.note(row.line, text, row.part)
            else:
                fresh.append((key, item))
                outcome = "suppressed" if opts_out else row.status
            count(row.listed_as, outcome)
            for other in later or ():
                count(other.listed_as, "suppressed" if outcome == "suppressed" else "merged")
                report.note(other.line, self._merged(mask(other.address), other, row), other.part)
        for (listed, outcome), n in tally.items():
            count(listed, outcome, n)
        if fresh:
            self.write_fresh(fresh)
        for key, subscriber_id, row in flips:
            self.flip(key, subscriber_id, row)
        for key in hold:
            hold_for_good(conn, key)

    def _merged(self, shown: str, other: Row, kept: Row) -> str:
        where = f"line {kept.line}" if kept.part == other.part else f"{kept.part} line {kept.line}"
        if STRICTNESS[kept.status] > STRICTNESS[other.status]:
            said = kept.listed_as or kept.status
            return f"{shown} merged into {where} ({said} there: the stricter state wins)"
        return f"{shown} merged into {where} (duplicate in the file; the first consent is kept)"

    def write_fresh(self, fresh: list[tuple[str, _Pending]]) -> None:
        """Insert the batch's new subscribers, their suppressions and ``imported`` events.

        The evidence is spelled by :class:`_Spelling`, byte for byte what
        :func:`~digest.consent.canonical` makes of the same dict (a test holds
        it to that), without building and sorting a dict per row.

        The rows go in by pseudonym, and the batch's random ids are drawn at
        once and handed out in sorted order, so every index (address key, id,
        status and id, the events' subject) grows in order within the batch
        instead of at random pages: with a million rows the indexes outgrow
        SQLite's cache, and random inserts would read and spill a page each.
        The events of one batch follow that order too; each holds its line in
        its evidence.
        """
        conn, store, now = self.conn, self.store, self.now
        spelling = self.spelling
        assert spelling is not None
        fresh.sort(key=_first)
        rows: list[tuple[Any, ...]] = []
        items: list[tuple[str, str, int, str]] = []
        blocked: list[tuple[str, str, str]] = []
        spell, opt_outs = spelling.spell, OPT_OUTS
        for sid, (key, (row, policy, policy_id)) in zip(
            sorted(new_ids(len(fresh))), fresh, strict=True
        ):
            evidence, kept = spell(row, policy)
            status = row.status
            if status in opt_outs:
                blocked.append((key, status, row.left_at or now))
                status = opt_outs[status]
            rows.append(
                (sid, row.address, key, clean_name(row.name) or None, status, now, now, kept)
            )
            items.append((sid, key, policy_id, evidence))
        consent.bulk_insert(conn, store.dialect, "subscribers", _SUBSCRIBER_COLUMNS, rows)
        consent.bulk_insert(conn, store.dialect, "suppressions", _SUPPRESSION_COLUMNS, blocked)
        consent.append_many(
            conn, store, "imported", "import", spelling.label, items, self.statement_id
        )

    def flip(self, key: str, subscriber_id: str, row: Row) -> None:
        """A reader already here opted out at the old tool: suppress them, with an event."""
        spelling = self.spelling
        assert spelling is not None
        suppress_key(self.conn, key, row.status, row.left_at or self.now)
        evidence: dict[str, Any] = dict(zip(spelling.names, row.evidence, strict=True))
        evidence.update(spelling.constants)
        evidence.update(email=row.address, line=row.line, status=OPT_OUTS[row.status])
        changes.transition_in(
            self.conn,
            self.store,
            subscriber_id,
            _TRANSITION[row.status],
            method="import",
            source=spelling.label,
            evidence=evidence,
        )


# One JSON string as canonical() spells it (ensure_ascii=False): the json module's
# own C escaper, called directly rather than through an encoder object per value.
_text = json.encoder.encode_basestring


class _Spelling:
    """The evidence of an ``imported`` event as :func:`~digest.consent.canonical` spells it.

    Made once per import: format strings with the keys in sorted order, filled
    per row by position (0 consented_at, 1 email, 2 line, 3 name, 4
    policy_version, 5 attributes, 6 status, then the source's evidence
    values), so no dict is built and sorted per row. The file, tool and list
    are the same for every row and written into the format once. An active
    row's evidence names no status (most rows: a status is read back only
    where it is there), and attributes only when a row has some.
    """

    OWN = ("attributes", "consented_at", "email", "line", "name", "policy_version", "status")

    def __init__(self, source: Source, label: str) -> None:
        attribute_names, evidence_names = source.attribute_names, source.evidence_names
        if list(attribute_names) != sorted(set(attribute_names)):
            raise ValueError(f"attribute names {attribute_names} are not sorted and unique")
        self.attribute_names = tuple(attribute_names)
        self.labels = [_text(name) for name in attribute_names]
        self.names = tuple(evidence_names)
        self.label = label
        self.constants = {"file": label, "list": source.list_name, "tool": source.tool}
        if clash := {*self.OWN, *self.constants} & set(evidence_names):
            raise ValueError(f"evidence names {sorted(clash)} are the writer's own")
        fields = {
            "consented_at": "{0}",  # a stored stamp in quotes, or null: nothing to escape
            "email": "{1}",
            "line": "{2}",
            "name": "{3}",
            "policy_version": "{4}",
            **{key: _braces(_text(value)) for key, value in self.constants.items()},
            **{name: f"{{{i}}}" for i, name in enumerate(evidence_names, start=7)},
        }
        self.templates = {
            (attributes, status): _template(
                {
                    **fields,
                    **({"attributes": "{5}"} if attributes else {}),
                    **({"status": "{6}"} if status else {}),
                }
            )
            for attributes in (False, True)
            for status in (False, True)
        }

    def spell(self, row: Row, policy: str) -> tuple[str, str]:
        """(the row's evidence, its attributes), both as canonical JSON."""
        text = _text
        kept = "{}"
        if row.attributes:
            cells = [
                f"{label}:{text(v)}"
                for label, v in zip(self.labels, row.attributes, strict=True)
                if v
            ]
            if cells:
                kept = f"{{{','.join(cells)}}}"
        if row.extra:
            merged = {n: v for n, v in zip(self.attribute_names, row.attributes, strict=False) if v}
            merged.update(row.extra)
            kept = consent.canonical(merged) if merged else "{}"
        status = row.status
        given = row.name  # the evidence keeps the file's cell
        active = status == "active"
        evidence = self.templates[kept != "{}", not active].format(
            f'"{row.consented_at}"' if row.consented_at else "null",
            text(row.address),
            row.line,
            text(given) if given else "null",
            text(policy),
            kept,
            "" if active else text(OPT_OUTS.get(status, status)),
            *map(text, row.evidence),
        )
        return evidence, kept


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _template(fields: dict[str, str]) -> str:
    pairs = ",".join(f"{_braces(_text(key))}:{fields[key]}" for key in sorted(fields))
    return f"{{{{{pairs}}}}}"


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _suppressions(conn: Connection, dialect: str, keys: list[str]) -> dict[str, str]:
    """Those of ``keys`` (hex digests) on the suppression list: key -> reason."""
    rows = _lookup(conn, dialect, "suppressions", "key", keys, "key, reason")
    return {key: reason for key, reason in rows}


def _existing(conn: Connection, dialect: str, keys: list[str]) -> dict[str, tuple[str, str]]:
    """The subscribers with these keys: key -> (id, status)."""
    rows = _lookup(conn, dialect, "subscribers", "email_key", keys, "email_key, id, status")
    return {key: (subscriber_id, status) for key, subscriber_id, status in rows}


def _lookup(
    conn: Connection, dialect: str, table: str, column: str, keys: list[str], what: str
) -> list[tuple[Any, ...]]:
    """``what`` of the rows of ``table`` whose ``column`` is one of ``keys``: one query,
    one parameter. The keys travel as one text (comma-joined, or a JSON array on
    SQLite), not as thousands of bound values or an array adapted element by element.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if dialect == "postgresql":
            cursor.execute(
                f"SELECT {what} FROM {table} WHERE {column} = ANY(string_to_array(%s, ','))",
                (",".join(keys),),
            )
        else:
            cursor.execute(
                f"SELECT {what} FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                (json.dumps(keys),),
            )
        return [tuple(row) for row in cursor.fetchall()]
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
_SUPPRESSION_COLUMNS = ("key", "reason", "created_at")
_OUTCOME = {status: "suppressed" if status in OPT_OUTS else status for status in STRICTNESS}


__all__ = ["OUTCOMES", "ImportReport", "apply", "import_statement"]
