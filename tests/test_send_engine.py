"""The send engine and the deliveries ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from _send_fixtures import SEND_DAY, SmtpSink, add_readers, use_config

from digest import clock
from digest.errors import IssueError, SendError
from digest.issue import load_issue
from digest.people.audience import audience
from digest.people.changes import suppress, unsubscribe
from digest.send import engine
from digest.send.deliveries import Claimed, DeliveryLedger
from digest.send.sender import Result, Sender
from digest.store import Store, open_store, stamp
from digest.workspace import Workspace


def outbox_files(ws: Workspace) -> list[Path]:
    return sorted((ws.outbox_dir / SEND_DAY).glob("*.eml"))


def test_send_to_the_outbox_once_each_and_mark_the_issue_sent(send_ws: Workspace) -> None:
    ids = add_readers(send_ws, 12)
    report = engine.run_send(send_ws, SEND_DAY)
    assert report.complete and report.counts["sent"] == 12 and report.audience == 12
    assert sorted(p.stem for p in outbox_files(send_ws)) == sorted(ids)
    body = outbox_files(send_ws)[0].read_bytes()
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in body
    assert load_issue(send_ws.issues_dir / f"{SEND_DAY}.yaml").status == "sent"
    again = engine.run_send(send_ws, SEND_DAY)
    assert again.this_run == {} and again.counts["sent"] == 12


def test_the_audience_is_frozen_once(send_ws: Workspace) -> None:
    add_readers(send_ws, 6)
    first = engine.run_send(send_ws, SEND_DAY, limit=2)
    assert first.counts["sent"] == 2 and first.counts["pending"] == 4 and not first.complete
    assert "send 2026-12-04 --yes" in first.resume
    add_readers(send_ws, 3, start=100)  # joined after the freeze: not this issue's audience
    with open_store(send_ws) as store:
        assert DeliveryLedger(store, SEND_DAY).freeze(iter(())) is None
    second = engine.run_send(send_ws, SEND_DAY)
    assert second.complete and second.counts["sent"] == 6 and len(outbox_files(send_ws)) == 6


def test_unsubscribed_or_suppressed_after_the_freeze_are_skipped(send_ws: Workspace) -> None:
    ids = sorted(add_readers(send_ws, 6))
    engine.run_send(send_ws, SEND_DAY, limit=1)  # freezes all six, sends the first
    with open_store(send_ws) as store:
        unsubscribe(store, ids[3], method="one_click", source="test", evidence={})
        suppress(store, ids[4], reason="bounced hard", kind="bounced", source="test")
    report = engine.run_send(send_ws, SEND_DAY)
    assert report.complete
    assert report.counts == {**report.counts, "sent": 4, "skipped": 2}
    assert {p.stem for p in outbox_files(send_ws)} == set(ids) - {ids[3], ids[4]}
    reasons = {p["reason"] for p in engine.delivery_stats(send_ws, SEND_DAY)["problems"]}
    assert reasons == {
        "unsubscribed since the send started",
        "suppressed (bounced) since the send started",
    }


def test_refusals(send_ws: Workspace) -> None:
    issue = load_issue(send_ws.issues_dir / f"{SEND_DAY}.yaml")
    issue.status = "draft"
    from digest.issue import save_issue

    save_issue(issue)
    with pytest.raises(IssueError, match="status is draft, not ready"):
        engine.run_send(send_ws, SEND_DAY)
    path = send_ws.config_path
    path.write_text(
        path.read_text().replace(
            'postal_address = "1 Press Lane, Springfield"', 'postal_address = ""'
        )
    )
    with pytest.raises(SendError, match="postal_address is empty.*CAN-SPAM"):
        engine.run_send(send_ws.reload(), SEND_DAY, force=True)


def test_a_dead_runs_messages_become_unknown_and_the_outbox_resends_them(
    send_ws: Workspace,
) -> None:
    add_readers(send_ws, 5)
    with open_store(send_ws) as store:
        from digest.people.audience import audience

        dead = DeliveryLedger(store, SEND_DAY, owner="localhost-gone:999999999:dead")
        dead.freeze(audience(store))
        dead.lease_seconds = -1  # its lease is over as well
        claimed = dead.claim(3)
        assert len(claimed) == 3
    report = engine.run_send(send_ws, SEND_DAY)
    assert report.recovered_unknown == 3
    # The outbox cannot deliver twice (one file per subscriber): it re-sends them.
    assert report.complete and report.counts["sent"] == 5 and len(outbox_files(send_ws)) == 5


class Flaky(Sender):
    """An in-memory sender: scripted results per subscriber, then acceptance."""

    name = "flaky"
    batch_size = 3
    parallel = 2

    def __init__(self, script: dict[str, list[Result]]) -> None:
        self.script = script
        self.delivered: list[str] = []

    async def send(self, batch: list) -> list[Result]:
        await asyncio.sleep(0)
        out = []
        for m in batch:
            queue = self.script.get(m.subscriber_id)
            result = queue.pop(0) if queue else Result.accepted(f"id-{m.subscriber_id}")
            if result.ok:
                assert m.wire.startswith(b"From:") or b"\r\nFrom:" in m.wire
                self.delivered.append(m.subscriber_id)
            out.append(result)
        return out


def test_transient_is_retried_with_backoff_permanent_fails_unknown_is_reported(
    send_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BACKOFF_SECONDS", 0.05)
    ids = sorted(add_readers(send_ws, 7))
    sender = Flaky(
        {
            ids[0]: [Result.transient("451 try later"), Result.transient("451 again")],
            ids[1]: [Result.permanent("550 no such user")],
            ids[2]: [Result.unknown("connection lost during DATA")],
            ids[3]: [Result.transient("452 full")] * 9,
        }
    )
    report = engine.run_send(send_ws, SEND_DAY, sender=sender)
    c = report.counts
    assert (c["sent"], c["failed"], c["unknown"]) == (4, 2, 1)
    assert sorted(sender.delivered) == sorted([ids[0], *ids[4:]])
    assert not report.complete and "retry 2026-12-04 --include-unknown" in report.resume
    problems = {p["reason"]: p for p in engine.delivery_stats(send_ws, SEND_DAY)["problems"]}
    assert problems["550 no such user"]["state"] == "failed"
    assert problems["gave up after 5 attempts: 452 full"]["state"] == "failed"
    # digest retry: transient failures and (asked for) unknown rows go again.
    again = engine.retry(
        send_ws,
        SEND_DAY,
        include_unknown=True,
    )
    assert again.reset == {"deferred": 0, "failed": 1, "unknown": 1}
    assert again.complete  # every row is final: the permanent failure stays failed
    assert (
        again.counts["sent"] == 6 and again.counts["failed"] == 1 and again.counts["unknown"] == 0
    )


def test_a_stop_lets_in_flight_finish_and_records_everything(send_ws: Workspace) -> None:
    add_readers(send_ws, 20)
    stop = threading.Event()
    sender = Flaky({})
    report = engine.run_send(
        send_ws, SEND_DAY, sender=sender, on_progress=lambda p: stop.set(), stop_event=stop
    )
    assert report.stopped and not report.complete
    assert report.counts["sending"] == 0
    assert report.counts["sent"] == len(sender.delivered) < 20
    assert report.counts["pending"] == 20 - report.counts["sent"]
    assert report.resume.endswith("send 2026-12-04 --yes")


def test_smtp_send_through_the_engine(
    send_ws: Workspace, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BACKOFF_SECONDS", 0.05)
    ws = use_config(
        send_ws,
        f"""
