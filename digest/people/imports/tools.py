"""Importing an export as its tool hands it over: ``digest subscribers import [--from TOOL] PATH``.

PATH is a CSV file, a zip of CSV files (Mailchimp's audience export,
Substack's export) or a folder of them. Without ``--from`` the tool is
recognised from the header: a CSV of our own columns (``email``,
``consented_at``) first, then the tool whose identifying columns are all
there (the most specific one when several are). A header that matches none
is refused with the tools it almost matches and the columns it lacks; nothing
is guessed, since a wrong guess could miss the column that says who opted
out.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from digest.csvfile import CsvFile
from digest.errors import CsvFileError, SubscriberError
from digest.people.imports import generic
from digest.people.imports.buttondown import ButtondownExport
from digest.people.imports.ghost import GhostExport
from digest.people.imports.kit import KitExport
from digest.people.imports.listmonk import ListmonkExport
from digest.people.imports.mailchimp import MailchimpExport
from digest.people.imports.substack import SubstackExport
from digest.people.imports.tabular import Export, Part, normal
from digest.people.imports.writer import ImportReport, apply
from digest.store import Store

TOOLS: dict[str, type[Export]] = {
    cls.tool: cls
    for cls in (
        MailchimpExport,
        SubstackExport,
        ListmonkExport,
        GhostExport,
        ButtondownExport,
        KitExport,
    )
}
CHOICES = (*TOOLS, "csv")
MAX_STATEMENT = 64 * 1024
_OWN = ("email", "consented_at")  # what a CSV of our own columns must have


def import_file(
    store: Store,
    path: Path,
    *,
    tool: str | None = None,
    mapping: Sequence[str] = (),
    list_name: str | None = None,
    statement_file: Path | None = None,
    policy_version: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import ``path`` as ``tool`` exported it (recognised from the header when None)."""
    if tool is not None and tool not in CHOICES:
        raise SubscriberError(f"--from {tool!r}: pick one of {', '.join(CHOICES)}")
    if mapping and tool not in (None, "csv"):
        raise SubscriberError(
            f"--map goes with a CSV of your own columns, not with --from {tool}: "
            f"digest reads {TOOLS[tool].title}'s columns itself"
        )
    statement = read_statement(statement_file) if statement_file is not None else None
    if not path.exists():
        raise SubscriberError(f"{path}: no such file or folder")
    try:
        with ExitStack() as stack:
            parts = _open(path, stack)
            cls, detected = _which(path, parts, tool, mapping)
            rows: Export
            if cls is None:
                part = parts[0]  # _which refused several
                report = ImportReport(str(path), dry_run=dry_run, detected=detected)
                report.delimiter = part.file.delimiter_name
                rows = generic.CsvRows(part.file, str(path), mapping, list_name or path.name)
            else:
                if cls is SubstackExport:
                    parts = [p for p in parts if _is_email_list(p)] or parts
                chosen = list_name or default_list(cls, path, parts)
                if policy_version is None:  # the policy in force, unless they name an older one
                    policy_version = store.workspace.config.privacy.policy_version
                rows = cls(str(path), parts, chosen)
                report = ImportReport(str(path), dry_run=dry_run, detected=detected)
                report.delimiter = rows.delimiter
            apply(
                store,
                rows,
                report,
                label=path.name,
                policy_version=policy_version,
                statement=statement,
            )
    except CsvFileError as exc:
        raise SubscriberError(str(exc)) from None
    return report


def read_statement(path: Path) -> str:
    """The exact wording of the old sign-up form, from ``--statement-file``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubscriberError(f"{path}: cannot read the statement ({exc.strerror})") from None
    if len(data) > MAX_STATEMENT:
        raise SubscriberError(
            f"{path}: {len(data):,} bytes; a consent statement is the few sentences the form "
            f"showed (at most {MAX_STATEMENT:,} bytes)"
        )
    try:
        text = data.decode("utf-8").removeprefix("\ufeff").strip()
    except UnicodeDecodeError:
        raise SubscriberError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    if not text:
        raise SubscriberError(f"{path}: empty; write the wording the old form showed")
    return text


def default_list(cls: type[Export], path: Path, parts: list[Part]) -> str:
    """The list's name when --list gives none: Substack's publication, else the file's."""
    if cls is SubstackExport:
        for part in parts:
            base = Path(part.name or path.name).name
            if _is_email_list(part) and base.count(".") >= 2:
                return base.split(".", 1)[1].rsplit(".", 1)[0]
    return path.stem if path.is_file() else path.name


def _is_email_list(part: Part) -> bool:
    base = Path(part.name or str(part.file.path)).name.lower()
    return base.startswith("email_list") and base.endswith(".csv")


