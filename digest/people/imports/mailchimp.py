"""Mailchimp's audience export: a zip of one CSV per status.

``members_export_<id>.zip`` (or ``audience_export_<id>.zip``) holds
``subscribed_…csv``, ``unsubscribed_…csv``, ``cleaned_…csv`` and, in newer
exports, ``nonsubscribed_…csv``; the same files unpacked in a folder, or one
of them alone, are read the same way. Which status a file holds comes from its
header (``UNSUB_TIME``: unsubscribed; ``CLEAN_TIME``: cleaned) or its name
(``nonsubscribed_``). The opted-out files are read first, so that an address
that left is suppressed before any other file could add it.

==================  ==========================================================
subscribed          active; pending when neither OPTIN_TIME nor CONFIRM_TIME
                    is there (no evidence of consent)
unsubscribed        suppressed (unsubscribed, at UNSUB_TIME, with UNSUB_REASON);
                    complained when the reason is Mailchimp's "the emails are
                    spam and should be reported"
cleaned             suppressed (bounced, at CLEAN_TIME)
nonsubscribed       skipped: contacts who never opted in (a shop's customers)
==================  ==========================================================

Times (``YYYY-MM-DD HH:MM:SS``, no zone) are UTC, as Mailchimp documents.
The consent time is OPTIN_TIME, else CONFIRM_TIME; both, and both IPs, are
kept as evidence. The name is First Name and Last Name; the merge fields
(the columns before MEMBER_RATING), TAGS and NOTES are kept as attributes.
"""

from __future__ import annotations

from collections.abc import Callable

from digest.people.imports.source import (
    ACTIVE,
    PENDING,
    Row,
    Skipped,
    address,
    ip,
    moment,
    row_hash,
)
from digest.people.imports.tabular import Columns, Export, Part, Reader, normal, soft

SUBSCRIBED, UNSUBSCRIBED, CLEANED, NONSUBSCRIBED = (
    "subscribed",
    "unsubscribed",
    "cleaned",
    "nonsubscribed",
)
ORDER = (CLEANED, UNSUBSCRIBED, SUBSCRIBED, NONSUBSCRIBED)  # opt-outs first
SPAM = "the emails are spam and should be reported"
# Mailchimp's own columns: not merge fields, not kept as attributes.
_SYSTEM = (
    "email_type",
    "member_rating",
    "optin_time",
    "optin_ip",
    "confirm_time",
    "confirm_ip",
)


def status_of(part: Part) -> str:
    """Which status a Mailchimp file holds."""
    names = {normal(h) for h in part.file.header}
    if "unsub_time" in names:
        return UNSUBSCRIBED
    if "clean_time" in names:
        return CLEANED
    base = part.name.rsplit("/", 1)[-1].lower()
    if base.startswith("nonsubscribed"):
        return NONSUBSCRIBED
    return SUBSCRIBED


