"""Rotating the signing key: old links keep working, new ones use the new key, serve checks."""

from __future__ import annotations

import pytest
from _public_fixtures import Site
from _send_fixtures import SEND_DAY, add_readers

from digest.errors import TokenError
from digest.people import changes, record
from digest.send import engine
from digest.store import Store, open_store
from digest.tokens import Tokens, key_fingerprint
from digest.workspace import Workspace

OLD = "the-old-signing-key-0123456789abcdef"
NEW = "the-new-signing-key-fedcba9876543210"


def test_only_the_newest_key_signs_and_every_listed_key_verifies() -> None:
    rotated = Tokens(NEW.encode(), previous=[OLD.encode()])
    old_link = Tokens(OLD.encode()).unsubscribe("reader-1")
    assert rotated.read_unsubscribe(old_link) == "reader-1"
    new_link = rotated.unsubscribe("reader-2")
    assert Tokens(NEW.encode()).read_unsubscribe(new_link) == "reader-2"
    with pytest.raises(TokenError):
        Tokens(OLD.encode()).read_unsubscribe(new_link)
    assert rotated.fingerprint == key_fingerprint(NEW.encode()) != key_fingerprint(OLD.encode())
    assert OLD not in key_fingerprint(OLD.encode())


def test_an_unsubscribe_link_signed_with_the_previous_key_still_works(
    site_ws: Workspace, smtp_sink, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = changes.admin_add(store, "rotated@example.com", source="t", confirmed=True).id
    old_link = f"/unsubscribe/{Tokens(OLD.encode()).unsubscribe(sid)}"
    monkeypatch.setenv("DIGEST_SECRET_KEY", NEW)
    site = Site(site_ws, smtp_sink)
    try:
        refused = site.post(old_link, data={"List-Unsubscribe": "One-Click"})
        assert refused.status_code == 400 and "not valid" in refused.text
    finally:
        site.close()
    monkeypatch.setenv("DIGEST_PREVIOUS_SECRET_KEYS", f"  {OLD} ")
    site = Site(site_ws, smtp_sink)
    try:
        reply = site.post(old_link, data={"List-Unsubscribe": "One-Click"})
        assert reply.status_code == 200
        assert record.get_subscriber(store, sid).status == "unsubscribed"  # type: ignore[union-attr]
        # What the site signs now, it signs with the new key only.
        token = site.form_token()
        assert Tokens(NEW.encode()).read_csrf(token, expected=None)
        with pytest.raises(TokenError):
            Tokens(OLD.encode()).read_csrf(token, expected=None)
    finally:
        site.close()


def test_each_send_records_its_key_and_serve_refuses_keys_that_cannot_verify_it(
    send_ws: Workspace, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_readers(send_ws, 2)
    monkeypatch.setenv("DIGEST_SECRET_KEY", OLD)
    assert engine.run_send(send_ws, SEND_DAY).complete
    with open_store(send_ws) as store:
        assert store.link_keys(SEND_DAY) == {key_fingerprint(OLD.encode())}

    monkeypatch.setenv("DIGEST_SECRET_KEY", NEW)
    refused = cli("serve", "--get", "/healthz")
    assert refused.exit_code == 1
    assert "Traceback" not in refused.output
    assert f"issue {SEND_DAY}" in refused.output
    assert 'export DIGEST_PREVIOUS_SECRET_KEYS="<the key that sent it>"' in refused.output

    # Retiring a leaked key on purpose: the operator says so.
    assert cli("serve", "--retire-sent-key", "--get", "/healthz").exit_code == 0
    monkeypatch.setenv("DIGEST_PREVIOUS_SECRET_KEYS", OLD)
    assert cli("serve", "--get", "/healthz").exit_code == 0
    monkeypatch.delenv("DIGEST_PREVIOUS_SECRET_KEYS")
    monkeypatch.setenv("DIGEST_SECRET_KEY", OLD)
    assert cli("serve", "--get", "/healthz").exit_code == 0


def test_bounce_and_mailto_addresses_of_mail_signed_before_a_rotation_still_read(
    site_ws: Workspace, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.send.intake.reader import tokens_for

    monkeypatch.setenv("DIGEST_SECRET_KEY", OLD + "\n")  # a stray newline changes nothing
    before = site_ws.tokens()
    return_path, mailto = before.return_path("2026-12-04", "r1"), before.mailto("r1")
    monkeypatch.setenv("DIGEST_SECRET_KEY", NEW)
    with pytest.raises(TokenError):
        tokens_for(store).read_return_path(return_path)
    monkeypatch.setenv("DIGEST_PREVIOUS_SECRET_KEYS", OLD)
    after = tokens_for(store)
    assert after.read_return_path(return_path) == ("2026-12-04", "r1")
    assert after.read_mailto(mailto) == "r1"
    # New addresses are made with the new key alone.
    with pytest.raises(TokenError):
        Tokens(OLD.encode()).read_mailto(after.mailto("r2"))
