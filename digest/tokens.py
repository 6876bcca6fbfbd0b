"""Signed, URL-safe tokens for the links in emails and pages.

One itsdangerous serializer per purpose, each with its own salt, so an
unsubscribe token can never be replayed as a confirmation (or the reverse).
Unsubscribe tokens never expire (an old email's link must keep working);
confirmation, CSRF and answer tokens carry a timestamp and expire. After a key
rotation the previous keys still verify; only the newest signs.

Building a token runs once per recipient of a send, so the per-purpose HMAC
key is derived once (itsdangerous derives it on every call) and the
timestamp comes from :mod:`digest.clock`, so ``--now`` rehearsals agree.

The unsubscribe link in an issue names that issue: ``DAY.PAYLOAD.SIG``, the
issue's date before the subscriber's signed payload, the signature covering
both (its own salt). The day's part of the MAC is keyed once per issue, so a
recipient costs what an issue-less token did. Links mailed before carry no
issue (``PAYLOAD.SIG``) and keep working: their unsubscribes are counted as
not attributed to any issue.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from itsdangerous import (
    BadData,
    BadSignature,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode

from digest import clock
from digest.errors import TokenError

SALTS = {
    "unsubscribe": b"digest.unsubscribe.v1",
    "unsubscribe_issue": b"digest.unsubscribe.issue.v1",
    "answer": b"digest.unsubscribe-answer.v1",
    "manage": b"digest.manage.v1",
    "confirm": b"digest.confirm.v1",
    "csrf": b"digest.csrf.v1",
    "return_path": b"digest.return-path.v1",
    "mailto": b"digest.mailto.v1",
    "message_id": b"digest.message-id.v1",
}

# Short tokens for the local part of an address (VERP return path, mailto
# unsubscribe): "DAY.ID.MAC" / "ID.MAC" with a 64-bit MAC, at most 64 characters
# with a prefix, and only characters a dot-atom allows (base64url has no dot).
_ADDRESS_MAC_BYTES = 8


class _KeyedSigner(Signer):
    """A Signer whose derived key is computed once, not on every signature."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mac = hmac.new(super().derive_key(), digestmod=self.digest_method)

    def get_signature(self, value: str | bytes) -> bytes:
        # Copying a keyed HMAC skips deriving the key and hashing its blocks.
        mac = self._mac.copy()
        mac.update(value if isinstance(value, bytes) else value.encode("utf-8"))
        return base64_encode(mac.digest())

    def started(self, head: bytes) -> hmac.HMAC:
        """The keyed HMAC with ``head`` already hashed: the shared start of many values."""
        mac = self._mac.copy()
        mac.update(head)
        return mac


class _KeyedTimestampSigner(_KeyedSigner, TimestampSigner):
    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


class _Purpose:
    """One salt: a serializer to read tokens and a long-lived signer to make them.

    ``secrets`` runs oldest to newest, as itsdangerous takes them: every one
    verifies, only the last signs.
    """

    def __init__(self, secrets: list[bytes], purpose: str, timed: bool) -> None:
        cls = URLSafeTimedSerializer if timed else URLSafeSerializer
        signer = _KeyedTimestampSigner if timed else _KeyedSigner
        self.serializer = cls(
            secrets,
            salt=SALTS[purpose],
            signer=signer,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self._signer = self.serializer.make_signer()

    def dumps(self, value: str) -> str:
        # The payload as itsdangerous writes it (compact JSON, base64url), without
        # its zlib attempt, which never wins for a short id and costs most of the time.
        payload = base64_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))
        return self._signer.sign(payload).decode("ascii")

    def unsign(self, token: str) -> bytes:
        """The signed value of ``token`` under any of the keys; BadSignature if none."""
        return self._signer.unsign(token)

    def prefixed(self, head: str) -> Callable[[str], str]:
        """A maker of ``HEAD PAYLOAD.SIG`` tokens, the signature covering ``HEAD PAYLOAD``.

        ``head`` is hashed once here; each token then costs what :meth:`dumps` does.
        """
        signer = self._signer
        assert isinstance(signer, _KeyedSigner)
        started = signer.started(head.encode("ascii"))

        def make(value: str) -> str:
            payload = base64_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))
            mac = started.copy()
            mac.update(payload)
            return f"{head}{payload.decode('ascii')}.{base64_encode(mac.digest()).decode('ascii')}"

        return make


