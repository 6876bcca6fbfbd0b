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


@given(st.text(min_size=1, max_size=60), st.dates().map(lambda d: d.isoformat()))
def test_an_issue_unsubscribe_link_round_trips(subscriber_id: str, day: str) -> None:
    token = TOKENS.unsubscribe_for(day)(subscriber_id)
    assert token == TOKENS.unsubscribe(subscriber_id, day)
    assert TOKENS.read_unsubscribe_link(token) == (subscriber_id, day)
    assert TOKENS.read_unsubscribe(token) == subscriber_id
    assert all(c.isalnum() or c in "-_." for c in token)


def test_an_issue_unsubscribe_link_names_its_issue() -> None:
    """The day is signed with the reader: moving an unsubscribe to another issue fails."""
    token = TOKENS.unsubscribe("subscriber-42", "2026-12-04")
    assert token.startswith("20261204.")
    # What itsdangerous itself signs for "DAY.PAYLOAD" with the issue salt.
    reference = URLSafeSerializer(
        b"a-test-secret-of-some-length",
        salt=SALTS["unsubscribe_issue"],
        signer_kwargs={"digest_method": hashlib.sha256},
    )
    assert reference.make_signer().unsign(token).decode().startswith("20261204.")
    for altered in (token.replace("20261204", "20261211", 1), token.replace("20261204.", "", 1)):
        with pytest.raises(TokenError, match="not valid"):
            TOKENS.read_unsubscribe_link(altered)
    with pytest.raises(TokenError):
        Tokens(b"another-secret").read_unsubscribe_link(token)
    with pytest.raises(TokenError, match="not valid"):
        TOKENS.read_unsubscribe_link("2026x204.abc.def")
    with pytest.raises(TokenError, match="not an issue date"):
        TOKENS.unsubscribe_for("4 December")


def test_links_without_an_issue_still_work_and_name_none() -> None:
    old = TOKENS.unsubscribe("subscriber-42")
    assert TOKENS.read_unsubscribe_link(old) == ("subscriber-42", "")


def test_a_rotated_key_still_reads_issue_links() -> None:
    before = Tokens(b"the-key-before-the-rotation").unsubscribe("7", "2026-12-04")
    after = Tokens(b"the-key-after", previous=[b"the-key-before-the-rotation"])
    assert after.read_unsubscribe_link(before) == ("7", "2026-12-04")


def test_answer_tokens_name_a_page_and_an_issue_and_expire() -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    clock.set_now(start)
    token = TOKENS.answer("nonce-1", "2026-12-04")
    assert TOKENS.read_answer(token, 3600) == ("nonce-1", "2026-12-04")
    assert TOKENS.read_answer(TOKENS.answer("nonce-2", ""), 3600) == ("nonce-2", "")
    with pytest.raises(TokenError):
        TOKENS.read_answer(TOKENS.csrf("nonce-1 2026-12-04"), 3600)  # another purpose
    with pytest.raises(TokenError):
        TOKENS.read_answer(TOKENS.answer("nonce-3", "not a day"), 3600)
    clock.set_now(start + timedelta(hours=2))
    with pytest.raises(TokenError, match="expired"):
        TOKENS.read_answer(token, 3600)
