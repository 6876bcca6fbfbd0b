"""Reading report messages: what a bounce, complaint or unsubscribe email says.

Python's ``email`` package does the MIME; this module only reads the fields of
the report formats:

* RFC 3464 delivery status notifications (a ``message/delivery-status`` part): per
  recipient, ``Action``, ``Status``, ``Final-Recipient`` (or ``Original-Recipient``)
  and ``Diagnostic-Code``, and the SMTP command the refusal answered when the report
  shows it. Only ``failed`` recipients are bounces; ``delayed``, ``delivered``,
  ``relayed`` and ``expanded`` are notices.
* RFC 5965 abuse reports (``message/feedback-report``): ``Feedback-Type`` (abuse and
  fraud are complaints, opt-out an unsubscribe, anything else or nothing changes
  nobody), ``Original-Rcpt-To``, ``Original-Mail-From``, and the original message or
  its headers.
* Bounces without a report part (a text from MAILER-DAEMON quoting the server's reply,
  with the original message attached or pasted below): the failed addresses
  (``X-Failed-Recipients`` first) and what the text says around each.
  ``X-Failed-Recipients`` and the usual bounce layouts win over ``Auto-Submitted``.
* Auto-replies (RFC 3834 ``Auto-Submitted``, vacation notices) are recognised
  and ignored.
* The layouts of a few mail systems (fml, Apache James), and which system wrote a
  report when its words mean something of their own: :mod:`.layouts`.

A message over :data:`MAX_REPORT_BYTES` or with more than :data:`MAX_PARTS` MIME
parts raises :class:`Unreadable` before it is parsed; parts are walked without
recursion, and every pattern has bounded repeats (linear on hostile input).

Nothing here touches the database: :func:`parse` returns the facts, and
:mod:`digest.send.intake.reader` finds the reader and :mod:`digest.bounces` applies the policy.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from html import unescape

from digest.bounce_rules import classify, command_of, report_wide
from digest.errors import DigestError
from digest.send.intake import layouts

DSN = "dsn"
ARF = "arf"
PLAIN_BOUNCE = "plain bounce"
AUTOREPLY = "auto-reply"
OTHER = "other"

# RFC 5965 3.1 feedback types: abuse and fraud are complaints, opt-out an unsubscribe;
# auth-failure, not-spam, virus and other say nothing about the reader's wish.
COMPLAINT_TYPES = ("abuse", "fraud")
UNSUBSCRIBE_TYPES = ("opt-out", "opt-out-list")

# Limits on what one report may be: larger or deeper is refused, unread.
MAX_REPORT_BYTES = 4 * 1024 * 1024
MAX_PARTS = 64  # MIME parts (a bounce has three or four, a quoted newsletter a few more)
# Lines (a bounce quoting a whole 4 MB message in base64 has 55,000): the standard
# library's parser spends about 14 µs on each, so a megabyte of empty lines would cost
# seconds before any rule ran.
MAX_LINES = 100_000

# Headers that may name the address a message was delivered to, best first.
DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")

_PERMANENT_REPLY = re.compile(r"(?<!\d)5\d\d[ -]{1,3}5\.\d{1,3}\.\d{1,3}(?![\d.])")
_TAG = re.compile(r"<[^<>]{0,2000}>")
_QUOTED_HEADER = re.compile(
    r"[ \t]{0,8}(to|from|cc|reply-to|sender|return-path|subject|date|sent)[ \t]{0,8}:", re.I
)
_ID_VALUE = re.compile(r"message-id:[ \t]{0,8}<([^>\s]{1,250})>", re.I)
# Bounded repeats: no pattern here backtracks further than a few hundred characters.
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
# A pasted "Message-ID:" header, its value on the same line or folded onto the next.
_MESSAGE_ID = re.compile(
    r"^[ \t]{0,8}Message-ID:[ \t]{0,8}(?:\r?\n[ \t]{1,8})?(<[^>\s]{1,250}>)", re.I | re.M
)
_BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery (system|subsystem)", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed)|"
    r"returned mail|failure notice|mail delivery failed|could not be delivered|"
    r"delivery incomplete|delivery notification|nondeliverable|non-delivery|"
    r"delivery (problem|error)|not delivered|returned to sender|mail failure|"
    r"error sending your (mail|message)",
    re.I,
)
# What the usual bounce layouts say in their first lines, whatever the subject.
_BOUNCE_BODY = re.compile(
    r"did not reach (the following|some or all)|could not be delivered to|"
    r"delivery (to the following|has failed)|following (address|recipient)\S* failed|"
    r"permanent (error|fatal errors)|was not delivered to|unable to deliver|"
    r"message could not be delivered|undeliverable|delivery failure|"
    r"trouble delivering|rejected recipient|could not deliver",
    re.I,
)
# Lines after which a bounce pastes the copy of the message it returns.
_COPY_PHRASES = (
    "below this line",
    "original message",
    "copy of the message",
    "returned message",
    "returned mail",
    "headers of",
    "message headers",
    "unsent message",
)
_AUTOREPLY_SUBJECT = re.compile(
    r"^(auto(matic)? ?(reply|response)|auto:|out of (the )?office|abwesenheit|vacation)", re.I
)


@dataclass(frozen=True)
class Failed:
    """One recipient of a report."""

    address: str
    action: str = "failed"
    status: str = ""
    diagnostic: str = ""
    context: str = ""  # more of the report's words about this recipient, for the rules
    command: str = ""  # the SMTP command the refusal answered (RCPT, DATA), when shown

    @property
    def words(self) -> str:
        """What the classification rules read: the diagnostic, then the context."""
        return f"{self.diagnostic}\n{self.context}".strip()


class Unreadable(DigestError):
    """A report refused unread: too large, too deeply nested, or not a message at all."""


def check_limits(raw: bytes) -> None:
    """Refuse a report over the size cap, or with more MIME parts or lines than any
    report has."""
    if len(raw) > MAX_REPORT_BYTES:
        raise Unreadable(f"{len(raw)} bytes, over the {MAX_REPORT_BYTES}-byte cap")
    if raw.count(b"\n") > MAX_LINES:
        raise Unreadable(f"more than {MAX_LINES} lines")
    if raw.lower().count(b"multipart/") > MAX_PARTS:
        raise Unreadable(f"more than {MAX_PARTS} MIME parts")


@dataclass
class Parsed:
    """What one message says, before anyone looks anything up."""

    form: str  # dsn | arf | plain bounce | auto-reply | other
    subject: str = ""
    to: list[str] = field(default_factory=list)  # addresses it was delivered to
    recipients: list[Failed] = field(default_factory=list)
    feedback_type: str = ""
    original: Message | None = None  # the original message, or its headers
    original_message_id: str = ""
    text: str = ""  # the human-readable part, for a plain bounce
    original_from: str = ""  # ARF Original-Mail-From: the envelope sender of our message
    system: str = ""  # the mail system that wrote it, when its rules differ (layouts.py)


def read_message(raw: bytes) -> Message:
    check_limits(raw)
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        raise Unreadable(f"more than {MAX_PARTS} MIME parts") from None


def parse(raw: bytes, *, delivered_to: str = "") -> Parsed:
    """The facts of one message; ``delivered_to`` is the envelope recipient when known.

    Raises :class:`Unreadable` for a message over the limits.
    """
    msg = read_message(raw)
    to = [delivered_to] if delivered_to else []
    for name in DELIVERY_HEADERS:
        for value in msg.get_all(name) or []:
            to.extend(address for _, address in getaddresses([str(value)]) if "@" in address)
    parsed = Parsed(OTHER, subject=_text(msg.get("Subject", "")), to=to)
    found = _report_parts(msg)
    kinds = {part.get_content_type() for part in found}
    parsed.system = layouts.system_of(msg, "\n".join(_part_text(part) for part in found))
    if "message/feedback-report" in kinds:
        _read_arf(msg, found, parsed)
    elif kinds:
        _read_dsn(msg, found, parsed)
    # X-Failed-Recipients and the usual bounce layouts win over Auto-Submitted (an Exim
    # bounce says auto-replied); a DSN part without a recipient is read as text.
    if parsed.form == OTHER or (parsed.form == DSN and not parsed.recipients):
        text = _first_text(msg)
        layout, listed = layouts.read_layout(msg, text)
        if listed:
            parsed.form, parsed.text = PLAIN_BOUNCE, text
            parsed.recipients = [
                Failed(item.address, "failed", "", item.diagnostic, "", _command(text, ""))
                for item in listed[:20]
            ]
        elif parsed.form == DSN or _looks_like_bounce(msg, parsed.subject):
            _read_plain_bounce(msg, parsed)
    if parsed.form == OTHER and _is_autoreply(msg, parsed.subject):
        parsed.form = AUTOREPLY
    if parsed.original is None:
        parsed.original = _attached_original(msg)
    if parsed.original is not None and not parsed.original_message_id:
        parsed.original_message_id = " ".join(str(parsed.original.get("Message-ID", "")).split())
    if not parsed.original_message_id and parsed.form in (DSN, ARF, PLAIN_BOUNCE):
        pasted = _MESSAGE_ID.search(parsed.text or _all_text(msg))
        parsed.original_message_id = pasted.group(1) if pasted else ""
    return parsed


def kind_of(parsed: Parsed, failed: Failed) -> tuple[str, str]:
    """(kind, status shown) of one recipient of a report: hard, soft, complaint, ..."""
    if parsed.form == ARF:
        if parsed.feedback_type in COMPLAINT_TYPES:
            return "complaint", ""
        if parsed.feedback_type in UNSUBSCRIBE_TYPES:
            return "unsubscribe", ""
        return "ignored", ""  # auth-failure, not-spam, virus, other, or no type at all
    if parsed.form in (OTHER, AUTOREPLY):
        return "ignored", ""
    if failed.action in ("delayed", "delivered", "relayed", "expanded"):
        return "ignored", failed.status  # notices (RFC 3464 2.3.3); "expired" is a failure
    found = classify(
        failed.status, None, failed.words, command=failed.command, system=parsed.system
    )
    return found.kind, found.status or (str(found.code) if found.code else "")


def classes(raw: bytes) -> list[str]:
    """The kind of each recipient one message reports (what the corpus test checks)."""
    parsed = parse(raw)
    if parsed.form in (OTHER, AUTOREPLY):
        return ["ignored"]
    return [kind_of(parsed, failed)[0] for failed in parsed.recipients or [Failed("")]]


# -- the formats ---------------------------------------------------------------------------


_REPORT_PARTS = (
    "message/feedback-report",
    "message/delivery-status",
    "message/global-delivery-status",
)


def _report_parts(msg: Message) -> list[Message]:
    """The report parts (DSN, ARF) of ``msg``: its own, not those of a message it returns
    (a postmaster's copy of a bounce quotes the first bounce, whose report is not this
    one's); when it has none of its own, those of the message it wraps (an appliance
    forwarding a bounce as an attachment)."""
    own = [p for p in _parts(msg, own=True) if p.get_content_type() in _REPORT_PARTS]
    return own or [p for p in _parts(msg) if p.get_content_type() in _REPORT_PARTS]


def _read_dsn(msg: Message, found: list[Message], parsed: Parsed) -> None:
    parsed.form = DSN
    human = _first_text(msg)
    parsed.text = human
    for part in found:
        if part.get_content_type() == "message/feedback-report":
            continue
        records = _recipient_records(_blocks(part))
        for block in records:
            address = _typed_address(block.get("Final-Recipient", "")) or _typed_address(
                block.get("Original-Recipient", "")
            )
            if not address:
                continue
            kind, diagnostic = _typed(block.get("Diagnostic-Code", ""))
            near = _near(human, address)
            # The human-readable part only when the diagnostic says nothing in words, but
            # what it says of a mailbox's state or the sending system's verdict always
            # (for a report about one recipient, wherever it says it).
            context = "" if _WORDS.search(diagnostic) else near
            wide = report_wide(_own_text(human) if len(records) == 1 else near)
            if wide and wide not in context:
                context = f"{context}\n{wide}".strip()
            for name in _CATEGORY_FIELDS:  # a sending system's own reading, per recipient
                if block.get(name):
                    context = f"{context}\n{name}: {_text(block[name]).strip()}".strip()
            if kind and kind != "smtp":
                context = f"{kind}; {context}"
            parsed.recipients.append(
                Failed(
                    address=address,
                    action=_text(block.get("Action", "")).strip().lower(),
                    status=_text(block.get("Status", "")).strip(),
                    diagnostic=diagnostic[:1000],
                    context=context,
                    command=_command(human, f"{diagnostic[:1000]} {near}", address),
                )
            )


# Extension fields in which a sending system gives its own reading of a recipient's refusal.
_CATEGORY_FIELDS = ("X-PowerMTA-BounceCategory",)

# Fields that begin what a DSN says about one recipient (RFC 3464 2.3).
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient")


def _recipient_records(blocks: list[Message]) -> list[Message]:
    """The per-recipient field groups of a delivery-status part (RFC 3464 2.1).

    Each recipient's fields should be a block of their own, after the per-message
    block; some mail systems (AOL's) write them all in one block. A ``Final-Recipient``
    or ``Original-Recipient`` that the group already has starts the next recipient, so
    both layouts give one group per recipient.
    """
    records: list[Message] = []
    for block in blocks:
        current: Message | None = None
        for name, value in block.items():
            if current is None or (
                name.lower() in _RECIPIENT_FIELDS and current.get(name) is not None
            ):
                current = Message()
                records.append(current)
            current[name] = value
    return [r for r in records if any(r.get(name) is not None for name in _RECIPIENT_FIELDS)]


def _read_arf(msg: Message, found: list[Message], parsed: Parsed) -> None:
    parsed.form = ARF
    for part in found:
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = _blocks(part)
        if not blocks:
            continue
        fields = blocks[0]
        parsed.feedback_type = _text(fields.get("Feedback-Type", "")).strip().lower()
        parsed.original_from = _typed_address(fields.get("Original-Mail-From", ""))
        for value in fields.get_all("Original-Rcpt-To") or []:
            address = _typed_address(value) or str(value).strip()
            if "@" in address:
                parsed.recipients.append(Failed(address, action="complained"))
    parsed.text = _first_text(msg)


def _read_plain_bounce(msg: Message, parsed: Parsed) -> None:
    """A bounce without a usable report part: the replies and the addresses are in its text."""
    parsed.form = PLAIN_BOUNCE
    text = _first_text(msg)
    parsed.text = text
    own = _own_text(text)
    original = _attached_original(msg)
    listed = [
        address
        for value in msg.get_all("X-Failed-Recipients") or []
        for _, address in getaddresses([str(value)])
        if "@" in address
    ]
    bounce_own = {a.lower() for a in _addresses_of(msg, ("From", "To", "Reply-To", "Sender"))}
    quoted = {a.lower() for a in _addresses_of(original, ("From", "Sender", "Reply-To"))}
    ids = {m.lower() for m in _ID_VALUE.findall(own)}
    # Addresses on header lines quoted from the original (To:, From:) are not failures.
    told = "\n".join(line for line in own.splitlines() if not _QUOTED_HEADER.match(line))
    found: list[str] = []
    for address in listed + _ADDRESS.findall(told):
        low = address.lower().strip(".")
        if _BOUNCE_FROM.search(low) or low in bounce_own or low in quoted or low in ids:
            continue
        if low not in (a.lower() for a in found):
            found.append(address.strip("."))
    if not found and original is not None:
        found = _addresses_of(original, ("To",))[:1]
    if not found:
        command = _command(own, own)
        parsed.recipients.append(
            Failed("", "failed", "", _diagnostic_line(own), own[:1500], command)
        )
        return
    # A bounce that quotes one reply and then lists the addresses it concerns (MailMarshal:
    # "Could not be delivered because of ... The following recipients were affected:").
    replies = {line.strip() for line in own.splitlines() if _CODE_LINE.search(line)}
    only = next(iter(replies))[:500] if len(replies) == 1 else ""
    for address in found[:20]:
        block = _near(own, address) or own[:1500]
        diagnostic = _diagnostic_line(block)
        if only and not _CODE_LINE.search(block):
            diagnostic, block = only, f"{only}\n{block}"
        command = _command(own, block, address)
        reply = _transcript_reply(own, address)
        if reply:  # the transcript shows this recipient refused: that reply is the evidence
            diagnostic, block, command = reply, "", "RCPT"
        parsed.recipients.append(Failed(address, "failed", "", diagnostic, block, command))


def _near(text: str, address: str, limit: int = 1500) -> str:
    """What ``text`` says around each mention of ``address``: the line before it and
    the next few lines after it (blank lines skipped), up to ``limit`` characters."""
    if not address:
        return ""
    low = address.lower()
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        if low not in line.lower():
            continue

        # Another recipient's address ends what is said about this one.
        def mine(piece: str) -> bool:
            return "@" not in piece or low in piece.lower()

        before = next((b for b in reversed(lines[max(0, index - 2) : index]) if b), "")
        before = before if mine(before) else ""
        after: list[str] = []
        for following in lines[index + 1 : index + 8]:
            if not mine(following) or len(after) == 4:
                break
            if following:
                after.append(following)
        for piece in (before, line, *after):
            if piece and piece not in out:
                out.append(piece)
                size += len(piece)
        if size > limit:
            break
    return " ".join(out)[:limit]


def _transcript_reply(text: str, address: str) -> str:
    """The server's reply to a refused ``RCPT TO`` for ``address`` in an SMTP transcript
    (``>>> RCPT To:<address>`` then ``<<< 550 ...``): the refusal of that recipient, in
    the server's own words, whatever else the report goes on to say."""
    low = address.lower()
    lines = text[:20000].splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip().lower()
        if stripped.startswith(">>>") and "rcpt" in stripped and low in stripped:
            replies = []
            for following in lines[index + 1 : index + 6]:
                if not following.strip().startswith("<<<"):
                    break
                replies.append(following.strip()[3:].strip())
            if replies and replies[0][:1] == "5":
                return " ".join(replies)[:500]
    return ""


def _transcript_command(text: str, address: str = "") -> str:
    """The command a refusal in an SMTP transcript answered: RCPT, DATA or "" (none shown).

    A Sendmail or Courier transcript (``>>> command`` / ``<<< reply``) is paired reply
    by reply: the replies after the last command end with that command's own, and the
    earlier ones answer pipelined commands (RCPT TO) the transcript may not show. A
    refused ``RCPT TO`` that names ``address`` settles it for that address.
    """
    exchanges: list[tuple[str, list[str]]] = []
    for line in text[:20000].lower().splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            exchanges.append((stripped[3:].strip(), []))
        elif stripped.startswith("<<<") and exchanges and stripped[6:7] != "-":
            exchanges[-1][1].append(stripped[3:].strip()[:1])  # not a continuation line
    low = address.lower()
    for command, replies in exchanges:
        if low and low in command and command.startswith("rcpt") and "5" in replies:
            return "RCPT"
    for command, replies in exchanges:
        refused = [r in ("4", "5") for r in replies]
        if command.startswith("rcpt") and any(refused):
            return "RCPT"
        if (command.startswith("data") or command == ".") and any(refused):
            return "RCPT" if any(refused[:-1]) else "DATA"
    return ""


def _command(text: str, block: str, address: str = "") -> str:
    """What the refusal about one recipient answered, from its block or the transcript."""
    return (
        command_of(block)
        or (_transcript_command(text, address) if address else "")
        or command_of(text)
        or _transcript_command(text)
    )


def _own_text(text: str) -> str:
    """A bounce's own words: its text up to where it pastes the returned message."""
    out = []
    for line in text.splitlines():
        stripped = line.strip().lower()
        if stripped.startswith("--") and any(p in stripped for p in _COPY_PHRASES):
            break
        if stripped in ("original message headers:", "original message follows.") or (
            stripped.startswith("original message") and stripped.endswith(":")
        ):
            break
        out.append(line)
    return "\n".join(out)


def _diagnostic_line(text: str) -> str:
    """The server's reply quoted in a bounce: the first line with a reply or status code."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if _CODE_LINE.search(line):
            return " ".join(lines[index : index + 2])[:500]
    for line in lines:
        if _REASON_LINE.search(line):
            return line[:500]
    return ""


# Two words of three letters or more: tried only where a word starts (the look-behind),
# so a run of letters is scanned once, not again from each of its letters.
_WORDS = re.compile(r"(?<![A-Za-z])[A-Za-z]{3,}[^A-Za-z]{1,3}[A-Za-z]{3}")
_CODE_LINE = re.compile(r"(?<!\d)[245]\d\d[ -]|(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?![\d.])")
_REASON_LINE = re.compile(
    r"unknown|does not exist|no such|rejected|full|quota|disabled|not found|invalid", re.I
)


def _looks_like_bounce(msg: Message, subject: str) -> bool:
    if msg.get("X-Failed-Recipients"):
        return True
    sender = f"{msg.get('From', '')} {msg.get('Return-Path', '')}"
    null_sender = str(msg.get("Return-Path", "")).strip() in ("<>", "")
    if not (_BOUNCE_FROM.search(sender) or null_sender):
        return False
    if _BOUNCE_SUBJECT.search(subject):
        return True
    opening = _first_text(msg)[:3000]
    # The usual layouts, or (from a mail system) a quoted permanent SMTP refusal.
    return bool(_BOUNCE_BODY.search(opening)) or (
        bool(_BOUNCE_FROM.search(sender)) and bool(_PERMANENT_REPLY.search(opening))
    )


def _is_autoreply(msg: Message, subject: str) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(subject))


# -- helpers -------------------------------------------------------------------------------


def _parts(msg: Message, *, own: bool = False) -> Iterator[Message]:
    """Every part of ``msg``, depth first, without recursion (``Message.walk`` recurses).

    ``own``: not the parts of a returned message (a bounce of a bounce quotes the first
    one's report, which is not this report's).
    """
    stack = [msg]
    seen = 0
    while stack and seen < 4 * MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        if own and part is not msg and part.get_content_type() in _RETURNED:
            continue
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


_RETURNED = ("message/rfc822", "message/global")


def _addresses_of(msg: Message | None, names: tuple[str, ...]) -> list[str]:
    if msg is None:
        return []
    values = [str(v) for name in names for v in msg.get_all(name) or []]
    return [address for _, address in getaddresses(values) if "@" in address]


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    parser = HeaderParser()
    return [
        parser.parsestr(chunk + "\n") for chunk in re.split(r"\r?\n\r?\n", text) if chunk.strip()
    ]


def _part_text(part: Message) -> str:
    """A delivery-status or feedback-report part as text (its fields, block by block)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n\n".join(str(p) for p in payload if isinstance(p, Message))[:20000]
    return payload[:20000] if isinstance(payload, str) else ""


def _attached_original(msg: Message) -> Message | None:
    for part in _parts(msg):
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "text/rfc822-header"):
            body = part.get_payload(decode=True)
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
            return HeaderParser().parsestr(text)
    return None