MIN_KEY_BYTES = 32  # every key: the signing key, the retired ones, the pseudonym key
# What a key must show to be taken for random, not typed: most keys that fail
# these were made by hand ("aaaa…", "password" four times, "0123…cdef" twice).
_MIN_DISTINCT = 8
_MIN_ENTROPY_BITS = 80.0  # per-character Shannon entropy times length: a lower bound
_MAX_STEP_SHARE = 0.6  # neighbours equal or one apart ("abcd…", "9876…", "aaaa…")
_MIN_FRESH_SHARE = 0.85  # of its four-character pieces, how many must be new (random: ~all)


def key_weakness(key: bytes) -> str:
    """Why ``key`` is too weak to sign or pseudonymise with; "" when it will do.

    Shorter than :data:`MIN_KEY_BYTES`; one short run repeated; few distinct
    characters; low entropy (Shannon, per character, times the length); pieces
    of itself repeated (a word typed three times and some digits); or mostly a
    sequence. `digest secret` (32 random bytes, base64url) passes every
    rule by far; so do ``openssl rand -hex 32`` and ``-base64 32``.
    """
    if len(key) < MIN_KEY_BYTES:
        return f"is {len(key)} bytes long; a key needs at least {MIN_KEY_BYTES}"
    for period in range(1, len(key) // 2 + 1):
        if all(key[i] == key[i - period] for i in range(period, len(key))):
            return f"repeats the same {period} character{'s' if period > 1 else ''} over and over"
    counts = collections.Counter(key)
    if len(counts) < _MIN_DISTINCT:
        return f"uses only {len(counts)} different characters"
    size = len(key)
    entropy = -sum(n / size * math.log2(n / size) for n in counts.values()) * size
    if entropy < _MIN_ENTROPY_BITS:
        return f"has too little entropy (about {entropy:.0f} bits; random keys have over 128)"
    grams = [key[i : i + 4] for i in range(size - 3)]
    if len(set(grams)) < _MIN_FRESH_SHARE * len(grams):
        return "repeats pieces of itself (a word typed again and again?)"
    steps = sum(1 for a, b in zip(key, key[1:], strict=False) if abs(a - b) <= 1)
    if steps > _MAX_STEP_SHARE * (size - 1):
        return "is mostly a run of neighbouring characters (like abcd… or 1234…)"
    return ""


def key_fingerprint(secret: bytes) -> str:
    """A short public name for a signing key (an HMAC under it: it reveals nothing of it)."""
    return hmac.new(secret, b"digest.key-fingerprint.v1", hashlib.sha256).hexdigest()[:16]


class Tokens:
    """Makes tokens with one workspace secret; reads them with it or a previous one.

    ``previous`` keys (after a rotation) still verify the links already mailed;
    only ``secret`` signs.
    """

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        if not secret:
            raise TokenError("the signing secret is empty; set the web secret_key_env variable")
        keys = [*(key for key in previous if key and key != secret), secret]
        self.fingerprint = key_fingerprint(secret)
        self.verifying = tuple(key_fingerprint(key) for key in keys)
        self._unsubscribe = _Purpose(keys, "unsubscribe", timed=False)
        self._unsubscribe_issue = _Purpose(keys, "unsubscribe_issue", timed=False)
        self._answer = _Purpose(keys, "answer", timed=True)
        self._manage = _Purpose(keys, "manage", timed=False)
        self._confirm = _Purpose(keys, "confirm", timed=True)
        self._csrf = _Purpose(keys, "csrf", timed=True)
        # address tokens: the newest key makes them, every key still reads them
        self._return_path = [
            hmac.new(key + SALTS["return_path"], digestmod=hashlib.sha256) for key in keys[::-1]
        ]
        self._mailto = [
            hmac.new(key + SALTS["mailto"], digestmod=hashlib.sha256) for key in keys[::-1]
        ]
        self._message_id = [
            hmac.new(key + SALTS["message_id"], digestmod=hashlib.sha256) for key in keys[::-1]
        ]

    # -- unsubscribe: no expiry ------------------------------------------------
    def unsubscribe(self, subscriber_id: str, issue: str = "") -> str:
        """A subscriber's unsubscribe token; with ``issue`` (a date), one naming that issue."""
        if issue:
            return self.unsubscribe_for(issue)(subscriber_id)
        return self._unsubscribe.dumps(str(subscriber_id))

    def unsubscribe_for(self, issue: str) -> Callable[[str], str]:
        """The maker of one issue's unsubscribe tokens (``DAY.PAYLOAD.SIG``), set up once."""
        return self._unsubscribe_issue.prefixed(_compact_day(issue) + ".")

    def read_unsubscribe(self, token: str) -> str:
        """The subscriber of an unsubscribe token, with or without an issue."""
        return self.read_unsubscribe_link(token)[0]

    def read_unsubscribe_link(self, token: str) -> tuple[str, str]:
        """(subscriber id, issue date ``YYYY-MM-DD``) of an unsubscribe token.

        The issue is "" for a token made without one (links mailed before
        links named their issue).
        """
        day, _, rest = token.partition(".")
        if rest.count(".") != 1:
            return _subscriber(_read(self._unsubscribe, token, "unsubscribe")), ""
        if not (len(day) == 8 and day.isdigit()):
            raise TokenError("this unsubscribe link is not valid (altered or cut short)")
        purpose = self._unsubscribe_issue
        try:
            signed = purpose.unsign(token)
            payload = signed.partition(b".")[2]
            value = purpose.serializer.load_payload(payload)
        except BadData:
            raise TokenError(
                "this unsubscribe link is not valid (altered, cut short, or meant for another page)"
            ) from None
        return _subscriber(value), f"{day[:4]}-{day[4:6]}-{day[6:]}"

    # -- answer: the one-time token of the "why are you leaving?" form -------------
    def answer(self, nonce: str, issue: str) -> str:
        """Names one page's answer (``nonce``) and the issue; nothing of the reader."""
        return self._answer.dumps(f"{nonce} {issue}")

    def read_answer(self, token: str, max_age_seconds: int) -> tuple[str, str]:
        """(nonce, issue date or "") of an answer token; TokenError when bad or expired."""
        value = _read(self._answer, token, "form", max_age_seconds)
        nonce, _, issue = value.partition(" ") if isinstance(value, str) else ("", "", "")
        if not nonce or (issue and not _is_day(issue)):
            raise TokenError("this form is not valid")
        return nonce, issue

    # -- manage (preferences page): no expiry --------------------------------------
    def manage(self, subscriber_id: str) -> str:
        return self._manage.dumps(str(subscriber_id))

    def read_manage(self, token: str) -> str:
        return _subscriber(_read(self._manage, token, "preferences"))

    # -- confirm: expires -------------------------------------------------------
    def confirm(self, subscriber_id: str) -> str:
        return self._confirm.dumps(str(subscriber_id))

    def read_confirm(self, token: str, max_age_seconds: int) -> str:
        return _subscriber(_read(self._confirm, token, "confirmation", max_age_seconds))

    # -- csrf: a form token bound to a value (e.g. a session or form id) ----------
    def csrf(self, value: str = "") -> str:
        return self._csrf.dumps(str(value))

    def read_csrf(
        self, token: str, max_age_seconds: int = 3600, expected: str | None = None
    ) -> str:
        value = _read(self._csrf, token, "form", max_age_seconds)
        if not isinstance(value, str) or (expected is not None and value != expected):
            raise TokenError("the form token does not belong to this form; reload the page")
        return value

    # -- address tokens: a VERP return path and a mailto: unsubscribe address ---------
    def return_path(self, issue: str, subscriber_id: str) -> str:
        """``YYYYMMDD.ID.MAC``: names an issue's message to one subscriber, for a bounce."""
        value = f"{issue.replace('-', '')}.{subscriber_id}"
        return f"{value}.{_address_mac(self._return_path[0], value)}"

    def read_return_path(self, token: str) -> tuple[str, str]:
        """(issue date ``YYYY-MM-DD``, subscriber id) of a return-path token."""
        day, _, rest = token.partition(".")
        subscriber_id, _, mac = rest.rpartition(".")
        if not (len(day) == 8 and day.isdigit() and subscriber_id and mac):
            raise TokenError("this bounce address is not one digest made")
        if not _any_mac(self._return_path, f"{day}.{subscriber_id}", mac):
            raise TokenError("this bounce address is not valid (altered or another key)")
        return f"{day[:4]}-{day[4:6]}-{day[6:]}", subscriber_id

    def mailto(self, subscriber_id: str) -> str:
        """``ID.MAC``: a subscriber's own unsubscribe address token."""
        return f"{subscriber_id}.{_address_mac(self._mailto[0], subscriber_id)}"

    def read_mailto(self, token: str) -> str:
        subscriber_id, _, mac = token.rpartition(".")
        if not subscriber_id or not _any_mac(self._mailto, subscriber_id, mac):
            raise TokenError("this unsubscribe address is not valid (altered or another key)")
        return subscriber_id

    # -- Message-ID: a keyed MAC, so nobody without the key can make one ------------------
    def message_id_mac(self, value: str) -> str:
        """96 bits of HMAC (hex) over ``value`` with the newest key."""
        mac = self._message_id[0].copy()
        mac.update(value.encode("utf-8"))
        return mac.hexdigest()[:24]

    def check_message_id_mac(self, value: str, mac: str) -> bool:
        """Whether ``mac`` is :meth:`message_id_mac` of ``value`` under any of the keys."""
        for keyed in self._message_id:
            expected = keyed.copy()
            expected.update(value.encode("utf-8"))
            if hmac.compare_digest(mac, expected.hexdigest()[:24]):
                return True
        return False


def _compact_day(issue: str) -> str:
    """``YYYY-MM-DD`` as ``YYYYMMDD``; TokenError for anything else."""
    if not _is_day(issue):
        raise TokenError(f"{issue!r} is not an issue date (YYYY-MM-DD)")
    return issue.replace("-", "")


def _is_day(text: str) -> bool:
    return (
        len(text) == 10
        and text[4] == text[7] == "-"
        and text[:4].isdigit()
        and text[5:7].isdigit()
        and text[8:].isdigit()
    )


def _any_mac(keyed: list[hmac.HMAC], value: str, mac: str) -> bool:
    """Whether ``mac`` is the address MAC of ``value`` under any of the keys."""
    return any(hmac.compare_digest(mac, _address_mac(k, value)) for k in keyed)


def _address_mac(keyed: hmac.HMAC, value: str) -> str:
    mac = keyed.copy()
    mac.update(value.encode("utf-8"))
    return base64_encode(mac.digest()[:_ADDRESS_MAC_BYTES]).decode("ascii")


def _read(purpose: _Purpose, token: str, what: str, max_age: int | None = None) -> Any:
    serializer = purpose.serializer
    try:
        if isinstance(serializer, URLSafeTimedSerializer):
            return serializer.loads(token, max_age=max_age)
        return serializer.loads(token)
    except SignatureExpired:
        raise TokenError(f"this {what} link has expired; ask for a new one", expired=True) from None
    except BadSignature:
        raise TokenError(
            f"this {what} link is not valid (altered, cut short, or meant for another page)"
        ) from None
    except BadData:
        raise TokenError(f"this {what} link is not valid") from None


def _subscriber(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TokenError("this link does not name a subscriber")
    return value
