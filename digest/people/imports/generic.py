"""A CSV of our own columns: ``digest subscribers import FILE.csv``.

The header names ``email``, ``consented_at`` and ``policy_version`` (or the
import gives ``--policy-version``), and optionally ``name``, ``source``,
``ip``, ``status``, ``confirmed_at``, ``confirm_ip``, ``opted_out_at``,
``reason`` and ``attributes`` (a JSON object); ``id`` and ``created_at`` (of
a list digest exported) are kept as evidence, and any other column as an
attribute. ``--map "Their Column=email"`` renames a column first, so any CSV
will do. The file is read by :class:`~digest.csvfile.CsvFile` (any
delimiter, UTF-8, bounded lines) a row at a time.

A ``status`` column is read, never kept as an attribute: an address that
opted out (``unsubscribed``, ``bounced``, ``complained``, ``blocklisted``…)
is suppressed, never imported as a reader. A row without a consent time is
imported as pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from digest.addresses import mask
from digest.csvfile import CsvFile
from digest.errors import ConfigError, CsvFileError, SubscriberError
from digest.people.imports.source import (
    ACTIVE,
    PENDING,
    Item,
    Policies,
    Row,
    address,
    attributes,
    in_range,
    instant,
    ip,
    moment,
    row_hash,
)
from digest.people.imports.tabular import Export, Part, Reader, soft
from digest.people.imports.writer import ImportReport, apply
from digest.store import Store

REQUIRED = ("email", "consented_at", "policy_version")
KNOWN = ("email", "name", "consented_at", "source", "policy_version", "ip")
# Read when present, never kept as attributes.
OPTIONAL = (
    "status",
    "confirmed_at",
    "confirm_ip",
    "opted_out_at",
    "reason",
    "attributes",
    "id",
    "created_at",
)
# A status cell (lower case) -> the row's status. An empty cell: active (pending without consent).
STATUS_WORDS = {
    **dict.fromkeys(("", "active", "subscribed", "enabled", "confirmed"), ACTIVE),
    **dict.fromkeys(("pending", "unconfirmed", "inactive", "unactivated"), PENDING),
    **dict.fromkeys(("unsubscribed", "cancelled", "opted_out", "opted-out"), "unsubscribed"),
    **dict.fromkeys(("bounced", "cleaned", "undeliverable"), "bounced"),
    **dict.fromkeys(("complained", "spam"), "complained"),
    **dict.fromkeys(
        ("blocked", "blocklisted", "blacklisted", "disabled", "removed", "suppressed", "erased"),
        "blocked",
    ),
}


def import_csv(
    store: Store,
    path: Path,
    *,
    dry_run: bool = False,
    source: str | None = None,
    policy_version: str | None = None,
    mapping: Sequence[str] = (),
    statement: str | None = None,
    list_name: str | None = None,
) -> ImportReport:
    """Import subscribers who consented elsewhere.

    Every bad row (invalid address, unreadable, future or pre-1990 consent
    date, unknown policy version) is reported with its line number and
    left out; the rest goes in. Duplicates in the file and
    against the store are merged (see
    :func:`~digest.people.imports.writer.apply`). ``policy_version`` stands
    in for a missing ``policy_version`` column (and for empty cells of one);
    ``mapping`` holds ``--map`` options (``Their Column=email``).
    """
    report = ImportReport(str(path), dry_run=dry_run)
    try:
        with CsvFile(path) as file:
            report.delimiter = file.delimiter_name
            label = source or path.name
            rows = CsvRows(file, report.path, mapping, list_name or path.name)
            apply(
                store,
                rows,
                report,
                label=label,
                policy_version=policy_version,
                statement=statement,
            )
    except CsvFileError as exc:
        raise SubscriberError(str(exc)) from None
    return report


def parse_mapping(header: list[str], mapping: Sequence[str], where: str) -> list[str]:
    """The header with ``--map "Their Column=our_name"`` applied (names compared in lower case)."""
    renamed = list(header)
    targets: dict[str, str] = {}
    for option in mapping:
        theirs, equals, ours = option.partition("=")
        theirs, ours = theirs.strip().lower(), ours.strip().lower()
        if not equals or not theirs or not ours:
            raise SubscriberError(
                f"--map {option!r}: write THEIR COLUMN=OUR NAME, e.g. --map 'Email Address=email'"
            )
        if theirs not in header:
            found = ", ".join(repr(h) for h in header if h) or "none"
            raise SubscriberError(
                f"{where}:1: --map {option!r}: the header has no column {theirs!r} (it has {found})"
            )
        if ours in targets:
            raise SubscriberError(
                f"--map: both {targets[ours]!r} and {theirs!r} are mapped to {ours!r}; map one"
            )
        targets[ours] = theirs
        renamed[header.index(theirs)] = ours
    for ours, theirs in targets.items():
        for i, name in enumerate(renamed):
            if name == ours and header[i] != theirs:  # their own column of that name gives way
                renamed[i] = f"{name} (unmapped)"
    return renamed


class CsvRows(Export):
    """The rows of an open :class:`CsvFile` with our own columns (a :class:`Source`)."""

    tool = "csv"
    title = "CSV"

    def __init__(
        self, file: CsvFile, path: str, mapping: Sequence[str] = (), list_name: str = ""
    ) -> None:
        super().__init__(path, [Part("", file)], list_name or Path(path).name)
        self.file = file
        self.path = path
        self.mapping = tuple(mapping)
        self.evidence_names: tuple[str, ...] = ()
        self._header: list[str] = []

    def rows(self, policies: Policies) -> Iterator[Item]:
        header = self._checked(policies)
        self._header = header
        present = set(header)
        extras = {name: i for i, name in enumerate(header) if name and name not in _NOT_KEPT}
        self.attribute_names = tuple(sorted(extras))
        optional = [
            n for n in ("confirm_ip", "confirmed_at", "opted_out_at", "reason") if n in present
        ]
        self.evidence_names = (
            "ip",
            "source",
            *optional,
            *(["created_at"] if "created_at" in present else []),
            *(["listed_as"] if "status" in present else []),
            "row_sha256",
            *(["source_id"] if "id" in present else []),
        )
        return self._read(policies)

    def _checked(self, policies: Policies) -> list[str]:
        header = parse_mapping(self.file.header, self.mapping, self.path)
        known = policies.known
        if "email" not in header:
            found = ", ".join(repr(h) for h in header if h) or "none"
            raise SubscriberError(
                f"{self.path}:1: no `email` column; read with a {self.file.delimiter_name} as "
                f"the delimiter, the header has the columns {found}; expected {', '.join(KNOWN)} "
                "(others are kept as attributes): name yours with --map 'Their Column=email', "
                "or the tool that exported the file with --from"
            )
        needed = [n for n in REQUIRED if n not in header]
        if policies.default is not None and "policy_version" in needed:
            needed.remove("policy_version")
        if needed:
            way = (
                f"; add the column, or pass --policy-version V (known: {known})"
                if needed == ["policy_version"]
                else "; name yours with --map 'Their Column=consented_at'"
            )
            raise SubscriberError(
                f"{self.path}:1: the header lacks {', '.join(needed)}; "
                f"expected columns {', '.join(KNOWN)} (others are kept as attributes){way}"
            )
        return header

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        header = self._header
        pad = len(header)
        where = {name: header.index(name) if name in header else pad for name in _NOT_KEPT}
        extras = {name: i for i, name in enumerate(header) if name and name not in _NOT_KEPT}
        kept = tuple(extras[name] for name in self.attribute_names)
        email, name_at, consented_at, source, policy_at, ip_at = (
            where[n] for n in ("email", "name", "consented_at", "source", "policy_version", "ip")
        )
        status_at, attributes_at = where["status"], where["attributes"]
        optional = [where[n] for n in self.evidence_names[2:] if n in where and n != "created_at"]
        opt_in = self.evidence_names
        has_status = "listed_as" in opt_in
        tail = [where["created_at"]] if "created_at" in opt_in else []
        ident = [where["id"]] if "source_id" in opt_in else []
        left_at = where["opted_out_at"]
        confirmed_at, confirm_ip = where["confirmed_at"], where["confirm_ip"]
        notes = self.notes
        make = Row._make
        plain = not has_status and attributes_at == pad and not optional and not tail and not ident

        def listed(cells: list[str]) -> str:
            return cells[status_at].strip().lower() if has_status else ""

        def fast(cells: list[str], line: int, text: str) -> Row:
            """Our own columns and nothing more: the common case, kept short."""
            found = address(cells[email])
            given_ip = ip(cells[ip_at], found)
            consented = _consent(cells[consented_at], found, latest)
            return make(
                (
                    line,
                    found,
                    cells[name_at].strip(),
                    ACTIVE if consented else PENDING,
                    consented,
                    cells[policy_at].strip(),
                    (given_ip, cells[source].strip(), row_hash(text)),
                    tuple([cells[i] for i in kept]) if kept else (),
                    "",
                    "",
                    "",
                    None,
                )
            )

        def full(cells: list[str], line: int, text: str) -> Row:
            word = cells[status_at].strip().lower()
            status = STATUS_WORDS.get(word)
            if status is None:
                raise SubscriberError(
                    f"status {word[:40]!r} is not one digest reads (active, pending, "
                    "unsubscribed, bounced, complained, blocked, and their usual synonyms)"
                )
            found = address(cells[email])
            opted_out = status not in (ACTIVE, PENDING)

            def keep(what: str, read: Callable[[], Any]) -> Any:
                return soft(notes, line, "", what, read) if opted_out else read()

            given_ip = keep("kept without it", lambda: ip(cells[ip_at], found))
            consented = keep(
                "kept without it", lambda: _consent(cells[consented_at], found, latest)
            )
            if status == ACTIVE and not consented:
                status = PENDING
            confirmed = keep(
                "kept without it", lambda: moment(cells[confirmed_at], latest, "confirmed_at")
            )
            keep("kept without it", lambda: ip(cells[confirm_ip], found, "confirm_ip"))
            left = ""
            if opted_out:
                left = soft(
                    notes,
                    line,
                    "",
                    "suppressed all the same, as of the import",
                    lambda: moment(cells[left_at], latest, "opted_out_at"),
                )
            extra = keep("kept without them", lambda: attributes(cells[attributes_at])) or None
            values = {confirmed_at: confirmed, left_at: left}
            evidence = (
                given_ip,
                cells[source].strip(),
                *[values.get(i, cells[i].strip()) for i in optional],
                *[cells[i].strip() for i in tail],
                *([word] if has_status else []),
                row_hash(text),
                *[cells[i].strip() for i in ident],
            )
            return make(
                (
                    line,
                    found,
                    cells[name_at].strip(),
                    status,
                    consented,
                    cells[policy_at].strip(),
                    evidence,
                    tuple([cells[i] for i in kept]) if kept else (),
                    word,
                    left,
                    "",
                    extra,
                )
            )

        return (fast if plain else full), listed


_NOT_KEPT = (*KNOWN, *OPTIONAL)


def _consent(cell: str, found: str, latest: str) -> str:
    when = cell.strip()
    if not when:
        return ""
    try:
        consented = instant(when)
    except (ConfigError, ValueError, OverflowError):
        raise SubscriberError(
            f"consented_at {when!r} is not an ISO-8601 time (write e.g. 2026-10-02T08:15:00Z)"
        ) from None
    return in_range(consented, latest, f"{mask(found)}: consented_at", when)


__all__ = ["CsvRows", "import_csv", "parse_mapping"]
