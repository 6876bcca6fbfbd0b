"""Turning one report message into policy reports: :class:`Reader`.

Who a report is about is read, best first, from the signed VERP return path it
was delivered to, the signed unsubscribe link in the quoted original, or the
report's recipient address; it counts only when digest can tell the message was
its own (the signed return path or link, or the original Message-ID digest gave
that issue and reader).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses
from typing import Any

from sqlalchemy import select

from digest import bounces
from digest.bounces import Outcome, Report
from digest.config import Config
from digest.errors import TokenError
from digest.message import message_id
from digest.send.intake import reports as formats
from digest.store import Store, schema
from digest.subscribers import find_by_email
from digest.tokens import Tokens

_UNSUBSCRIBE_TOKEN = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]+)")
_ISSUE_DAY = re.compile(r"<(\d{4}-\d\d-\d\d)\.[0-9a-f]+@")


@dataclass
class IntakeReport:
    """What one fetch or ingest did: messages read, outcomes and kinds counted."""

    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, results: list[Outcome]) -> None:
        self.messages += 1
        for result in results:
            self.outcomes[result.outcome] += 1
            self.kinds[result.kind] += 1

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "outcomes": dict(self.outcomes),
            "kinds": dict(self.kinds),
            "problems": self.problems,
        }


def address_pattern(template: str) -> re.Pattern[str] | None:
    """A pattern for ``local+{token}@domain`` that captures the token."""
    if "{token}" not in template:
        return None
    local, _, domain = template.rpartition("@")
    before, _, after = local.partition("{token}")
    return re.compile(
        rf"{re.escape(before)}([A-Za-z0-9_.=-]+){re.escape(after)}@{re.escape(domain)}", re.I
    )


class Reader:
    """Reads report messages for one workspace: its templates, keys and store."""

    def __init__(self, store: Store, tokens: Tokens, source: str) -> None:
        self.store = store
        self.config: Config = store.workspace.config
        self.tokens = tokens
        self.source = source
        self.return_path = address_pattern(self.config.bounces.return_path)
        self.mailto = address_pattern(self.config.newsletter.unsubscribe_mailto)

    def process(self, raw: bytes, *, delivered_to: str = "") -> list[Outcome]:
        """Apply the policy to everything one message reports."""
        return [bounces.apply(self.store, report) for report in self.read(raw, delivered_to)]

    def read(self, raw: bytes, delivered_to: str = "") -> list[Report]:
        """The policy reports one message makes (nothing applied yet)."""
        parsed = formats.parse(raw, delivered_to=delivered_to)
        base = {"source": self.source, "raw": raw}
        unsubscriber = self._token(parsed.to, self.mailto, self.tokens.read_mailto)
        if unsubscriber:
            # A message to a reader's own unsubscribe address: whatever it says.
            return [
                Report(
                    kind=bounces.UNSUBSCRIBE,
                    subscriber_id=unsubscriber,
                    proven=True,
                    method="mailto",
                    diagnostic=f"message to the unsubscribe address: {parsed.subject}"[:200],
                    **base,  # type: ignore[arg-type]
                )
            ]
        verp = self._token(parsed.to, self.return_path, self.tokens.read_return_path)
        original = parsed.original
        if not verp and original is not None:
            # A complaint quotes the original, whose Return-Path is our VERP address.
            verp = self._token(
                _addresses(original, ("Return-Path",)),
                self.return_path,
                self.tokens.read_return_path,
            )
        issue, sid = verp if isinstance(verp, tuple) else ("", "")
        linked = self._linked_subscriber(original)
        mid = parsed.original_message_id
        if not issue:
            found = _ISSUE_DAY.search(mid)
            issue = found.group(1) if found else ""
        proven = bool(sid)
        if not sid and linked:
            sid, proven = linked, True
        out: list[Report] = []
        if parsed.form in (formats.OTHER, formats.AUTOREPLY):
            out.append(
                Report(
                    kind=bounces.IGNORED,
                    subscriber_id=sid,
                    issue=issue if sid else "",
                    proven=proven,
                    diagnostic=f"{parsed.form}: {parsed.subject}"[:200],
                    **base,  # type: ignore[arg-type]
                )
            )
            return out
        recipients = parsed.recipients or [formats.Failed("", "failed")]
        if sid and len(recipients) > 1:  # a VERP address names one recipient
            recipients = recipients[:1]
        for index, failed in enumerate(recipients):
            kind, status = self._kind(parsed, failed)
            who = sid
            address = failed.address
            if not who and not address and original is not None:
                address = next(iter(_addresses(original, ("To",))), "")
            is_ours = proven
            if not is_ours and mid:
                who = who or self._by_message_id(mid, address)
                is_ours = bool(who) and self._message_id_matches(mid, who)
            out.append(
                Report(
                    kind=kind,
                    subscriber_id=who,
                    address=address,
                    issue=issue,
                    status=status,
                    diagnostic=failed.diagnostic or parsed.feedback_type or parsed.subject,
                    proven=is_ours,
                    part=f"{index}:{address.lower()}",
                    details={"format": parsed.form},
                    **base,  # type: ignore[arg-type]
                )
            )
        return out

    def _kind(self, parsed: formats.Parsed, failed: formats.Failed) -> tuple[str, str]:
        return formats.kind_of(parsed, failed)

    def _token(
        self, addresses: list[str], pattern: re.Pattern[str] | None, read: Callable[[str], Any]
    ) -> Any:
        if pattern is None:
            return None
        for address in addresses:
            match = pattern.fullmatch(address.strip().strip("<>"))
            if match:
                try:
                    return read(match.group(1))
                except TokenError:
                    continue
        return None

    def _linked_subscriber(self, original: Message | None) -> str:
        """The reader named by the signed unsubscribe link in the quoted original."""
        if original is None:
            return ""
        for value in original.get_all("List-Unsubscribe") or []:
            for token in _UNSUBSCRIBE_TOKEN.findall(" ".join(str(value).split())):
                try:
                    return self.tokens.read_unsubscribe(token)
                except TokenError:
                    continue
        return ""

    def _message_id_matches(self, mid: str, subscriber_id: str) -> bool:
        found = _ISSUE_DAY.search(mid)
        return found is not None and message_id(self.config, found.group(1), subscriber_id) == mid

    def _by_message_id(self, mid: str, address: str) -> str:
        """The reader whose message carried ``mid``: by address, else among the issue's."""
        if address:
            try:
                sub = find_by_email(self.store, address)
            except Exception:  # noqa: BLE001 - a malformed address in a report names nobody
                sub = None
            return sub.id if sub else ""
        found = _ISSUE_DAY.search(mid)
        if found is None:
            return ""
        day = found.group(1)
        deliveries = schema.deliveries
        with self.store.read() as conn:
            ids = conn.execute(
                select(deliveries.c.subscriber_id).where(deliveries.c.issue == day)
            ).scalars()
            for subscriber_id in ids:
                if message_id(self.config, day, subscriber_id) == mid:
                    return str(subscriber_id)
        return ""


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    values = [str(v) for name in names for v in msg.get_all(name) or []]
    return [address for _, address in getaddresses(values) if "@" in address]


def tokens_for(store: Store) -> Tokens:
    """The workspace's token signer: the key that signed the return paths and links."""
    return store.workspace.tokens()


def report_key(*parts: str) -> bytes:
    """The raw bytes standing for a report that is not a message (an SMTP reply, an event)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest().encode("ascii")
