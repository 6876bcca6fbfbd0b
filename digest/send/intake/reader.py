"""Turning one report message into policy reports: :class:`Reader`.

A report changes a reader only with proof that the message was digest's AND that
this reader was its recipient:

* the signed VERP return path it came back to (or, in an abuse report, its
  ``Original-Mail-From``), which names one message to one reader; or
* the keyed Message-ID digest gave the message (or the signed unsubscribe link it
  carried), *together with* a failed recipient or ``Original-Rcpt-To`` whose
  address is that reader's. A forwarded copy quotes the same id or link for
  someone else, so the id alone names nobody.

Anything else is recorded as ``not ours`` (a known address) or ``unknown``.
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

from digest import bounces
from digest.bounces import Outcome, Report
from digest.config import Config
from digest.errors import DigestError, StoreError, TokenError
from digest.message import read_message_id
from digest.people.record import find_by_email
from digest.send.intake import reports as formats
from digest.store import Store
from digest.tokens import Tokens

_UNSUBSCRIBE_TOKEN = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]+)")


@dataclass
class IntakeReport:
    """What one fetch or ingest did: messages read, outcomes and kinds counted."""

    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # messages refused unread, and why

    def add(self, results: list[Outcome]) -> None:
        self.messages += 1
        for result in results:
            self.outcomes[result.outcome] += 1
            self.kinds[result.kind] += 1

    @property
    def refused(self) -> int:
        return self.outcomes[bounces.REFUSED]

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "outcomes": dict(self.outcomes),
            "kinds": dict(self.kinds),
            "problems": self.problems,
            "refused": self.refusals,
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

    def take(self, report: IntakeReport, where: str, raw: bytes, *, delivered_to: str = "") -> bool:
        """Apply one message and count it; False when it was refused, unread.

        A message over the limits, or one that breaks the reader, is recorded as
        refused and the run goes on; the database failing (a StoreError) stops it.
        """
        try:
            outcomes = self.process(raw, delivered_to=delivered_to)
        except formats.Unreadable as exc:
            self.refuse(report, where, hashlib.sha256(raw).hexdigest(), str(exc))
            return False
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a poison message must not stop the run
            reason = f"it could not be read ({type(exc).__name__})"
            self.refuse(report, where, hashlib.sha256(raw).hexdigest(), reason)
            return False
        report.add(outcomes)
        return True

    def refuse(self, report: IntakeReport, where: str, digest: str, reason: str) -> None:
        """Record and count a message refused unread."""
        report.add([bounces.record_refused(self.store, self.source, digest, reason)])
        report.refusals.append(f"{where}: {reason}")

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
        if not verp:
            # A complaint carries our envelope sender in Original-Mail-From, or quotes the
            # original, whose Return-Path is our VERP address.
            quoted = _addresses(original, ("Return-Path",)) if original is not None else []
            verp = self._token(
                [parsed.original_from, *quoted], self.return_path, self.tokens.read_return_path
            )
        issue, sid = verp if isinstance(verp, tuple) else ("", "")
        # Keyed proofs that name a reader, but not that this reader was the recipient:
        # the Message-ID digest gave the message, the signed unsubscribe link it carried.
        named = read_message_id(self.config, self.tokens, parsed.original_message_id)
        day, named_sid = named if named else ("", "")
        if day == "confirm":
            day = ""  # the confirmation email: no issue
        claimed = {who for who in (named_sid, self._linked_subscriber(original)) if who}
        if parsed.form in (formats.OTHER, formats.AUTOREPLY):
            return [
                Report(
                    kind=bounces.IGNORED,
                    subscriber_id=sid,
                    issue=issue if sid else "",
                    proven=bool(sid),
                    diagnostic=f"{parsed.form}: {parsed.subject}"[:200],
                    **base,  # type: ignore[arg-type]
                )
            ]
        recipients = parsed.recipients or [formats.Failed("", "failed")]
        if sid and len(recipients) > 1:  # a VERP address names one recipient
            recipients = recipients[:1]
        out: list[Report] = []
        for index, failed in enumerate(recipients):
            kind, status = self._kind(parsed, failed)
            who, proven = sid, bool(sid)
            if not who and claimed and failed.address:
                # The report names a failed recipient (or Original-Rcpt-To) that must be
                # the reader the keyed id or link names: a forwarded copy names another.
                owner = self._owner(failed.address)
                if owner in claimed:
                    who, proven = owner, True
            out.append(
                Report(
                    kind=kind,
                    subscriber_id=who,
                    address=failed.address,
                    issue=issue or (day if proven else ""),
                    status=status,
                    diagnostic=failed.diagnostic or parsed.feedback_type or parsed.subject,
                    proven=proven,
                    part=f"{index}:{failed.address.lower()}",
                    details={"format": parsed.form},
                    **base,  # type: ignore[arg-type]
                )
            )
        return out

    def _owner(self, address: str) -> str:
        """The id of the reader with this address, if any."""
        try:
            sub = find_by_email(self.store, address)
        except DigestError:  # a malformed address in a report names nobody
            return ""
        return sub.id if sub else ""

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


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    values = [str(v) for name in names for v in msg.get_all(name) or []]
    return [address for _, address in getaddresses(values) if "@" in address]


def tokens_for(store: Store) -> Tokens:
    """The workspace's token signer: the key that signed the return paths and links."""
    return store.workspace.tokens()


def report_key(*parts: str) -> bytes:
    """The raw bytes standing for a report that is not a message (an SMTP reply, an event)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest().encode("ascii")
