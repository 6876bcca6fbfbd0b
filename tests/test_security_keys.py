"""Rotating the signing key: old links keep working, new ones use the new key, serve checks."""

from __future__ import annotations

import pytest
from _public_fixtures import Site
from _send_fixtures import SEND_DAY, add_readers

from digest.errors import ConfigError, TokenError
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


# -- weak keys ------------------------------------------------------------------------

# Keys a person types, each refused with the reason given.
WEAK_KEYS = {
    "a": "1 bytes long",
    "a" * 16: "16 bytes long",
    "a" * 40: "repeats the same 1 character",
    "0123456789abcdef" * 2: "repeats the same 16 characters",
    "password" * 5: "repeats the same 8 characters",
    "abababababababababababababababababcd": "only 4 different characters",
    "a" * 25 + "bcdefgh": "too little entropy",
    "abcdefghijklmnopqrstuvwxyz0123456789": "neighbouring characters",
    "passwordpasswordpassword12345678": "repeats pieces of itself",
    "Summer2026!Summer2026!Summer2026!Winter": "repeats pieces of itself",
}


@pytest.mark.parametrize("key", list(WEAK_KEYS))
def test_weak_keys_are_refused_with_the_reason(key: str) -> None:
    from digest.tokens import key_weakness

    assert WEAK_KEYS[key] in key_weakness(key.encode())


def test_random_keys_of_every_usual_kind_pass() -> None:
    import base64
    import secrets

    from digest.tokens import key_weakness

    makers = {
        "digest secret": lambda: secrets.token_urlsafe(32),
        "openssl rand -hex 32": lambda: secrets.token_hex(32),
        "openssl rand -hex 16": lambda: secrets.token_hex(16),
        "openssl rand -base64 32": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
        "openssl rand -base64 24": lambda: base64.b64encode(secrets.token_bytes(24)).decode(),
    }
    for name, make in makers.items():
        for _ in range(2000):
            key = make()
            assert key_weakness(key.encode()) == "", (name, key)
    assert key_weakness(OLD.encode()) == key_weakness(NEW.encode()) == ""


def _one_clear_line(output: str, where: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert where in lines[0] and "`digest secret` makes a good one" in lines[0], lines[0]


def test_a_weak_previous_key_is_refused_so_a_link_forged_with_it_never_reads(
    site_ws: Workspace, send_ws: Workspace, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_PREVIOUS_SECRET_KEYS", f"{OLD} a")
    refused = cli("serve", "--get", "/healthz")
    assert refused.exit_code == 1
    _one_clear_line(refused.output, "DIGEST_PREVIOUS_SECRET_KEYS (key 2 of 2)")
    forged = Tokens(b"a").confirm("anyone")
    with pytest.raises(ConfigError, match="DIGEST_PREVIOUS_SECRET_KEYS"):
        Site(site_ws, None).get(f"/confirm/{forged}")
    # Every command that loads the keys checks them, not only `serve`.
    send = cli("send", SEND_DAY, "--test", "someone@example.com")
    assert send.exit_code == 1
    _one_clear_line(send.output, "DIGEST_PREVIOUS_SECRET_KEYS (key 2 of 2)")


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (("check", SEND_DAY), "DIGEST_SECRET_KEY"),
        (("send", SEND_DAY, "--test", "someone@example.com"), "DIGEST_SECRET_KEY"),
        (("consent", "verify"), "DIGEST_PSEUDONYM_KEY"),
        (("subscribers", "list"), "DIGEST_PSEUDONYM_KEY"),
    ],
)
def test_every_command_refuses_a_weak_key_it_loads(
    send_ws: Workspace,
    cli,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    variable: str,
) -> None:
    monkeypatch.setenv(variable, "a" * 16)  # sixteen a's were enough before
    refused = cli(*command)
    assert refused.exit_code == 1, refused.output
    _one_clear_line(refused.output, variable)


def test_a_weak_key_file_is_refused_naming_the_file(
    workspace: Workspace, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_PSEUDONYM_KEY", raising=False)
    path = workspace.subscribers_dir / ".keys" / "DIGEST_PSEUDONYM_KEY"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x" * 43 + "\n")
    refused = cli("subscribers", "list")
    assert refused.exit_code == 1
    _one_clear_line(refused.output, str(path))