class MailchimpExport(Export):
    tool = "mailchimp"
    title = "Mailchimp"
    signature = (("email_address",), ("optin_time",), ("confirm_time",))
    evidence_names = (
        "confirm_ip",
        "confirmed_at",
        "listed_as",
        "optin_ip",
        "opted_out_at",
        "part",
        "reason",
        "row_sha256",
    )

    def prepare(self) -> None:
        self.parts.sort(key=lambda part: ORDER.index(status_of(part)))
        names: set[str] = set()
        for part in self.parts:
            names.update(self._kept(Columns(part.file.header)).keys())
        self.attribute_names = tuple(sorted(names))

    @staticmethod
    def _kept(columns: Columns) -> dict[str, int]:
        """The attributes of a header: merge fields (before Mailchimp's own columns), TAGS,
        NOTES; by their header name, lower case."""
        kept: dict[str, int] = {}
        for i, name in enumerate(columns.names):
            if name in _SYSTEM:
                break
            if name not in ("email_address", "first_name", "last_name") and name:
                kept[columns.header[i]] = i
        for name in ("tags", "notes"):
            found = columns.find(name)
            if found is not None:
                kept[columns.header[found]] = found
        return kept

    def reader(self, part: Part, latest: str) -> tuple[Reader, Callable[[list[str]], str]]:
        columns = Columns(part.file.header)
        status = status_of(part)
        at = columns.at
        email, first, last = at("email_address"), at("first_name"), at("last_name")
        optin, optin_ip, confirm, confirm_ip = (
            at("optin_time"),
            at("optin_ip"),
            at("confirm_time"),
            at("confirm_ip"),
        )
        kept_at = self._kept(columns)
        pad = columns.pad
        kept = tuple(kept_at.get(name, pad) for name in self.attribute_names)
        name = part.name
        make = Row._make
        notes = self.notes

        def listed(cells: list[str]) -> str:
            return status

        def subscribed(cells: list[str], line: int, text: str) -> Row:
            found = address(cells[email])
            given, surname = cells[first].strip(), cells[last].strip()
            opted = moment(cells[optin], latest, "OPTIN_TIME")
            confirmed = moment(cells[confirm], latest, "CONFIRM_TIME")
            first_ip = ip(cells[optin_ip], found, "OPTIN_IP")
            second_ip = cells[confirm_ip].strip()
            if second_ip != first_ip:
                ip(second_ip, found, "CONFIRM_IP")
            consented = opted or confirmed
            return make(
                (
                    line,
                    found,
                    f"{given} {surname}" if surname and given else given or surname,
                    ACTIVE if consented else PENDING,
                    consented,
                    "",
                    (second_ip, confirmed, status, first_ip, "", name, "", row_hash(text)),
                    tuple([cells[i] for i in kept]) if kept else (),
                    status,
                    "",
                    name,
                    None,
                )
            )

        if status == SUBSCRIBED:
            return subscribed, listed
        if status == NONSUBSCRIBED:

            def never(cells: list[str], line: int, text: str) -> Skipped:
                return Skipped(
                    line,
                    "a contact who never opted in (non-subscribed): not imported",
                    status,
                    name,
                )

            return never, listed
        left = at("unsub_time") if status == UNSUBSCRIBED else at("clean_time")
        left_column = "UNSUB_TIME" if status == UNSUBSCRIBED else "CLEAN_TIME"
        why, other, campaign = (
            at("unsub_reason"),
            at("unsub_reason_other"),
            at("clean_campaign_title"),
        )

        def opted_out(cells: list[str], line: int, text: str) -> Row:
            found = address(cells[email])
            given, surname = cells[first].strip(), cells[last].strip()

            def keep(what: str, read: Callable[[], str]) -> str:
                return soft(notes, line, name, what, read)

            opted = keep("kept without it", lambda: moment(cells[optin], latest, "OPTIN_TIME"))
            confirmed = keep(
                "kept without it", lambda: moment(cells[confirm], latest, "CONFIRM_TIME")
            )
            first_ip = keep("kept without it", lambda: ip(cells[optin_ip], found, "OPTIN_IP"))
            second_ip = keep("kept without it", lambda: ip(cells[confirm_ip], found, "CONFIRM_IP"))
            when = keep(
                "suppressed all the same, as of the import",
                lambda: moment(cells[left], latest, left_column),
            )
            if status == UNSUBSCRIBED:
                reason = cells[why].strip()
                if cells[other].strip():
                    reason = f"{reason}: {cells[other].strip()}" if reason else cells[other].strip()
                outcome = "complained" if reason.lower() == SPAM else "unsubscribed"
            else:
                title = cells[campaign].strip()
                reason = f"cleaned after {title}" if title else "cleaned"
                outcome = "bounced"
            return make(
                (
                    line,
                    found,
                    f"{given} {surname}" if surname and given else given or surname,
                    outcome,
                    opted or confirmed,
                    "",
                    (second_ip, confirmed, status, first_ip, when, name, reason, row_hash(text)),
                    tuple([cells[i] for i in kept]) if kept else (),
                    status,
                    when,
                    name,
                    None,
                )
            )

        return opted_out, listed
