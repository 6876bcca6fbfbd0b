"""Build the wire bytes of each subscriber's message from pieces made once per issue.

A :class:`MessageBuilder` is made once per issue. It encodes the headers that
every recipient shares, and quoted-printable-encodes every line of the HTML
and text parts that holds no per-recipient value, once. Building one
recipient's message then costs a token, a hash, the encoding of the few lines
that carry the recipient's values, and one join. :func:`reference_message`
builds the same message with the ``email`` package, slowly and obviously: the
tests check that both parse the same.

The message: ``multipart/alternative`` (text first, HTML last), UTF-8,
each part quoted-printable or base64, whichever is smaller for it (Cyrillic
text is a third shorter in base64), CRLF line endings, no line over 998
octets and none starting with a dot (so SMTP sends the bytes as they are);
From, Reply-To, To, Subject, Date, a Message-ID that is the same for an
(issue, subscriber) pair on every run, MIME-Version, List-Id,
List-Unsubscribe (https, plus mailto when configured), List-Unsubscribe-Post
(RFC 8058), optional Feedback-ID (``{issue}`` is the issue's date) and an
optional DKIM signature over all of them that also over-signs each one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from digest import clock
from digest.errors import ConfigError
from digest.render import PreparedIssue, Recipient, Skeleton, SlotKey, escaped_values

if TYPE_CHECKING:
    from digest.config import Config
    from digest.tokens import Tokens
    from digest.workspace import Workspace

DKIM_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
)
# Each signed header is named once more than the message holds it ("over-signing"):
# a verifier then takes the extra name as "no further instance", so a second From,
# Subject or List-Unsubscribe added anywhere breaks the signature.
DKIM_SIGNED = DKIM_HEADERS + DKIM_HEADERS
TEST_PREFIX = "[TEST] "
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")


@dataclass(frozen=True)
class MessageParts:
    """One recipient's message as an HTTP mail API wants it: fields, not MIME."""

    subject: str
    from_: str
    to: str
    reply_to: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = ""


@dataclass(frozen=True)
class RecipientFields:
    """What differs between two recipients' parts: each skeleton slot's escaped text
    (html and text), the To value, the unsubscribe URL and the Message-ID."""

    has_name: bool
    slots: dict[SlotKey, str]
    to: str
    unsubscribe_url: str
    message_id: str


# -- headers -----------------------------------------------------------------------


def fold(name: str, value: str) -> bytes:
    """One header, encoded (RFC 2047) and folded by the email package."""
    return bytes(SMTP.fold_binary(*SMTP.header_store_parse(name, value)))


def encode_address(name: str, address: str, *, width: int = 0) -> str:
    """``Name <address>`` as a header value: plain, quoted, or RFC 2047 words.

    Hand-made because it runs per recipient; the email package takes 50x longer.
    ``width``: a quoted name whose value would be longer goes as RFC 2047 words
    too, which fold between words (for the email package, whose refolding of a
    long quoted string drops its quotes, and with them the address it names).
    """
    if not name:
        return address
    if name.isascii():
        if _ATEXT.fullmatch(name) and name.strip() == name:
            return f"{name} <{address}>"
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        value = f'"{quoted}" <{address}>'
        if not width or len(value) <= width:
            return value
    # RFC 2047 words of at most 45 octets (75 characters encoded), cut after a space
    # where one is near, else between characters; a decoder joins adjacent words,
    # dropping the folding space.
    words = []
    chunk = b""
    for ch in name:
        encoded = ch.encode("utf-8")
        if len(chunk) + len(encoded) > 45:
            space = chunk.rfind(b" ", 20)
            cut = space + 1 if space > 0 else len(chunk)
            words.append(chunk[:cut])
            chunk = chunk[cut:]
        chunk += encoded
    words.append(chunk)
    encoded_words = [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words]
    return "\r\n ".join(encoded_words) + f"\r\n <{address}>"


def message_id(config: Config, tokens: Tokens, day: str, subscriber_id: str) -> str:
    """The same id for one issue and one subscriber on every run (and every retry).

    ``<DAY.SUBSCRIBER.MAC@domain>``: the MAC is keyed with the signing key, so a report
    quoting the id proves the message was digest's and names its reader, and nobody
    can compute one from the (public) subscriber id. ``DAY`` is ``confirm`` for the
    confirmation email.
    """
    n = config.newsletter
    return _message_id(tokens, n.list_id_value, n.domain, day, subscriber_id)