[sender]
kind = "smtp"
connections = 3
[sender.smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
security = "none"
""",
    )
    add_readers(ws, 15)
    smtp_sink.script("reader3@example.net", "451 4.7.1 greylisted")
    smtp_sink.script("reader4@example.net", "550 5.1.1 unknown user")
    report = engine.run_send(ws, SEND_DAY)
    assert report.counts["sent"] == 14 and report.counts["failed"] == 1
    got = smtp_sink.recipients()
    assert len(got) == len(set(got)) == 14 and "reader4@example.net" not in got


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_smtp_auth_failure_stops_and_keeps_rows_pending(
    send_ws: Workspace, tls_files, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = SmtpSink(auth=("editor", "right")).start()
    try:
        ws = use_config(
            send_ws,
            f"""
[sender]
kind = "smtp"
[sender.smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
username_env = "T_SMTP_USER"
password_env = "T_SMTP_PASS"
""",
        )
        monkeypatch.setenv("T_SMTP_USER", "editor")
        monkeypatch.setenv("T_SMTP_PASS", "wrong")
        add_readers(ws, 4)
        report = engine.run_send(ws, SEND_DAY)
        assert f"127.0.0.1:{sink.port}: authentication failed" in report.fatal
        assert report.counts["pending"] == 4 and report.counts["sending"] == 0
        assert report.resume.endswith("send 2026-12-04 --yes")
    finally:
        sink.stop()


def test_http_provider_throttling_then_acceptance(send_ws: Workspace) -> None:
    from digest.send.http import HttpSender
    from digest.send.providers import provider_for

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        calls.append(len(batch))
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.2"}, json={"message": "slow"})
        return httpx.Response(200, json={"data": [{"id": f"re-{i}"} for i in range(len(batch))]})

    add_readers(send_ws, 8)
    ws = use_config(
        send_ws,
        '[sender]\nkind = "http"\n[sender.http]\nprovider = "resend"\n'
        'base_url = "https://api.test"\n',
    )
    settings = ws.config.sender.http
    sender = HttpSender(
        provider_for(settings, "tok"), settings, parallel=1, transport=httpx.MockTransport(handler)
    )
    started = time.monotonic()
    report = engine.run_send(ws, SEND_DAY, sender=sender)
    assert report.complete and report.counts["sent"] == 8
    assert calls == [8, 8] and time.monotonic() - started >= 0.2


def test_cli_send_deliveries_and_test_copies(send_ws: Workspace, cli) -> None:
    add_readers(send_ws, 3)
    test = cli("send", SEND_DAY, "--test", "editor@example.org")
    assert test.exit_code == 0, test.output
    assert "[TEST] editor@example.org: accepted" in test.output
    [path] = (send_ws.outbox_dir / SEND_DAY / "test").glob("test-*.eml")  # one per copy
    copy = path.read_bytes()
    assert b"Subject: [TEST] " in copy
    stats = json.loads(cli("deliveries", SEND_DAY, "--json").output)
    assert sum(stats["counts"].values()) == 0  # a test copy is recorded nowhere
    refused = cli("send", SEND_DAY, input="n\n")
    assert "audience 3 via outbox" in refused.output and refused.exit_code == 1
    done = cli("send", SEND_DAY, "--yes")
    assert done.exit_code == 0, done.output
    assert "3 sent, 0 failed" in done.output
    shown = cli("deliveries", SEND_DAY)
    assert "sent 3" in shown.output


# Only on SQLite: PostgreSQL splits a send between processes instead (test_send_crash).
@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_refuses_a_second_process_for_the_same_issue(
    send_ws: Workspace, cli, backend: str
) -> None:
    add_readers(send_ws, 2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from digest.workspace import open_workspace; "
                "from digest.store import open_store; from digest.send.engine import send_lock; "
                f"ws = open_workspace(__import__('pathlib').Path({str(send_ws.root)!r})); "
                "store = open_store(ws)\n"
                f"with send_lock(store, {SEND_DAY!r}):\n"
                "    print('locked', flush=True); time.sleep(30)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = cli("send", SEND_DAY, "--yes")
        assert result.exit_code == 1
        assert f"issue {SEND_DAY} is already being sent by process {holder.pid}" in result.output
    finally:
        holder.kill()
        holder.communicate()
    assert cli("send", SEND_DAY, "--yes").exit_code == 0  # the lock died with its process


def test_deliveries_and_retry_without_a_date_use_the_last_send(send_ws: Workspace, cli) -> None:
    from _render_fixtures import sample_issue, write_issue

    later = sample_issue(day=date(2026, 12, 11))  # the next Friday's draft, still unsent
    write_issue(send_ws, later)
    add_readers(send_ws, 3)
    before = cli("deliveries", "--json")
    assert before.exit_code == 0, before.output
    assert json.loads(before.output)["issue"] == SEND_DAY  # nothing sent: the upcoming one
    assert cli("send", SEND_DAY, "--yes").exit_code == 0
    shown = cli("deliveries")
    assert shown.exit_code == 0, shown.output
    assert f"{SEND_DAY} (sent): audience 3" in shown.output and "sent 3" in shown.output
    again = cli("retry")
    assert again.exit_code == 0, again.output
    assert "put back in line: nothing" in again.output
    assert engine.sent_issue(send_ws, None).slug == SEND_DAY
    assert engine.sent_issue(send_ws, "2026-12-11").slug == "2026-12-11"


def test_an_empty_audience_is_refused_and_the_issue_stays_ready(cli) -> None:  # type: ignore[no-untyped-def]
    """Freezing nobody would mark the issue sent and shut out later subscribers."""
    ws = cli.root
    assert cli("issue", "new", "--date", "2026-12-04").exit_code == 0
    path = ws / "issues" / "2026-12-04.yaml"
    assert (
        cli(
            "add", "https://example.com/a", "--title", "A", "--no-fetch", "--issue", "2026-12-04"
        ).exit_code
        == 0
    )
    path.write_text(
        path.read_text()
        .replace('subject: ""', 'subject: "Hello"')
        .replace('preheader: ""', 'preheader: "Hi"')
    )
    assert cli("issue", "ready", "2026-12-04").exit_code == 0
    refused = cli("send", "2026-12-04", "--yes")
    assert refused.exit_code == 1 and "nobody to send to" in refused.output
    assert "status: ready" in path.read_text()
    assert (
        cli("subscribers", "add", "a@example.com", "--source", "test", "--confirmed").exit_code == 0
    )
    sent = cli("send", "2026-12-04", "--yes")
    assert sent.exit_code == 0, sent.output
    assert "status: sent" in path.read_text()


def _another_run(ws: Workspace) -> str:
    """The owner name of another live run sharing the send (this process is alive), with
    the audience frozen as that run would have frozen it."""
    owner = f"{socket.gethostname()}:{os.getpid()}:helper"
    with open_store(ws) as store:
        DeliveryLedger(store, SEND_DAY, owner=owner).freeze(audience(store))
    return owner


def _accepted(store: Store, owner: str, claimed: list[Claimed]) -> None:
    """Another run records its messages as accepted by the server."""
    DeliveryLedger(store, SEND_DAY, owner=owner).record(
        [(c, Result.accepted(f"id-{c.subscriber_id}")) for c in claimed],
        max_attempts=3,
        backoff=1.0,
    )


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_run_that_runs_out_of_rows_waits_for_another_runs_messages_in_flight(
    send_ws: Workspace, backend: str
) -> None:
    """On PostgreSQL several runs share a send. The one that finds nothing left to take
    waits for the messages another live run has on the wire, so what it reports (the
    line cron mails) is how the send ended, not a moment in the middle of it."""
    add_readers(send_ws, 5)
    helper = _another_run(send_ws)
    with open_store(send_ws) as store:
        on_the_wire = DeliveryLedger(store, SEND_DAY, owner=helper).claim(2)
    assert len(on_the_wire) == 2

    def the_other_run_finishes() -> None:
        time.sleep(1.5)
        with open_store(send_ws) as store:
            _accepted(store, helper, on_the_wire)

    finisher = threading.Thread(target=the_other_run_finishes)
    finisher.start()
    try:
        report = engine.run_send(send_ws, SEND_DAY)
    finally:
        finisher.join()
    assert report.this_run == {"sent": 3}
    assert report.counts["sent"] == 5 and report.counts["sending"] == 0
    assert report.complete
    assert load_issue(send_ws.issues_dir / f"{SEND_DAY}.yaml").status == "sent"


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_run_waits_for_rows_another_run_is_claiming_at_that_moment(
    send_ws: Workspace, backend: str
) -> None:
    """Found by cron runs of `send --due` started in one minute: a run whose claim skipped
    rows locked by another run's claim, not yet committed, saw them still pending with no
    owner, thought nobody had them, and reported the send paused mid-way ("5 sending"), so
    no run said it was sent. Rows another run is taking are work in hand: it waits."""
    add_readers(send_ws, 5)
    helper = _another_run(send_ws)
    locked = threading.Event()
    taken: list[Claimed] = []

    def the_other_run_claims_slowly() -> None:
        with open_store(send_ws) as store, store.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT d.subscriber_id, s.email, s.name FROM deliveries d"
                " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.issue = %s"
                " ORDER BY d.subscriber_id LIMIT 2 FOR UPDATE OF d",
                (SEND_DAY,),
            ).all()
            locked.set()
            time.sleep(1.5)  # the claim's transaction is still open
            lease = stamp(clock.now() + timedelta(seconds=300))
            conn.exec_driver_sql(
                "UPDATE deliveries SET state = 'sending', owner = %s, lease_until = %s,"
                " attempts = attempts + 1 WHERE issue = %s AND subscriber_id = ANY(%s)",
                (helper, lease, SEND_DAY, [sid for sid, _, _ in rows]),
            )
            conn.commit()
            taken.extend(Claimed(sid, email, name or "", 1) for sid, email, name in rows)
            time.sleep(1.0)  # on the wire
            _accepted(store, helper, taken)

    claimer = threading.Thread(target=the_other_run_claims_slowly)
    claimer.start()
    try:
        assert locked.wait(30)
        report = engine.run_send(send_ws, SEND_DAY)
    finally:
        claimer.join()
    assert len(taken) == 2
    assert report.this_run == {"sent": 3}
    assert report.counts["sent"] == 5 and report.counts["sending"] == 0, report.counts
    assert report.complete
    assert load_issue(send_ws.issues_dir / f"{SEND_DAY}.yaml").status == "sent"


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_run_waits_for_a_stalled_run_no_longer_than_a_lease(
    send_ws: Workspace, backend: str
) -> None:
    """A live run whose messages never come back is waited for one lease at most (by
    the monotonic clock: the tests' fixed clock never lets a lease run out); the send
    then stays incomplete, for the next run to settle."""
    ws = use_config(send_ws, '[sender]\nkind = "outbox"\nlease_seconds = 1')
    add_readers(ws, 5)
    stalled = _another_run(ws)
    with open_store(ws) as store:
        assert len(DeliveryLedger(store, SEND_DAY, owner=stalled).claim(2)) == 2
    report = engine.run_send(ws, SEND_DAY)
    assert report.this_run == {"sent": 3} and report.counts["sending"] == 2
    assert not report.complete and "send 2026-12-04 --yes" in report.resume
