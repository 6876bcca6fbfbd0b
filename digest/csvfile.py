"""Reading a CSV file that a person or a spreadsheet made, safely.

* Memory stays bounded whatever the file holds: it is read a line at a time,
  and a line longer than :data:`MAX_LINE_BYTES` (a file with no line breaks,
  a binary file given by mistake) is refused at that length instead of being
  read whole. A quoted field spanning lines is still bounded by the csv
  module's field size limit.
* Each line is decoded as UTF-8 on its own (a byte-order mark is dropped), so
  a file that is not UTF-8 is refused naming the line.
* The delimiter is found from the header line: a comma, a semicolon (what
  spreadsheets write in most of Europe) or a tab, whichever the header holds
  most of outside quotes; a comma when it holds none.
* :meth:`CsvFile.records` gives each row with its text as the file holds it
  (a quoted line break included, the final line ending not), so an import can
  record a hash of the original row.

A file inside an archive (a zip member) is read the same way, through an
``opener`` that returns its binary stream.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from digest.errors import CsvFileError

MAX_LINE_BYTES = 64 * 1024
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


class CsvFile:
    """``with CsvFile(path) as f:`` then ``f.header`` (lower-cased names), ``f.rows``
    (an iterator of cell lists), ``f.line`` (the physical line read last) and
    ``f.delimiter_name``."""

    def __init__(self, path: Path | str, opener: Callable[[], IO[bytes]] | None = None) -> None:
        self.path = path  # what messages name: a file, or "archive.zip/member.csv"
        self.opener = opener
        self.delimiter = ","
        self.header: list[str] = []
        self._handle: IO[bytes] | None = None
        self._reader: Any = None
        self._taken: list[str] = []  # the text lines the reader took for the current record
        self._keep = False  # whether to keep them (records() does)

    @property
    def delimiter_name(self) -> str:
        return DELIMITERS[self.delimiter]

    @property
    def line(self) -> int:
        return int(self._reader.line_num) if self._reader is not None else 0

    def __enter__(self) -> CsvFile:
        try:
            self._handle = self.opener() if self.opener else Path(self.path).open("rb")
        except OSError as exc:
            raise CsvFileError(
                f"{self.path}: cannot read ({exc.strerror}); check the file name"
            ) from None
        except _UNREADABLE_MEMBER as exc:  # a zip's file: encrypted, or packed oddly
            raise CsvFileError(
                f"{self.path}: cannot read it from the zip ({exc}); unpack the zip with "
                "another tool and import the CSV"
            ) from None
        try:
            lines = self._lines(self._handle)
            first = next(lines, "")
            self.delimiter = sniff_delimiter(first)
            self._reader = csv.reader(itertools.chain([first], lines), delimiter=self.delimiter)
            self.header = [name.strip().lower() for name in self._next() or []]
        except BaseException:
            self._handle.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()

    @property
    def rows(self) -> Iterator[list[str]]:
        while (row := self._next()) is not None:
            yield row

    def records(self) -> Iterator[tuple[list[str], str]]:
        """Each row's cells with the row's text as the file holds it, without its line ending."""
        taken = self._taken
        taken.clear()
        self._keep = True
        while (row := self._next()) is not None:
            text = taken[0] if len(taken) == 1 else "".join(taken)
            taken.clear()
            yield row, text.rstrip("\r\n")

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise CsvFileError(
                f"{self.path}:{self.line}: not a readable CSV row ({exc}); fix the file"
            ) from None

    def _lines(self, handle: IO[bytes]) -> Iterator[str]:
        number = 0
        while raw := self._readline(handle, number + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise CsvFileError(
                    f"{self.path}:{number}: a line longer than {MAX_LINE_BYTES:,} bytes; "
                    "this does not look like a subscriber list (a CSV has one person a line)"
                )
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CsvFileError(
                    f"{self.path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                    f"column {exc.start + 1}); save the CSV as UTF-8"
                ) from None
            if self._keep:
                self._taken.append(text)
            yield text

    def _readline(self, handle: IO[bytes], number: int) -> bytes:
        try:
            return handle.readline(MAX_LINE_BYTES + 1)
        except (OSError, *_UNREADABLE_MEMBER) as exc:  # a damaged zip fails its CRC check
            raise CsvFileError(
                f"{self.path}:{number}: cannot read this line ({exc}); the file is damaged, "
                "export it again"
            ) from None


_UNREADABLE_MEMBER = (RuntimeError, NotImplementedError, zipfile.BadZipFile)


def sniff_delimiter(header: str) -> str:
    """The delimiter the header line uses most outside quotes; a comma by default."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
