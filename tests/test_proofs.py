"""Test copies and renders for a person look like the real thing.

`digest send --test` gives every copy a Message-ID never used before (a
mailbox drops a second message with a Message-ID it has seen, so the editor
would see the old proof). `digest render --to` a subscriber renders exactly
that subscriber's message; for anyone else a sample with a unique Message-ID.
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

from _send_fixtures import SEND_DAY, SmtpSink, use_config

from digest.issue import workspace_issue
from digest.message import MessageBuilder, message_id
from digest.people.changes import admin_add
from digest.render import Recipient, prepare
from digest.store import open_store
from digest.tokens import Tokens
from digest.workspace import Workspace


def test_each_test_copy_has_a_fresh_message_id(
    send_ws: Workspace, smtp_sink: SmtpSink, cli
) -> None:  # type: ignore[no-untyped-def]
    use_config(
        send_ws,
        f"""
[sender]
kind = "smtp"
[sender.smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
security = "none"
""",
    )
    for _ in range(2):
        result = cli("send", SEND_DAY, "--test", "ed@example.com", "--test", "ann@example.com")
        assert result.exit_code == 0, result.output
    ids = [message_from_bytes(r.data)["Message-ID"] for r in smtp_sink.received]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert all(
        message_from_bytes(r.data)["Subject"].startswith("[TEST]") for r in smtp_sink.received
    )


def parse(path: Path):  # type: ignore[no-untyped-def]
    return message_from_bytes(path.read_bytes(), policy=default_policy)


def test_render_to_a_subscriber_is_exactly_their_message(
    send_ws: Workspace, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with open_store(send_ws) as store:
        ann = admin_add(store, "ann@example.com", "Ann Lee", source="test", confirmed=True)
    out = tmp_path / "ann.eml"
    result = cli("render", SEND_DAY, "--eml", str(out), "--to", "ANN@example.com")
    assert result.exit_code == 0, result.output
    rendered = parse(out)
    assert rendered["Message-ID"] == message_id(send_ws.config, send_ws.tokens(), SEND_DAY, ann.id)
    assert rendered["To"].addresses[0].display_name == "Ann Lee"  # the stored name
    builder = MessageBuilder.for_workspace(
        send_ws, prepare(send_ws, workspace_issue(send_ws, SEND_DAY))
    )
    theirs = message_from_bytes(
        builder.build(Recipient(ann.id, ann.email, "Ann Lee")), policy=default_policy
    )
    for header in ("To", "Message-ID", "List-Unsubscribe", "Subject"):
        assert rendered[header] == theirs[header], header
    assert rendered.get_body(("html",)).get_content() == theirs.get_body(("html",)).get_content()
    url = str(rendered["List-Unsubscribe"]).strip("<>").split(">")[0]
    tokens = Tokens(send_ws.secret(send_ws.config.web.secret_key_env))
    assert tokens.read_unsubscribe(url.rsplit("/", 1)[-1]) == ann.id


def test_render_to_anyone_else_is_a_sample_with_a_unique_message_id(
    send_ws: Workspace, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for n in range(2):
        out = tmp_path / f"x{n}.eml"
        result = cli("render", SEND_DAY, "--eml", str(out), "--to", "Zoe <zoe@example.com>")
        assert result.exit_code == 0, result.output
        rendered = parse(out)
        assert rendered["To"].addresses[0].addr_spec == "zoe@example.com"
        assert rendered["To"].addresses[0].display_name == "Zoe"
        ids.append(rendered["Message-ID"])
    out = tmp_path / "sample.eml"
    assert cli("render", SEND_DAY, "--eml", str(out)).exit_code == 0
    ids.append(parse(out)["Message-ID"])
    assert len(set(ids)) == 3