def _message_id(tokens: Tokens, list_id: str, domain: str, day: str, subscriber_id: str) -> str:
    mac = tokens.message_id_mac(f"{list_id}\0{day}\0{subscriber_id}")
    return f"<{day}.{subscriber_id}.{mac}@{domain}>"


_KEYED_ID = re.compile(
    r"<?(\d{4}-\d\d-\d\d|confirm)\.([A-Za-z0-9_-]{1,64})\.([0-9a-f]{24})@([^>\s]{1,255})>?"
)


def read_message_id(config: Config, tokens: Tokens, value: str) -> tuple[str, str] | None:
    """(day or "confirm", subscriber id) named by a Message-ID digest made, else None.

    Ids made before they were keyed (``<DAY.HASH@domain>``, an unkeyed hash anyone
    can compute) name nobody: they are no proof.
    """
    found = _KEYED_ID.fullmatch(" ".join(value.split()))
    if found is None:
        return None
    day, subscriber_id, mac, domain = found.groups()
    n = config.newsletter
    if domain.lower() != n.domain.lower():
        return None
    if not tokens.check_message_id_mac(f"{n.list_id_value}\0{day}\0{subscriber_id}", mac):
        return None
    return day, subscriber_id


def _qp(line: str) -> bytes:
    """One line, quoted-printable, no physical line starting with a dot.

    No raw newline is in ``line``, so every "\n" out of b2a_qp is a soft break.
    A leading "." is written "=2E" (RFC 2045 lets any octet be encoded), so
    SMTP's DATA never has to dot-stuff a built message (RFC 5321 4.5.2).
    """
    encoded = binascii.b2a_qp(line.encode("utf-8"), istext=True)
    if encoded.startswith(b".") or b"\n." in encoded:
        encoded = _undot(encoded)
    return encoded.replace(b"\n", b"\r\n")


def _undot(encoded: bytes) -> bytes:
    """Quoted-printable lines with a leading "." written "=2E", still at most 76 long."""
    out = []
    for line in encoded.split(b"\n"):
        while line.startswith(b"."):
            line = b"=2E" + line[1:]
            if len(line) <= 76:
                break
            cut = 75  # room for the soft break's "="; never inside an "=XX" escape
            if line[cut - 1 : cut] == b"=":
                cut -= 1
            elif line[cut - 2 : cut - 1] == b"=":
                cut -= 2
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return b"\n".join(out)


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _base64_lines(data: bytes) -> bytes:
    """``data`` in base64, 76 characters a line (57 octets), CRLF between lines."""
    encoded = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _base64(text: str) -> bytes:
    return _base64_lines(_crlf(text).encode("utf-8"))


def smaller_encoding(text: str) -> str:
    """``quoted-printable`` or ``base64``: whichever writes ``text`` in fewer octets."""
    qp = sum(len(_qp(line)) + 2 for line in text.replace("\r\n", "\n").split("\n"))
    return "base64" if len(_base64(text)) < qp else "quoted-printable"


class _Base64Part:
    """A part's body in base64.

    The values shift the 3-octet groups after them, so only the text before the
    first value is encoded once (whole 57-octet lines of it); the rest is encoded
    for each recipient.
    """

    encoding = "base64"

    def __init__(self, skeleton: Skeleton) -> None:
        self.keys = skeleton.keys
        head = _crlf(skeleton.pieces[0]).encode("utf-8")
        cut = len(head) - len(head) % 57 if skeleton.slots else len(head)
        self.head = _base64_lines(head[:cut])
        self.carry = head[cut:]
        self.tail = Skeleton(("",) + skeleton.pieces[1:], skeleton.slots)

    def encode(self, escaped: dict[SlotKey, str]) -> bytes:
        return b"".join(self.pieces(escaped))

    def pieces(self, escaped: dict[SlotKey, str]) -> list[bytes]:
        """The body in pieces, for the message's one join (no copy of the big head)."""
        rest = self.carry + _crlf(self.tail.fill(escaped)).encode("utf-8")
        if not rest:
            return [self.head]
        if not self.head:
            return [_base64_lines(rest)]
        return [self.head, b"\r\n", _base64_lines(rest)]