def _first_text(msg: Message) -> str:
    """The first text/plain part that is not inside a returned message (else the first
    text/html, its tags dropped)."""
    return _first_of(msg, "text/plain") or _html_text(_first_of(msg, "text/html"))


def _html_text(html: str) -> str:
    lines = _TAG.sub(" ", re.sub(r"(?i)<br\s{0,3}/?>|</p>|</div>|</tr>", "\n", html))
    return "\n".join(" ".join(line.split()) for line in unescape(lines).splitlines())


def _first_of(msg: Message, kind: str) -> str:
    stack = [msg]
    while stack:
        part = stack.pop()
        if part.get_content_type() in ("message/rfc822", "message/global"):
            continue  # the returned original: not the report's own words
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
        elif part.get_content_type() == kind or (
            kind == "text/plain"
            and part.get_content_maintype() == "multipart"
            and isinstance(part.get_payload(), str)
        ):
            return _decoded(part)  # a multipart whose parts could not be split is read as text
    return ""


def _all_text(msg: Message) -> str:
    return "\n".join(
        _decoded(part) for part in _parts(msg) if part.get_content_maintype() == "text"
    )


def _decoded(part: Message) -> str:
    body = part.get_payload(decode=True)
    if not isinstance(body, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _text(value: object) -> str:
    """A header as text, RFC 2047 words decoded."""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError):
        return str(value)


def _typed(value: object) -> tuple[str, str]:
    """``smtp; 550 ...`` -> (``smtp``, ``550 ...``), unfolded; no type: ("", the text)."""
    text = " ".join(_unescaped(str(value)).split())
    kind, sep, rest = text.partition(";")
    if sep and " " not in kind.strip():
        return kind.strip().lower(), rest.strip()
    return "", text


def _unescaped(text: str) -> str:
    """A field written in raw ISO-2022-JP (escape sequences, not RFC 2047 words), as
    Japanese Lotus Domino writes its diagnostics, decoded."""
    if "\x1b$" not in text:
        return text
    try:
        return text.encode("latin-1").decode("iso-2022-jp")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _typed_value(value: object) -> str:
    """``rfc822; a@b`` / ``smtp; 550 ...`` -> what follows the type, unfolded."""
    return _typed(value)[1]


def _typed_address(value: object) -> str:
    text = _typed_value(value).strip().strip("<>")
    return text if "@" in text else ""
