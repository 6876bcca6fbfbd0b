"""Signed tokens: round trips, one salt per purpose, tampering and expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from digest import clock
from digest.errors import TokenError
from digest.tokens import SALTS, Tokens

TOKENS = Tokens(b"a-test-secret-of-some-length")


@given(st.text(min_size=1, max_size=60))
def test_unsubscribe_round_trip_for_any_id(subscriber_id: str) -> None:
    token = TOKENS.unsubscribe(subscriber_id)
    assert TOKENS.read_unsubscribe(token) == subscriber_id
    assert all(c.isalnum() or c in "-_." for c in token)


def test_tokens_are_plain_itsdangerous_tokens() -> None:
    """The fast signer writes what itsdangerous itself would, so any reader accepts it."""
    reference = URLSafeSerializer(
        b"a-test-secret-of-some-length",
        salt=SALTS["unsubscribe"],
        signer_kwargs={"digest_method": hashlib.sha256},
    )
    assert TOKENS.unsubscribe("subscriber-42") == reference.dumps("subscriber-42")
    assert reference.loads(TOKENS.unsubscribe("7")) == "7"


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    with pytest.raises(TokenError, match="confirmation link is not valid"):
        TOKENS.read_confirm(TOKENS.unsubscribe("42"), max_age_seconds=3600)
    with pytest.raises(TokenError, match="unsubscribe link is not valid"):
        TOKENS.read_unsubscribe(TOKENS.confirm("42"))
    with pytest.raises(TokenError):
        TOKENS.read_manage(TOKENS.unsubscribe("42"))


def test_tampered_and_foreign_tokens_are_refused() -> None:
    token = TOKENS.unsubscribe("42")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError, match="altered"):
        TOKENS.read_unsubscribe(tampered)
    with pytest.raises(TokenError):
        Tokens(b"another-secret").read_unsubscribe(token)
    with pytest.raises(TokenError):
        TOKENS.read_unsubscribe("not-a-token")


def test_confirmation_tokens_expire() -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    clock.set_now(start)
    token = TOKENS.confirm("42")
    clock.set_now(start + timedelta(days=6))
    assert TOKENS.read_confirm(token, max_age_seconds=7 * 86400) == "42"
    clock.set_now(start + timedelta(days=8))
    with pytest.raises(TokenError, match="expired"):
        TOKENS.read_confirm(token, max_age_seconds=7 * 86400)


def test_csrf_tokens_are_bound_to_their_value() -> None:
    token = TOKENS.csrf("form-1")
    assert TOKENS.read_csrf(token, expected="form-1") == "form-1"
    with pytest.raises(TokenError, match="does not belong"):
        TOKENS.read_csrf(token, expected="form-2")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(TokenError, match="empty"):
        Tokens(b"")
