"""Reading report messages: what a bounce, complaint or unsubscribe email says.

Python's ``email`` package does the MIME; this module only reads the fields of
the report formats:

* RFC 3464 delivery status notifications (``multipart/report;
  report-type=delivery-status``): per recipient, ``Action``, ``Status``,
  ``Final-Recipient`` (or ``Original-Recipient``) and ``Diagnostic-Code``.
  Only ``failed`` recipients are bounces; ``delayed``, ``delivered``,
  ``relayed`` and ``expanded`` are notices.
* RFC 5965 abuse reports (``report-type=feedback-report``): ``Feedback-Type``
  (abuse, fraud, virus, other are complaints; ``not-spam`` is not), the
  original recipient, and the original message or its headers.
* Bounces without a report part (a plain text from MAILER-DAEMON quoting the
  server's reply, with the original message attached or pasted below): the
  status code and the failed address are read from the text.
* Auto-replies (RFC 3834 ``Auto-Submitted``, vacation notices) are recognised
  and ignored.

Nothing here touches the database: :func:`parse` returns the facts, and
:mod:`digest.send.intake.reader` finds the reader and :mod:`digest.bounces` applies the policy.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

DSN = "dsn"
ARF = "arf"
PLAIN_BOUNCE = "plain bounce"
AUTOREPLY = "auto-reply"
OTHER = "other"

COMPLAINT_TYPES = ("abuse", "fraud", "virus", "other")

# Headers that may name the address a message was delivered to, best first.
DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")

_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^>\s]+>)", re.I | re.M)
_BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery (system|subsystem)", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed)|"
    r"returned mail|failure notice|mail delivery failed|could not be delivered|"
    r"delivery incomplete",
    re.I,
)
# Where a bounce pastes the copy of the message it returns.
_COPY_BELOW = re.compile(
    r"^\s*(-{3,}.*(below this line|original message|copy of the message).*|-{6,}.*)$",
    re.I | re.M,
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


def read_message(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def parse(raw: bytes, *, delivered_to: str = "") -> Parsed:
    """The facts of one message; ``delivered_to`` is the envelope recipient when known."""
    msg = read_message(raw)
    to = [delivered_to] if delivered_to else []
    for name in DELIVERY_HEADERS:
        for value in msg.get_all(name) or []:
            to.extend(address for _, address in getaddresses([str(value)]) if "@" in address)
    parsed = Parsed(OTHER, subject=_text(msg.get("Subject", "")), to=to)
    report_type = (msg.get_param("report-type") or "") if msg.is_multipart() else ""
    if msg.get_content_type() == "multipart/report" and isinstance(report_type, str):
        if report_type.lower() == "delivery-status":
            _read_dsn(msg, parsed)
        elif report_type.lower() == "feedback-report":
            _read_arf(msg, parsed)
    if parsed.form == OTHER and _looks_like_bounce(msg, parsed.subject):
        _read_plain_bounce(msg, parsed)
    if parsed.form == OTHER and _is_autoreply(msg, parsed.subject):
        parsed.form = AUTOREPLY
    if parsed.original is None:
        parsed.original = _attached_original(msg)
    if parsed.original is not None and not parsed.original_message_id:
        parsed.original_message_id = str(parsed.original.get("Message-ID", "")).strip()
    if not parsed.original_message_id and parsed.form in (DSN, ARF, PLAIN_BOUNCE):
        found = _MESSAGE_ID.search(parsed.text or _all_text(msg))
        parsed.original_message_id = found.group(1) if found else ""
    return parsed


# -- the formats ---------------------------------------------------------------------------


def _read_dsn(msg: Message, parsed: Parsed) -> None:
    parsed.form = DSN
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = _blocks(part)
        for block in blocks[1:]:  # the first block is about the message, the rest per recipient
            address = _typed_address(block.get("Final-Recipient", "")) or _typed_address(
                block.get("Original-Recipient", "")
            )
            if not address:
                continue
            parsed.recipients.append(
                Failed(
                    address=address,
                    action=_text(block.get("Action", "")).strip().lower(),
                    status=_text(block.get("Status", "")).strip(),
                    diagnostic=_typed_value(block.get("Diagnostic-Code", "")),
                )
            )
    parsed.text = _first_text(msg)


def _read_arf(msg: Message, parsed: Parsed) -> None:
    parsed.form = ARF
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = _blocks(part)
        if not blocks:
            continue
        fields = blocks[0]
        parsed.feedback_type = _text(fields.get("Feedback-Type", "")).strip().lower()
        for value in fields.get_all("Original-Rcpt-To") or []:
            address = _typed_address(value) or str(value).strip()
            if "@" in address:
                parsed.recipients.append(Failed(address, action="complained"))
    parsed.text = _first_text(msg)


def _read_plain_bounce(msg: Message, parsed: Parsed) -> None:
    """A bounce without a report part: the reply and the address are in its text."""
    parsed.form = PLAIN_BOUNCE
    text = _first_text(msg)
    parsed.text = text
    original = _attached_original(msg)
    # The pasted or attached copy of our message is not the bounce's own text.
    own = _COPY_BELOW.split(text, 1)[0]
    quoted = [str(v) for v in original.get_all("To") or []] if original is not None else []
    quoted_to = [address for _, address in getaddresses(quoted) if "@" in address]
    candidates = [a for a in _ADDRESS.findall(own) if not _BOUNCE_FROM.search(a)]
    address = next((a for a in candidates if a.lower() in {q.lower() for q in quoted_to}), "")
    address = (
        address or (quoted_to[0] if quoted_to else "") or (candidates[0] if candidates else "")
    )
    diagnostic = _diagnostic_line(own)
    parsed.recipients.append(Failed(address, "failed", "", diagnostic))


def _diagnostic_line(text: str) -> str:
    """The server's reply quoted in a bounce: the first line with a reply or status code."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if re.search(r"(?<!\d)[245]\d\d[ -]|(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?![\d.])", line):
            return " ".join(lines[index : index + 2])[:500]
    for line in lines:
        if re.search(r"unknown|does not exist|no such|rejected|full|quota|disabled", line, re.I):
            return line[:500]
    return ""


def _looks_like_bounce(msg: Message, subject: str) -> bool:
    sender = f"{msg.get('From', '')} {msg.get('Return-Path', '')}"
    return bool(_BOUNCE_FROM.search(sender) and _BOUNCE_SUBJECT.search(subject)) or (
        str(msg.get("Return-Path", "")).strip() in ("<>", "")
        and bool(_BOUNCE_SUBJECT.search(subject))
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


def _attached_original(msg: Message) -> Message | None:
    for part in msg.walk():
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
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not _inside_original(msg, part):
            return _decoded(part)
    return ""


def _inside_original(msg: Message, target: Message) -> bool:
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "message/global"):
            if any(inner is target for inner in part.walk() if inner is not part):
                return True
    return False


def _all_text(msg: Message) -> str:
    return "\n".join(_decoded(part) for part in msg.walk() if part.get_content_maintype() == "text")


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


def _typed_value(value: object) -> str:
    """``rfc822; a@b`` / ``smtp; 550 ...`` -> what follows the type, unfolded."""
    text = " ".join(str(value).split())
    kind, sep, rest = text.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else text


def _typed_address(value: object) -> str:
    text = _typed_value(value).strip().strip("<>")
    return text if "@" in text else ""