def _open(path: Path, stack: ExitStack) -> list[Part]:
    """The CSV parts of ``path``, each open with its header read."""
    if path.is_dir():
        names = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not names:
            raise SubscriberError(f"{path}: a folder without CSV files; name the export's file")
        return [Part(p.name, stack.enter_context(CsvFile(p))) for p in names]
    if zipfile.is_zipfile(path):
        try:
            archive = stack.enter_context(zipfile.ZipFile(path))
            members = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir()
                and info.filename.lower().endswith(".csv")
                and not info.filename.startswith("__MACOSX/")
            ]
        except (zipfile.BadZipFile, OSError) as exc:
            raise SubscriberError(f"{path}: cannot read the zip ({exc})") from None
        if not members:
            raise SubscriberError(f"{path}: a zip without CSV files; is it the right export?")
        return [
            Part(
                member,
                stack.enter_context(CsvFile(f"{path}/{member}", opener=_member(archive, member))),
            )
            for member in sorted(members)
        ]
    return [Part("", stack.enter_context(CsvFile(path)))]


def _member(archive: zipfile.ZipFile, member: str) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(member)


def _which(
    path: Path, parts: list[Part], tool: str | None, mapping: Sequence[str]
) -> tuple[type[Export] | None, bool]:
    """The tool to read ``parts`` as (None: our own columns), and whether it was recognised."""
    if tool == "csv" or (tool is None and mapping):
        if len(parts) > 1:
            raise SubscriberError(
                f"{path}: {len(parts)} CSV files; a CSV of your own columns is one file"
            )
        return None, False
    if tool is not None:
        cls = TOOLS[tool]
        for part in parts if cls is not SubstackExport else parts[:1]:
            missing = cls.lacks(part.file.header)
            known, hint = _recognise(part.file.header)
            if missing and known and hint is not cls:
                raise SubscriberError(
                    f"{_where(path, part)}:1: this looks like {_named(hint)} export, not "
                    f"{cls.title}'s: its header lacks {', '.join(missing)}; "
                    f"use --from {_flag(hint)}"
                )
        return cls, False
    if len(parts) > 1 and any(_is_email_list(part) for part in parts):
        return SubstackExport, True
    found: set[type[Export] | None] = set()
    for part in parts:
        known, which = _recognise(part.file.header)
        if not known:
            if len(parts) == 1 and not _near(part.file.header):
                return None, False  # like nothing known: our own columns say what is missing
            raise SubscriberError(_unknown(path, part))
        found.add(which)
    if len(found) > 1 or (None in found and len(parts) > 1):
        raise SubscriberError(
            f"{path}: its files are not one export ({', '.join(sorted(map(_named, found)))}); "
            "import them one by one"
        )
    return found.pop(), True


def _where(path: Path, part: Part) -> str:
    return f"{path}/{part.name}" if part.name else str(path)


def _recognise(header: list[str]) -> tuple[bool, type[Export] | None]:
    """Whether this header is an export digest knows, and whose (None: our own columns)."""
    names = {normal(h) for h in header}
    if all(column in names for column in _OWN):
        return True, None
    complete = [cls for cls in TOOLS.values() if not cls.lacks(header) and not cls.unmarked(header)]
    if not complete:
        return False, None
    return True, max(complete, key=lambda cls: len(cls.signature))


def _named(cls: type[Export] | None) -> str:
    return "a CSV of digest's own columns" if cls is None else f"a {cls.title}"


def _flag(cls: type[Export] | None) -> str:
    return "csv" if cls is None else cls.tool


def _near(header: list[str]) -> list[str]:
    """The exports a header almost is (half its identifying columns or more), nearest first,
    each with the columns it lacks."""
    names = {normal(h) for h in header}
    near: list[tuple[int, int, str]] = []  # (columns lacking, -columns present, what to say)
    for cls in TOOLS.values():
        missing = cls.lacks(header)
        present = len(cls.signature) - len(missing)
        if cls.unmarked(header):
            missing.append(" or ".join(cls.marks))
        if present and present >= len(cls.signature) / 2:
            near.append((len(missing), -present, f"{cls.title} (lacks {', '.join(missing)})"))
    if "email" in names:
        missing = [c for c in _OWN if c not in names]
        present = len(_OWN) - len(missing)
        near.append((len(missing), -present, f"digest's own CSV (lacks {', '.join(missing)})"))
    return [text for _, _, text in sorted(near)]


def _unknown(path: Path, part: Part) -> str:
    """What to say of a header that matches no tool: the nearest ones and what they lack."""
    found = ", ".join(repr(h) for h in part.file.header if h) or "none"
    almost = "; ".join(_near(part.file.header))
    return (
        f"{_where(path, part)}:1: the header ({found}) is no export digest knows: it almost "
        f"matches {almost}. Name the tool with --from TOOL, or map your columns: "
        "--map 'Their Column=email' --map 'Their Date=consented_at'"
    )