class _EncodedPart:
    """A part's body, quoted-printable, with only the lines holding values left open."""

    encoding = "quoted-printable"

    def __init__(self, skeleton: Skeleton) -> None:
        marked = [skeleton.pieces[0]]
        for index, piece in enumerate(skeleton.pieces[1:]):
            marked.append(f"\x00{index}\x00")
            marked.append(piece)
        text = "".join(marked).replace("\r\n", "\n")
        self.keys = skeleton.keys
        self.chunks: list[bytes | Skeleton] = []
        run: list[bytes] = []
        for line in text.split("\n"):
            if "\x00" not in line:
                run.append(_qp(line))
                continue
            if run:
                self.chunks.append(b"\r\n".join(run))
                run = []
            parts = line.split("\x00")
            pieces = tuple(parts[0::2])
            slots = tuple(skeleton.slots[int(i)] for i in parts[1::2])
            self.chunks.append(Skeleton(pieces, slots))
        if run:
            self.chunks.append(b"\r\n".join(run))

    def encode(self, escaped: dict[SlotKey, str]) -> bytes:
        return b"".join(self.pieces(escaped))

    def pieces(self, escaped: dict[SlotKey, str]) -> list[bytes]:
        """The body in pieces (CRLF between chunks), for the message's one join."""
        out: list[bytes] = []
        for chunk in self.chunks:
            if out:
                out.append(b"\r\n")
            out.append(chunk if isinstance(chunk, bytes) else _qp(chunk.fill(escaped)))
        return out


_Part = _EncodedPart | _Base64Part


