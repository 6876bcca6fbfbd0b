"""The one small interface between a list's file and the import writer.

A :class:`Source` reads one export (a file, or the files of one archive),
checks its header, and yields what each row says, in file order:

* a :class:`Row`: one person with their address, name, status and evidence;
* a :class:`Refused` row: its line and why (a bad address, an impossible
  date), for the report; the rest of the import goes on;
* a :class:`Skipped` row: not a person to import, and not an error (Substack's
  placeholder for an erased account, a Mailchimp contact who never opted in);
* a :class:`Note` about the next row (an opt-out kept despite an unreadable time).

:func:`digest.people.imports.writer.apply` takes them from there, the same for
every tool: keys and duplicates (the stricter state wins), suppressions,
batches, the events and their evidence. The checks every source makes of a
cell (:func:`address`, :func:`ip`, :func:`instant`, :func:`in_range`) are here
too, so that every tool refuses the same things in the same words.

A row's status is ours, whatever the tool called it (``listed_as`` keeps the
tool's word): ``active`` (consent on record), ``pending`` (no evidence of
consent, or never confirmed: not mailed until they confirm), or an opt-out,
which the writer puts on the suppression list: ``unsubscribed``, ``blocked``
(an administrator's block, listmonk's blocklist), ``bounced``, ``complained``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from digest import clock
from digest.addresses import mask, normalise
from digest.errors import ConfigError, SubscriberError
from digest.store import stamp

ACTIVE = "active"
PENDING = "pending"
# An opt-out as a row states it -> the subscriber's status afterwards (never mailed).
OPT_OUTS: dict[str, str] = {
    "unsubscribed": "unsubscribed",
    "blocked": "unsubscribed",
    "bounced": "bounced",
    "complained": "complained",
}
# The stricter state wins when one import names an address twice: an opt-out for good
# (unsubscribed, blocked) over one a reader may lift by confirming again (a bounce, a
# complaint: see digest.people.record.REPORT_REASONS), over pending, over active.
STATUSES = (ACTIVE, PENDING, "bounced", "complained", "unsubscribed", "blocked")
STRICTNESS = {status: rank for rank, status in enumerate(STATUSES)}

EARLIEST = "1990-01-01T00:00:00.000000Z"  # a consent or opt-out time before this is refused


class Row(NamedTuple):
    """One person to import, from line ``line`` of the file (or of ``part`` of an archive)."""

    line: int
    address: str  # normalised (digest.addresses.normalise)
    name: str  # the cell as the file has it, stripped; "" for none
    status: str  # one of STATUSES
    consented_at: str  # a stored UTC stamp (digest.store.stamp); "" for none
    policy: str  # the policy version they agreed to; "" for the import's --policy-version
    evidence: tuple[str, ...]  # the source's own evidence, named by Source.evidence_names
    attributes: tuple[str, ...] = ()  # other columns kept, named by Source.attribute_names
    listed_as: str = ""  # the tool's own word for the status, for the report's table
    left_at: str = ""  # an opt-out's time at the tool, a stored stamp; "" unknown
    part: str = ""  # the file within the archive; "" for a single file
    extra: Mapping[str, Any] | None = None  # attributes that vary by row (a JSON column)


class Refused(NamedTuple):
    """A row that cannot be imported: its line and the reason, for the report."""

    line: int
    reason: str
    listed_as: str = ""
    part: str = ""


class Skipped(NamedTuple):
    """A row that is not a person to import, and not an error."""

    line: int
    reason: str
    listed_as: str = ""
    part: str = ""


class Note(NamedTuple):
    """Something the report should say about a row that is imported all the same."""

    line: int
    text: str
    part: str = ""


Item = Row | Refused | Skipped | Note


@dataclass(frozen=True)
class Policies:
    """What a source checks rows against: the privacy policies a row may name, the one
    for rows that name none, and the import's "now" (a later time is refused)."""

    ids: dict[str, int]  # version -> the policy text's id in the ledger
    default: str | None = None  # --policy-version
    now: str = ""  # a stored stamp; "" for the clock's now

    @property
    def known(self) -> str:
        return ", ".join(sorted(self.ids))

    @property
    def latest(self) -> str:
        return self.now or stamp(clock.now())


