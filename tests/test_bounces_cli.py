"""The bounce commands end to end: ingest, the report, deliveries, subscribers show, send."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from _bounce_fixtures import bounce_config, reader_values, report
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SEND_DAY, add_readers
from conftest import Cli

from digest.send import engine
from digest.workspace import Workspace


def test_no_report_before_a_send(send_ws: Workspace) -> None:
    result = Cli(send_ws.root)("bounces")
    assert result.exit_code == 0
    assert "no issue has been sent yet" in result.output


def test_ingest_then_the_report_deliveries_and_history(send_ws: Workspace, tmp_path: Path) -> None:
    ws = bounce_config(send_ws)
    ids = add_readers(ws, 10)
    engine.run_send(ws, SEND_DAY)
    cli = Cli(ws.root)
    hard = tmp_path / "hard.eml"
    hard.write_bytes(
        report(
            "postfix-user-unknown.eml", reader_values(ws, ids[0], "reader0@example.net", SEND_DAY)
        )
    )
    done = cli("bounces", "ingest", str(hard))
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "1 message(s) read: 1 suppressed"
    full = report("mailbox-full.eml", reader_values(ws, ids[1], "reader1@example.net", SEND_DAY))
    piped = cli("bounces", "ingest", "-", input=full.decode())
    assert "1 counted" in piped.output

    shown = cli("bounces", SEND_DAY)
    assert shown.exit_code == 0, shown.output
    assert "audience 10: 1 hard (10.00%), 1 soft" in shown.output
    assert "5.1.1" in shown.output and "example.net" in shown.output
    assert "reader0@" not in shown.output  # addresses are masked
    as_json = json.loads(cli("bounces", "--json").output)  # the last issue sent
    assert (as_json["issue"], as_json["hard"], as_json["soft"]) == (SEND_DAY, 1, 1)
    assert json.loads(cli("bounces", SEND_DAY, "--json").output)["hard_rate"] == 0.1
    assert json.loads(cli("bounces", "--json", SEND_DAY).output)["issue"] == SEND_DAY

    deliveries = cli("deliveries", SEND_DAY)
    assert "bounced: 1 hard, 1 soft, 0 complaints, 0 mailbox unsubscribes" in deliveries.output

    history = cli("subscribers", "show", "reader0@example.net")
    assert "bounce history:" in history.output
    assert "hard 5.1.1 via file (issue 2026-12-04): suppressed" in history.output

    # 10% hard bounces on the last issue: the next send warns first.
    nxt = sample_issue(day=date(2026, 12, 11))
    nxt.status = "ready"
    write_issue(ws, nxt)
    sent = cli("send", "2026-12-11", "--yes")
    assert sent.exit_code == 0, sent.output
    assert "warning: issue 2026-12-04 had 10.0% hard bounces (1 of 10; over 2%)" in sent.output
    assert "digest bounces 2026-12-04" in sent.output


def test_bad_input_is_one_line(send_ws: Workspace, tmp_path: Path) -> None:
    cli = Cli(send_ws.root)
    missing = cli("bounces", "ingest", str(tmp_path / "nope.eml"))
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: {tmp_path / 'nope.eml'}: no such file or folder"
    unset = cli("bounces", "fetch")
    assert unset.exit_code == 1
    assert "[bounces.imap] host is empty" in unset.output
    assert "Traceback" not in unset.output


def test_ingest_from_an_mta_pipe_names_the_recipient_with_to(send_ws: Workspace) -> None:
    """A Postfix pipe passes ${original_recipient}: the VERP address need not be in the headers."""
    ws = bounce_config(send_ws)
    ids = add_readers(ws, 2)
    engine.run_send(ws, SEND_DAY)
    cli = Cli(ws.root)
    for n, sid in enumerate(ids):
        values = reader_values(ws, sid, f"reader{n}@example.net", SEND_DAY)
        verp = values["RETURN_PATH"]
        values["RETURN_PATH"] = "bounces@relay.example.org"  # what the headers show
        values["MESSAGE_ID"] = "<unrelated@relay.example.org>"
        values["UNSUBSCRIBE_URL"] = "https://elsewhere.example/u"
        raw = report("qmail-no-dsn.eml", values).decode()
        if n == 0:  # without the envelope recipient nothing proves the message was ours
            assert "1 not ours" in cli("bounces", "ingest", "-", input=raw).output
        else:
            piped = cli("bounces", "ingest", "--to", verp, "-", input=raw)
            assert "1 suppressed" in piped.output, piped.output


def test_ingest_with_the_database_down_asks_the_mta_to_try_again(send_ws: Workspace) -> None:
    message = b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered\r\n\r\n550 5.1.1\r\n"
    down = {"DIGEST_DATABASE_URL": "postgresql://digest@127.0.0.1:1/digest"}
    result = Cli(send_ws.root)("bounces", "ingest", "-", input=message.decode(), env=down)
    assert result.exit_code == 75, result.output
    assert "try again later" in result.output and "Traceback" not in result.output


def test_send_due_warns_about_a_bad_last_issue_like_the_interactive_send(
    send_ws: Workspace, tmp_path: Path
) -> None:
    ws = bounce_config(send_ws)
    ids = add_readers(ws, 10)
    engine.run_send(ws, SEND_DAY)
    cli = Cli(ws.root)
    hard = report(
        "postfix-user-unknown.eml", reader_values(ws, ids[0], "reader0@example.net", SEND_DAY)
    )
    assert "1 suppressed" in cli("bounces", "ingest", "-", input=hard.decode()).output
    nxt = sample_issue(day=date(2026, 12, 11))
    nxt.status = "ready"
    write_issue(ws, nxt)
    due = cli("--now", "2026-12-11T07:01:00+00:00", "send", "--due")
    assert due.exit_code == 0, due.output
    assert "sent issue 2026-12-11" in due.output
    assert "warning: issue 2026-12-04 had 10.0% hard bounces (1 of 10; over 2%)" in due.output
