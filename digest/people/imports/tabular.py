"""What every tool's export has in common: CSV parts, named columns, rows read in order.

An :class:`Export` is a :class:`~digest.people.imports.source.Source` made of
one or more :class:`Part` (a CSV file, or the CSV files of an archive), each
read by :class:`~digest.csvfile.CsvFile` a row at a time. A tool's module
says which columns identify its export (``signature``), and how one row
becomes a :class:`~digest.people.imports.source.Row` (:meth:`Export.reader`).
Header names are compared in one spelling (:func:`normal`): lower case, runs
of spaces and hyphens as ``_`` (``Email Address`` is ``email_address``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from digest.csvfile import CsvFile
from digest.errors import SubscriberError
from digest.people.imports.source import Item, Note, Policies, Refused

# One row's cells (padded to the header's width, plus one empty cell), its line and its text.
Reader = Callable[[list[str], int, str], Item]


def normal(name: str) -> str:
    """A header name in the one spelling columns are compared in."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


class Part(NamedTuple):
    """One CSV file of an export: its name in the archive ("" for a plain file) and the
    open file."""

    name: str
    file: CsvFile


class Columns:
    """Where the named columns of one header are; an absent one is the padding cell."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.names = [normal(h) for h in header]
        self.pad = len(header)

    def find(self, *aliases: str) -> int | None:
        for alias in aliases:
            if alias in self.names:
                return self.names.index(alias)
        return None

    def at(self, *aliases: str) -> int:
        found = self.find(*aliases)
        return self.pad if found is None else found


class Export:
    """A tool's export, read part by part; a :class:`Source`."""

    tool = ""
    title = ""
    # The columns that identify the tool's export, each with the spellings it goes by.
    signature: tuple[tuple[str, ...], ...] = ()
    evidence_names: tuple[str, ...] = ()

    def __init__(self, label: str, parts: list[Part], list_name: str) -> None:
        self.label = label  # the path as messages name it
        self.parts = parts
        self.list_name = list_name
        self.attribute_names: tuple[str, ...] = ()
        self.notes: list[Note] = []  # what a reader says about the row it reads

    @property
    def delimiter(self) -> str:
        return self.parts[0].file.delimiter_name if self.parts else "comma"

    # Columns of which a header must hold one to be recognised without --from (a tool whose
    # signature alone, "email, status, created_at", could be anybody's).
    marks: tuple[str, ...] = ()

    @classmethod
    def lacks(cls, header: list[str]) -> list[str]:
        """The identifying columns ``header`` lacks (the first spelling of each)."""
        names = {normal(h) for h in header}
        return [aliases[0] for aliases in cls.signature if not names.intersection(aliases)]

    @classmethod
    def unmarked(cls, header: list[str]) -> bool:
        """Whether ``header`` lacks every one of the tool's marks (so it is not recognised)."""
        return bool(cls.marks) and not {normal(h) for h in header}.intersection(cls.marks)

    def where(self, part: Part) -> str:
        return f"{self.label}/{part.name}" if part.name else self.label

    def check(self, part: Part) -> None:
        """Refuse a part whose header is not this tool's, naming what it lacks."""
        missing = self.lacks(part.file.header)
        if missing:
            found = ", ".join(repr(h) for h in part.file.header if h) or "none"
            raise SubscriberError(
                f"{self.where(part)}:1: not {article(self.title)} {self.title} export: the "
                f"header lacks {', '.join(missing)} (it has {found}); pick another --from, "
                "or map the columns of a CSV of your own with --map"
            )

    def rows(self, policies: Policies) -> Iterator[Item]:
        for part in self.parts:
            self.check(part)
        self.prepare()
        return self._read(policies)

    def prepare(self) -> None:
        """Work out what the headers hold (attribute names, say), before the first row."""

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        """How to read one row of ``part`` (times up to ``latest``), and the status a
        row is listed as (for a refused row's place in the report)."""
        raise NotImplementedError

    def _read(self, policies: Policies) -> Iterator[Item]:
        latest = policies.latest
        notes = self.notes
        for part in self.parts:
            read, listed = self.reader(part, latest)
            file, name = part.file, part.name
            width = len(file.header)
            previous = file.line
            for cells, text in file.records():
                line, previous = previous + 1, file.line
                try:
                    if len(cells) == width:
                        cells.append("")  # where absent columns point
                    else:
                        cells = fit(cells, width)
                    item = read(cells, line, text)
                except SubscriberError as exc:
                    notes.clear()
                    if not "".join(cells).strip():
                        continue  # a blank line (it has no address: only a failed row can be one)
                    yield Refused(line, str(exc), listed(fit(cells, width, strict=False)), name)
                    continue
                if notes:
                    yield from notes
                    notes.clear()
                yield item


def fit(cells: list[str], width: int, *, strict: bool = True) -> list[str]:
    """The cells padded to ``width`` plus one empty cell (absent columns point there)."""
    if len(cells) > width and strict:
        raise SubscriberError(f"{len(cells)} fields but the header has {width}")
    return cells[:width] + [""] * (width + 1 - min(len(cells), width))


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def flag(cell: str, column: str) -> bool:
    """A ``true``/``false`` cell."""
    value = cell.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise SubscriberError(f"{column} {cell.strip()[:40]!r} is neither true nor false")


def soft(notes: list[Note], line: int, part: str, what: str, read: Callable[[], str]) -> str:
    """``read()``, or "" with a note when it fails: an opt-out is kept whatever its times say."""
    try:
        return read()
    except SubscriberError as exc:
        notes.append(Note(line, f"{exc}; {what}", part))
        return ""
