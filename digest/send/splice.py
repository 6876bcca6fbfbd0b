"""JSON request bodies spliced from bytes encoded once per issue.

An HTTP API's body for one message is ``json.dumps`` of the provider's
``payload(message)``. Nearly all of it (the issue's HTML and text, the
subject, the sender, the shared headers) is the same for every recipient;
only a few short strings differ: each skeleton slot's escaped value (name,
email, links), To, the unsubscribe URL, the Message-ID, and for some
providers the address, the name and the key.

So, once per issue and variant (a reader with or without a name; a test copy
or not), the provider's payload is built from a message whose differing
strings are markers, JSON-encoded once, and cut at the markers into bytes.
Per recipient, each differing string is JSON-escaped exactly as ``json.dumps``
escapes it (character by character, so escaping the pieces and the values
apart and joining them equals escaping the joined text) and spliced in. A
batch body is then one ``b"".join`` of pieces: no per-recipient
``json.dumps`` of a 20 KB document.

A payload must place per-recipient strings as they are (not cut, cased or
parsed); a template in which a marker is missing or altered, or an issue
whose text holds the marker characters, falls back to ``json.dumps``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from digest.message import RecipientFields
from digest.send.sender import OutgoingMessage

if TYPE_CHECKING:
    from digest.message import MessageBuilder, RecipientFields

# What json.dumps(..., ensure_ascii=False) calls for every str: '"' + escaped + '"'.
_escape: Callable[[str], str] = json.encoder.encode_basestring

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: JSON leaves them as they are
_MARK_RE = re.compile(f"{_OPEN}([0-9]+){_CLOSE}")

# Per-message strings besides the skeleton slots, in the order of ``_Template.values``.
_OTHERS = ("to", "unsubscribe_url", "message_id", "email", "name", "key")


def dumps(payload: Any) -> bytes:
    """The straightforward encoding every spliced body must equal."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _mark(index: int) -> str:
    return f"{_OPEN}{index}{_CLOSE}"


def escape(value: str) -> bytes:
    """``value`` as it sits inside a JSON string, UTF-8."""
    return _escape(value)[1:-1].encode("utf-8")


class _Template:
    """One variant's payload cut into bytes at the per-recipient strings."""

    __slots__ = ("pieces", "slots", "keys")

    def __init__(self, pieces: list[bytes], slots: list[int], keys: list[Any]) -> None:
        self.pieces = pieces  # one more than slots
        self.slots = slots  # which value goes after pieces[i]
        self.keys = keys  # the skeleton slot keys, then _OTHERS

    def values(self, fields: RecipientFields, message: OutgoingMessage) -> list[bytes]:
        slots = fields.slots
        out = [escape(slots[key]) for key in self.keys]
        out.append(escape(fields.to))
        out.append(escape(fields.unsubscribe_url))
        out.append(escape(fields.message_id))
        out.append(escape(message.email))
        out.append(escape(message.name))
        out.append(escape(message.key))
        return out

    def fill(self, values: list[bytes], out: list[bytes]) -> None:
        pieces = self.pieces
        out.append(pieces[0])
        for index, slot in enumerate(self.slots, 1):
            out.append(values[slot])
            out.append(pieces[index])


class Splicer:
    """Encodes one message's payload as JSON, from per-issue pieces when it can."""

    def __init__(self, payload: Callable[[OutgoingMessage], Any]) -> None:
        self.payload = payload
        self._templates: dict[tuple[int, bool, bool, bool], tuple[Any, _Template | None]] = {}
        self.spliced = 0  # how many messages took the fast path (tests, benchmarks)

    def encode(self, message: OutgoingMessage, out: list[bytes]) -> None:
        """Append ``message``'s JSON payload to ``out`` as bytes chunks."""
        builder, recipient = message.builder, message.recipient
        if builder is None or recipient is None:
            out.append(dumps(self.payload(message)))
            return
        fields = builder.fields(recipient)
        template = self._template(builder, fields.has_name, bool(message.name), message.test)
        if template is None:
            out.append(dumps(self.payload(message)))
            return
        template.fill(template.values(fields, message), out)
        self.spliced += 1

    def _template(
        self, builder: MessageBuilder, has_name: bool, named: bool, test: bool
    ) -> _Template | None:
        key = (id(builder), has_name, named, test)
        cached = self._templates.get(key)
        if cached is None or cached[0] is not builder:
            cached = (builder, self._make(builder, has_name, named, test))
            self._templates[key] = cached
        return cached[1]

    def _make(
        self, builder: MessageBuilder, has_name: bool, named: bool, test: bool
    ) -> _Template | None:
        """``has_name``: the rendered reader has a name; ``named``: the message's raw name
        is not empty (a provider may branch on either)."""
        prepared = builder.prepared
        keys = sorted(
            prepared.skeleton("text", has_name).keys | prepared.skeleton("html", has_name).keys,
            key=repr,
        )
        fixed = [
            *prepared.skeleton("text", has_name).pieces,
            *prepared.skeleton("html", has_name).pieces,
            builder.subject,
            builder.from_,
            builder.reply_to,
            builder.list_id,
        ]
        if any(_OPEN in text or _CLOSE in text for text in fixed):
            return None
        n = len(keys)
        marks = RecipientFields(
            has_name=has_name,
            slots={k: _mark(i) for i, k in enumerate(keys)},
            to=_mark(n),
            unsubscribe_url=_mark(n + 1),
            message_id=_mark(n + 2),
        )
        stand_in = OutgoingMessage(
            _mark(n + 6),
            _mark(n + 3),
            _mark(n + 5),
            name=_mark(n + 4) if named else "",
            parts=builder.assemble(marks, test=test),
        )
        text = json.dumps(self.payload(stand_in), ensure_ascii=False)
        cut = _MARK_RE.split(text)
        pieces, found = cut[0::2], [int(i) for i in cut[1::2]]
        if any(_OPEN in p or _CLOSE in p for p in pieces) or any(i > n + 5 for i in found):
            return None  # a marker was altered, or the subscriber id is used
        return _Template([p.encode("utf-8") for p in pieces], found, keys)
