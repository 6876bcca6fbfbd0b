"""The answers to "why are you leaving?", kept apart from every reader.

The unsubscribed page offers a form (never required) after the unsubscribe is
done: one of :data:`REASONS` and a text of at most :data:`MAX_TEXT`
characters. An answer is stored as (issue, reason, text) and nothing else: no
subscriber id, no address, no time, no client address. Addresses typed into
the text are masked before it is stored, so an erasure, which cannot find an
answer, has nothing of the reader to miss.

One page gives one answer. The page carries a one-time token (signed, with
an expiry; see :meth:`digest.tokens.Tokens.answer`) whose random part is
hashed into the row's key: sending the form again from the same page
replaces the earlier answer instead of counting a second one, and nothing
about the key leads back to the reader.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import Connection

import digest.store.schema as schema  # the module itself: importing the package would cycle
from digest.addresses import mask_all

REASONS = ("too_often", "not_relevant", "never_signed_up", "read_elsewhere", "other")
MAX_TEXT = 500  # characters
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

reasons_t = schema.unsubscribe_reasons


@dataclass(frozen=True)
class Answer:
    """One reader's answer, with nothing of the reader: the issue, a reason, a text."""

    issue: str  # "" when the link named no issue
    reason: str  # one of REASONS, or "" (only a text)
    text: str

    @property
    def empty(self) -> bool:
        return not self.reason and not self.text


def clean_text(text: str) -> str:
    """The text as stored: control and direction characters gone, lines kept, addresses masked."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return mask_all(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())


def answer(issue: str, reason: str, text: str) -> Answer:
    """An :class:`Answer` from what the form posted: an unknown reason counts as none."""
    return Answer(issue, reason if reason in REASONS else "", clean_text(text)[:MAX_TEXT])


def answer_key(nonce: str) -> str:
    """The row key of the page whose one-time token holds ``nonce``."""
    return hashlib.sha256(f"digest unsubscribe answer\0{nonce}".encode()).hexdigest()


def record(conn: Connection, nonce: str, given: Answer) -> bool:
    """Store ``given`` as the answer of the page ``nonce`` names, in the caller's write
    transaction; False when it replaced one. An empty answer stores nothing."""
    if given.empty:
        return False
    key = answer_key(nonce)
    replaced = conn.execute(reasons_t.delete().where(reasons_t.c.answer_key == key)).rowcount
    conn.execute(
        reasons_t.insert().values(
            answer_key=key, issue=given.issue, reason=given.reason, text=given.text
        )
    )
    return not replaced
