"""The one small interface between a list's file and the import writer.

A :class:`Source` reads one export, checks its header, and yields each row
as a :class:`Row` (what to record) or a :class:`Refused` (which line, and
why), in file order. :func:`digest.people.imports.writer.apply` takes them
from there, the same for every tool: keys and duplicates, suppressions,
batches, the events and their evidence. The checks every source makes of
a cell (:func:`address`, :func:`ip`, :func:`instant`) are here too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from digest import clock
from digest.addresses import mask, normalise
from digest.errors import SubscriberError
from digest.store import stamp


class Row(NamedTuple):
    """One person to import, from line ``line`` of the file."""

    line: int
    address: str  # normalised (digest.addresses.normalise)
    name: str  # the cell as the file has it, stripped; "" for none
    status: str  # "active": consent held (the only status the writer takes yet)
    consented_at: str  # a stored UTC stamp (digest.store.stamp)
    policy: str  # the policy version they agreed to; "" for the import's --policy-version
    evidence: tuple[str, ...]  # the source's own evidence, named by Source.evidence_names
    attributes: tuple[str, ...] = ()  # other columns kept, named by Source.attribute_names


class Refused(NamedTuple):
    """A row that cannot be imported: its line and the reason, for the report."""

    line: int
    reason: str


@dataclass(frozen=True)
class Policies:
    """The privacy policies a row may name, and the one for rows that name none."""

    ids: dict[str, int]  # version -> the policy text's id in the ledger
    default: str | None = None  # --policy-version

    @property
    def known(self) -> str:
        return ", ".join(sorted(self.ids))


class Source(Protocol):
    """Where imported rows come from: one module per tool."""

    # The names of Row.evidence's values, recorded with the writer's own
    # (consented_at, email, file, line, name, policy_version, attributes).
    evidence_names: tuple[str, ...]
    # The names of Row.attributes' values, sorted and unique; set by rows(), since
    # they may come from the header. An empty value is not kept.
    attribute_names: tuple[str, ...]

    def rows(self, policies: Policies) -> Iterator[Row | Refused]:
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


def ip(cell: str, address: str) -> str:
    """A cell's IP address (stripped; "" for none), checked."""
    text = cell.strip()
    if text:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise SubscriberError(
                f"{mask(address)}: ip {text[:60]!r} is not an IPv4 or IPv6 address"
            ) from None
    return text


_PLAIN_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def instant(text: str) -> str:
    """An ISO-8601 time as a stored UTC stamp; the common ``…Z`` form without strftime.

    A ``ValueError`` or a :class:`~digest.errors.ConfigError` when it is not one.
    """
    if _PLAIN_UTC.fullmatch(text):
        datetime.fromisoformat(text[:19])  # the calendar check (month 13, 30 February)
        return text[:19] + ".000000Z"
    return stamp(clock.parse_instant(text).astimezone(UTC))
