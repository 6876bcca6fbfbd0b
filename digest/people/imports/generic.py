"""A CSV of our own columns: ``digest subscribers import FILE.csv``.

The header names ``email``, ``consented_at`` and ``policy_version`` (or the
import gives ``--policy-version``), and optionally ``name``, ``source`` and
``ip``; any other column is kept as an attribute. The file is read by
:class:`~digest.csvfile.CsvFile` (any delimiter, UTF-8, bounded lines) a
row at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from digest.addresses import mask
from digest.csvfile import CsvFile
from digest.errors import ConfigError, CsvFileError, SubscriberError
from digest.people.imports.source import Policies, Refused, Row, address, instant, ip
from digest.people.imports.writer import ImportReport, apply
from digest.store import Store

REQUIRED = ("email", "consented_at", "policy_version")
KNOWN = ("email", "name", "consented_at", "source", "policy_version", "ip")


def import_csv(
    store: Store,
    path: Path,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    source: str | None = None,
    policy_version: str | None = None,
) -> ImportReport:
    """Import subscribers who consented elsewhere, all or nothing.

    Every bad row (invalid address, missing or unreadable consent date,
    unknown policy version) is reported with its line number and nothing is
    written, unless ``skip_invalid``. Duplicates in the file and against the
    store are merged (the first consent is kept); suppressed addresses are
    never re-added (see :func:`~digest.people.imports.writer.apply`).
    ``policy_version`` stands in for a missing ``policy_version`` column (and
    for empty cells of one).
    """
    report = ImportReport(str(path), dry_run=dry_run)
    try:
        with CsvFile(path) as file:
            report.delimiter = file.delimiter_name
            apply(
                store,
                CsvRows(file, report.path),
                report,
                label=source or path.name,
                skip_invalid=skip_invalid,
                policy_version=policy_version,
            )
    except CsvFileError as exc:
        raise SubscriberError(str(exc)) from None
    return report


class CsvRows:
    """The rows of an open :class:`CsvFile` with our own columns (a :class:`Source`)."""

    evidence_names: tuple[str, ...] = ("ip", "source")

    def __init__(self, file: CsvFile, path: str) -> None:
        self.file = file
        self.path = path
        self.attribute_names: tuple[str, ...] = ()

    def rows(self, policies: Policies) -> Iterator[Row | Refused]:
        header = self._header(policies)
        columns = _Columns.of(header)
        self.attribute_names = tuple(name for _, name in columns.extras)
        return self._read(columns, len(header))

    def _header(self, policies: Policies) -> list[str]:
        header = self.file.header
        known = policies.known
        if "email" not in header:
            found = ", ".join(repr(h) for h in header if h) or "none"
            raise SubscriberError(
                f"{self.path}:1: no `email` column; read with a {self.file.delimiter_name} as "
                f"the delimiter, the header has the columns {found}; expected {', '.join(KNOWN)} "
                "(others are kept as attributes)"
            )
        needed = [n for n in REQUIRED if n not in header]
        if policies.default is not None and "policy_version" in needed:
            needed.remove("policy_version")
        if needed:
            way = (
                f"; add the column, or pass --policy-version V (known: {known})"
                if needed == ["policy_version"]
                else ""
            )
            raise SubscriberError(
                f"{self.path}:1: the header lacks {', '.join(needed)}; "
                f"expected columns {', '.join(KNOWN)} (others are kept as attributes){way}"
            )
        if policies.default is not None and "policy_version" not in header:
            header = [*header, "policy_version"]  # a column of its own, its cells empty
        return header

    def _read(self, columns: _Columns, width: int) -> Iterator[Row | Refused]:
        file = self.file
        previous_line = file.line
        for cells in file.rows:
            line, previous_line = previous_line + 1, file.line
            try:
                yield _row(cells, line, width, columns)
            except SubscriberError as exc:
                if not "".join(cells).strip():
                    continue  # a blank line (it has no address, so only a failed row can be one)
                yield Refused(line, str(exc))


class _Columns(NamedTuple):
    """Where each known column sits; an absent optional one points at the padding cell."""

    email: int
    name: int
    consented_at: int
    source: int
    policy_version: int
    ip: int
    extras: tuple[tuple[int, str], ...]  # (index, name) kept as attributes; by name, the last
    kept: tuple[int, ...]  # the indexes of extras

    @classmethod
    def of(cls, header: list[str]) -> _Columns:
        pad = len(header)
        where = {name: header.index(name) if name in header else pad for name in KNOWN}
        last = {name: i for i, name in enumerate(header) if name not in KNOWN and name}
        extras = tuple(sorted(((i, n) for n, i in last.items()), key=_second))
        return cls(**where, extras=extras, kept=tuple(i for i, _ in extras))


def _second(pair: tuple[int, str]) -> str:
    return pair[1]


def _row(cells: list[str], line: int, width: int, columns: _Columns) -> Row:
    """Check one row's cells and make it a :class:`Row`; pad them to ``width + 1`` cells."""
    count = len(cells)
    if count > width:
        raise SubscriberError(f"{count} fields but the header has {width}")
    cells += [""] * (width + 1 - count)
    found = address(cells[columns.email])
    given_ip = ip(cells[columns.ip], found)
    when = cells[columns.consented_at].strip()
    if not when:
        raise SubscriberError(f"{mask(found)} has no consent date (consented_at)")
    try:
        consented = instant(when)
    except (ConfigError, ValueError):
        raise SubscriberError(
            f"consented_at {when!r} is not an ISO-8601 time (write e.g. 2026-10-02T08:15:00Z)"
        ) from None
    attributes = tuple([cells[i] for i in columns.kept]) if columns.kept else ()
    return _make_row(
        (
            line,
            found,
            cells[columns.name].strip(),
            "active",
            consented,
            cells[columns.policy_version].strip(),
            (given_ip, cells[columns.source].strip()),
            attributes,
        )
    )


_make_row = Row._make  # a NamedTuple's own __new__ is slower, and this runs once a row