class Source(Protocol):
    """Where imported rows come from: one module per tool."""

    tool: str  # "mailchimp", "csv", …: recorded on every imported event
    title: str  # how people write the tool's name: "Mailchimp"
    list_name: str  # the list (audience, publication) at the tool, recorded on every event
    # The names of Row.evidence's values, recorded with the writer's own
    # (consented_at, email, file, line, list, name, policy_version, status, tool,
    # attributes).
    evidence_names: tuple[str, ...]
    # The names of Row.attributes' values, sorted and unique; set by rows(), since
    # they may come from the header. An empty value is not kept.
    attribute_names: tuple[str, ...]

    def rows(self, policies: Policies) -> Iterator[Item]:
        """Check the header at once (a :class:`SubscriberError` naming the file if it will
        not do), then yield the rows in file order, skipping blank lines."""
        ...


def address(raw: str) -> str:
    """A cell's address, normalised, or a :class:`SubscriberError` saying what is wrong."""
    raw = raw.strip()
    if not raw:
        raise SubscriberError("no email address")
    if "\ufffd" in raw:
        raise SubscriberError(
            "the address holds U+FFFD replacement characters (\ufffd): the file lost letters "
            "in a conversion from another encoding; export it again as UTF-8"
        )
    return normalise(raw)


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")  # the common case, without ipaddress


def ip(cell: str, address: str, column: str = "ip") -> str:
    """A cell's IP address (stripped; "" for none), checked."""
    text = cell.strip()
    if text and not _IPV4.fullmatch(text):
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise SubscriberError(
                f"{mask(address)}: {column} {text[:60]!r} is not an IPv4 or IPv6 address"
            ) from None
    return text


_PLAIN_UTC = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\dZ?")


def instant(text: str) -> str:
    """An ISO-8601 time as a stored UTC stamp (a time without a zone is UTC); the common
    ``…Z`` and ``YYYY-MM-DD HH:MM:SS`` forms without strftime.

    A ``ValueError`` or a :class:`~digest.errors.ConfigError` when it is not one.
    """
    if _PLAIN_UTC.fullmatch(text):
        datetime.fromisoformat(text[:19])  # the calendar check (month 13, 30 February)
        return f"{text[:10]}T{text[11:19]}.000000Z"
    return stamp(clock.parse_instant(text).astimezone(UTC))


def in_range(when: str, latest: str, column: str, cell: str) -> str:
    """``when`` (a stored stamp) if it lies between 1990 and ``latest``, else why not."""
    if when > latest:
        raise SubscriberError(f"{column} {cell!r} is in the future")
    if when < EARLIEST:
        raise SubscriberError(f"{column} {cell!r} is before 1990: not a real consent time")
    return when


def moment(cell: str, latest: str, column: str, read: Any = instant) -> str:
    """A cell's time as a stored stamp, checked (1990 to now); "" for an empty cell.

    ``read`` turns the text into a stamp (each tool writes times its own way), or ""
    for a time the tool writes when it has none.
    """
    text = cell.strip()
    if not text:
        return ""
    try:
        when = read(text)
    except (ConfigError, ValueError, OverflowError):
        raise SubscriberError(f"{column} {text[:60]!r} is not a readable time") from None
    return in_range(when, latest, column, text) if when else ""


def attributes(cell: str) -> dict[str, Any]:
    """A cell holding a JSON object (a reader's extra fields); {} when it is empty."""
    text = cell.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise SubscriberError(f"attributes {text[:40]!r} is not a JSON object") from None
    if not isinstance(value, dict):
        raise SubscriberError(f"attributes {text[:40]!r} is not a JSON object")
    return value


def row_hash(text: str) -> str:
    """The SHA-256 of a row's text as the file holds it (without its line ending)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