class MessageBuilder:
    """Builds every recipient's message of one issue."""

    def __init__(
        self,
        prepared: PreparedIssue,
        config: Config | None = None,
        *,
        dkim_key: bytes | None = None,
    ) -> None:
        self.prepared = prepared
        self.config = config = config or prepared.config
        n = config.newsletter
        self.day = prepared.issue.date.isoformat()
        self.from_ = n.from_
        self.reply_to = n.reply_to or n.from_
        self.subject = prepared.issue.subject
        self.list_id_value = n.list_id_value
        self.domain = n.domain
        self.list_id = f"{n.name} <{self.list_id_value}>"
        self.mailto = (
            f"<mailto:{n.unsubscribe_mailto}?subject=unsubscribe>" if n.unsubscribe_mailto else ""
        )
        self.dkim_key = dkim_key
        self.dkim_selector = config.dkim.selector.encode("ascii")
        self.dkim_domain = (config.dkim.domain or n.domain).encode("ascii")
        boundary_seed = f"{n.list_id_value}\0{self.day}\0{prepared.issue.subject}".encode()
        # "=_" never occurs in quoted-printable text, so the boundary cannot either.
        self.boundary = "=_digest_" + hashlib.blake2b(boundary_seed, digest_size=12).hexdigest()
        shared = [
            ("From", self.from_),
            ("Reply-To", self.reply_to),
        ]
        tail = [
            ("MIME-Version", "1.0"),
            ("List-Id", self.list_id),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        self.feedback_id = n.feedback_id.replace("{issue}", self.day)
        if self.feedback_id:
            tail.append(("Feedback-ID", self.feedback_id))
        head = b"".join(fold(k, v) for k, v in shared)
        rest = b"".join(fold(k, v) for k, v in tail)
        rest += f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'.encode()
        self._head = {
            False: head + fold("Subject", self.subject),
            True: head + fold("Subject", TEST_PREFIX + self.subject),
        }
        self._rest = rest
        b = self.boundary.encode("ascii")
        self._open = {
            (subtype, cte): b"\r\n--"
            + b
            + b'\r\nContent-Type: text/%s; charset="utf-8"\r\n' % subtype.encode()
            + b"Content-Transfer-Encoding: %s\r\n\r\n" % cte.encode()
            for subtype in ("plain", "html")
            for cte in ("quoted-printable", "base64")
        }
        self._close = b"\r\n--" + b + b"--\r\n"
        self._parts: dict[tuple[str, bool], _Part] = {}
        self._pairs: dict[bool, tuple[_Part, _Part, frozenset[SlotKey]]] = {}
        self._date_second = -1
        self._date = b""

    @classmethod
    def for_workspace(cls, ws: Workspace, prepared: PreparedIssue) -> MessageBuilder:
        """A builder with the workspace's DKIM key loaded when DKIM is on."""
        return cls(prepared, ws.config, dkim_key=load_dkim_key(ws))

    def _part(self, kind: str, has_name: bool) -> _Part:
        key = (kind, has_name)
        part = self._parts.get(key)
        if part is None:
            skeleton = self.prepared.skeleton(kind, has_name)
            other = self._parts.get((kind, not has_name))
            # Named and nameless readers often share one skeleton: encode it once.
            if other is not None and self.prepared.skeleton(kind, not has_name) is skeleton:
                part = other
            else:
                # Sized once, on a sample reader: the values are a few dozen octets
                # of a part of thousands, so they never change which is smaller.
                sample = Recipient("sample", "reader@example.com", "Sample Reader")
                filled = skeleton.fill(escaped_values(self.prepared.values(sample), skeleton.keys))
                if smaller_encoding(filled) == "base64":
                    part = _Base64Part(skeleton)
                else:
                    part = _EncodedPart(skeleton)
            self._parts[key] = part
        return part

    def _pair(self, has_name: bool) -> tuple[_Part, _Part, frozenset[SlotKey]]:
        pair = self._pairs.get(has_name)
        if pair is None:
            text, html = self._part("text", has_name), self._part("html", has_name)
            pair = self._pairs[has_name] = (text, html, text.keys | html.keys)
        return pair

    def _date_header(self) -> bytes:
        now = clock.now()
        second = int(now.timestamp())
        if second != self._date_second:
            self._date_second = second
            self._date = f"Date: {format_datetime(now)}\r\n".encode("ascii")
        return self._date

    def list_unsubscribe(self, url: str, subscriber_id: str | None = None) -> str:
        """The https link, and the mailto: address when configured.

        A ``{token}`` in ``unsubscribe_mailto`` gives each reader a signed address
        of their own; it is filled in for a known reader (the MIME message),
        and left out of the parts an HTTP API gets (they unsubscribe through the
        provider's webhook instead).
        """
        mailto = self.mailto
        if "{token}" in mailto:
            if subscriber_id is None:
                return f"<{url}>"
            mailto = mailto.replace("{token}", self.prepared.tokens.mailto(subscriber_id))
        return f"<{url}>, {mailto}" if mailto else f"<{url}>"

    def build(self, recipient: Recipient, *, test: bool = False) -> bytes:
        """The complete message for ``recipient``, CRLF line endings, ready for the wire."""
        values = self.prepared.values(recipient)
        text_part, html_part, keys = self._pair(bool(recipient.name))
        escaped = escaped_values(values, keys)
        mid = _message_id(
            self.prepared.tokens, self.list_id_value, self.domain, self.day, recipient.subscriber_id
        )
        to = encode_address(recipient.name, recipient.email)
        unsubscribe = self.list_unsubscribe(values["unsubscribe_url"], recipient.subscriber_id)
        if self.mailto:
            unsubscribe = unsubscribe.replace(", ", ",\r\n ")
        message = b"".join(
            [
                self._head[test],
                f"To: {to}\r\nMessage-ID: {mid}\r\nList-Unsubscribe: {unsubscribe}\r\n".encode(),
                self._date_header(),
                self._rest,
                b"\r\nThis is a multipart message in MIME format.\r\n",
                self._open["plain", text_part.encoding],
                *text_part.pieces(escaped),
                self._open["html", html_part.encoding],
                *html_part.pieces(escaped),
                self._close,
            ]
        )
        if self.dkim_key is not None:
            message = self.sign(message) + message
        return message

    def sign(self, message: bytes) -> bytes:
        assert self.dkim_key is not None
        return dkim_signature(message, self.dkim_selector, self.dkim_domain, self.dkim_key)

    def parts(self, recipient: Recipient, *, test: bool = False) -> MessageParts:
        """The message as separate fields, for HTTP mail APIs."""
        return self.assemble(self.fields(recipient), test=test)

    def fields(self, recipient: Recipient) -> RecipientFields:
        """Everything of :meth:`parts` that differs between recipients, escaped for its place."""
        values = self.prepared.values(recipient)
        has_name = bool(recipient.name)
        text_sk = self.prepared.skeleton("text", has_name)
        html_sk = self.prepared.skeleton("html", has_name)
        return RecipientFields(
            has_name=has_name,
            slots=escaped_values(values, text_sk.keys | html_sk.keys),
            to=encode_address(recipient.name, recipient.email).replace("\r\n", ""),
            unsubscribe_url=values["unsubscribe_url"],
            message_id=_message_id(
                self.prepared.tokens,
                self.list_id_value,
                self.domain,
                self.day,
                recipient.subscriber_id,
            ),
        )

    def assemble(self, fields: RecipientFields, *, test: bool = False) -> MessageParts:
        """The parts made of one recipient's fields and what the issue shares.

        Fed fields that are markers, it gives a per-issue template of the
        parts (see digest.send.splice): one assembly, so the two cannot differ.
        """
        headers = {
            "List-Id": self.list_id,
            "List-Unsubscribe": self.list_unsubscribe(fields.unsubscribe_url),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        if self.feedback_id:
            headers["Feedback-ID"] = self.feedback_id
        return MessageParts(
            subject=(TEST_PREFIX if test else "") + self.subject,
            from_=self.from_,
            to=fields.to,
            reply_to=self.reply_to,
            html=self.prepared.skeleton("html", fields.has_name).fill(fields.slots),
            text=self.prepared.skeleton("text", fields.has_name).fill(fields.slots),
            headers=headers,
            message_id=fields.message_id,
        )


def parts_to_mime(parts: MessageParts, *, utf8: bool = False) -> bytes:
    """The RFC 5322 bytes of a message given as parts: text first, HTML last.

    For the few messages not built from an issue (the confirmation email), so
    every message of digest is a :class:`MessageParts` an HTTP API can take.
    ``utf8``: headers in UTF-8 as RFC 6532 allows (for a message that goes with
    SMTPUTF8 to a non-ASCII address); otherwise ASCII with RFC 2047 words.
    """
    message = EmailMessage()
    message["Subject"] = parts.subject
    message["From"] = parts.from_
    name, address = parseaddr(parts.to)
    if "=?" in name:  # RFC 2047 words (encode_address's, for an HTTP API): the name itself
        name = str(make_header(decode_header(name)))
    # As it is: folded here, so that the email package does not refold it (see encode_address).
    message.set_raw("To", encode_address(name, address, width=78 - len("To: ")))
    if parts.reply_to:
        message["Reply-To"] = parts.reply_to
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = parts.message_id
    for name, value in parts.headers.items():
        message[name] = value
    # Each part quoted-printable or base64, whichever is smaller (as in an issue).
    message.set_content(parts.text, cte=smaller_encoding(parts.text))
    message.add_alternative(parts.html, subtype="html", cte=smaller_encoding(parts.html))
    return message.as_bytes(policy=SMTPUTF8 if utf8 else message.policy)


def reference_message(
    parts: MessageParts, recipient: Recipient, when: datetime | None = None
) -> bytes:
    """The same message built with the ``email`` package: slow, and obviously right."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = parts.from_
    msg["Reply-To"] = parts.reply_to
    msg["Subject"] = parts.subject
    msg["To"] = _address_header(recipient)
    msg["Message-ID"] = parts.message_id
    msg["Date"] = format_datetime(when or clock.now())
    msg["MIME-Version"] = "1.0"
    for name, value in parts.headers.items():
        msg[name] = value
    msg.set_content(parts.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(parts.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


def _address_header(recipient: Recipient) -> str:
    return str(Address(display_name=recipient.name, addr_spec=recipient.email))


def dkim_signature(message: bytes, selector: bytes, domain: bytes, key: bytes) -> bytes:
    """The DKIM-Signature header for ``message`` (relaxed/relaxed, every header over-signed)."""
    import dkim  # deferred: only a workspace that signs loads dkimpy

    signature = dkim.sign(
        message,
        selector,
        domain,
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h.encode("ascii") for h in DKIM_SIGNED],
    )
    return bytes(signature)


def dkim_signer(ws: Workspace) -> Callable[[bytes], bytes] | None:
    """Signs a whole message (signature header first) as ``[dkim]`` says; None when off.

    For the messages not built by :class:`MessageBuilder` (the confirmation
    email), so that every message digest sends is signed alike.
    """
    key = load_dkim_key(ws)
    if key is None:
        return None
    n = ws.config.newsletter
    selector = ws.config.dkim.selector.encode("ascii")
    domain = (ws.config.dkim.domain or n.domain).encode("ascii")
    return lambda message: dkim_signature(message, selector, domain, key) + message


def load_dkim_key(ws: Workspace) -> bytes | None:
    """The PEM private key from ``[dkim] private_key_env`` or ``private_key_file``."""
    d = ws.config.dkim
    if not d.enabled:
        return None
    if d.private_key_env:
        return ws.config.secret(d.private_key_env, "the DKIM private key").encode("ascii")
    path = Path(d.private_key_file)
    path = path if path.is_absolute() else ws.root / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the DKIM key ({exc.strerror}); fix [dkim] private_key_file"
        ) from None
    if b"PRIVATE KEY" not in data:
        raise ConfigError(f"{path}: not a PEM private key; fix [dkim] private_key_file")
    return data


def from_address(config: Config) -> str:
    return parseaddr(config.newsletter.from_)[1]
