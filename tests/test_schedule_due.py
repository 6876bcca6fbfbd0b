"""`digest send --due` decisions: which issue is due, the grace window, not-ready
exits, missed slots, the cutoff warning, the claim in the database (real
concurrent processes on SQLite and PostgreSQL), resuming an interrupted send,
and a week of runs every minute that sends exactly once."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _store_fixtures import postgres_server
from conftest import Cli

from digest import clock
from digest.issue import Issue, load_issue
from digest.schedule import due as schedule_due
from digest.schedule.view import default_check
from digest.send.claims import Claim, RunClaims
from digest.slots import slot_on
from digest.store import open_store
from digest.store.schema import schedule_runs
from digest.workspace import Workspace, open_workspace

ROOT = Path(__file__).parent.parent


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Report:
    """What an injected sending step returns: the engine's report, reduced."""

    sent: int
    complete: bool = True

    def summary(self) -> str:
        return f"{self.sent} sent"


class Recorder:
    """A sending step that records each issue it was asked to send, and when."""

    def __init__(self, complete: bool = True) -> None:
        self.calls: list[tuple[date, datetime, str]] = []
        self.complete = complete

    def __call__(self, ws: Workspace, issue: Issue, *, stop_event: Any = None) -> Report:
        self.calls.append((issue.date, clock.now(), load_issue(issue.path).status))
        return Report(3, self.complete)


def no_problems(ws: Workspace, issue: Issue) -> list[str]:
    return []


def write_issue(ws: Workspace, day: str, status: str, subject: str = "The week") -> Path:
    path = ws.issues_dir / f"{day}.yaml"
    path.write_text(
        f"date: {day}\nsubject: {subject}\nstatus: {status}\narticles: []\n", encoding="utf-8"
    )
    return path


def due(
    ws: Workspace, now: str, send: Recorder, check: Any = no_problems
) -> schedule_due.DueOutcome:
    clock.set_now(utc(now))
    return schedule_due.run_due(ws, send=send, check=check)


# -- the grace window and what is due ----------------------------------------------


def test_nothing_due_before_the_slot_and_sent_at_it(workspace: Workspace) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    send = Recorder()
    quiet = due(workspace, "2026-12-04T06:59:59", send)
    assert (quiet.steps, quiet.exit_code, send.calls) == ([], 0, [])
    done = due(workspace, "2026-12-04T07:00:00", send)
    assert done.exit_code == 0 and done.sent == [date(2026, 12, 4)]
    assert done.lines == ["sent issue 2026-12-04: 3 sent"]
    assert send.calls[0][2] == "sending"  # marked before the engine starts
    assert load_issue(workspace.issues_dir / "2026-12-04.yaml").status == "sent"
    again = due(workspace, "2026-12-04T07:01:00", send)
    assert (again.steps, len(send.calls)) == ([], 1)


def test_a_late_run_within_grace_still_sends(workspace: Workspace) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    send = Recorder()
    assert due(workspace, "2026-12-04T12:59:00", send).sent == [date(2026, 12, 4)]


def test_beyond_grace_it_is_not_sent_but_reported_once(workspace: Workspace) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    send = Recorder()
    late = due(workspace, "2026-12-04T13:00:01", send)
    assert late.exit_code == 1 and send.calls == []
    (line,) = late.lines
    assert line.startswith("missed the slot Friday 2026-12-04 07:00 UTC by 6h 0m (grace 6h)")
    assert "`digest send 2026-12-04`" in line
    later = due(workspace, "2026-12-04T13:05:00", send)
    assert (later.steps, later.exit_code, send.calls) == ([], 0, [])
    assert load_issue(workspace.issues_dir / "2026-12-04.yaml").status == "ready"


def test_grace_is_configurable(workspace: Workspace) -> None:
    config = workspace.config_path
    config.write_text(
        config.read_text(encoding="utf-8").replace('grace = "6h"', 'grace = "30m"'),
        encoding="utf-8",
    )
    ws = open_workspace(workspace.root)
    write_issue(ws, "2026-12-04", "ready")
    send = Recorder()
    assert due(ws, "2026-12-04T07:31:00", send).steps[0].kind == "missed"
    assert send.calls == []


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        ("draft", "not-ready", "is draft, not ready; mark it ready with `digest issue ready"),
        (None, "missing", "create it, or skip the week with `digest issue skip 2026-12-04`"),
    ],
)
def test_a_due_issue_that_is_not_ready_fails_with_one_line(
    workspace: Workspace, status: str | None, kind: str, words: str
) -> None:
    if status:
        write_issue(workspace, "2026-12-04", status)
    send = Recorder()
    outcome = due(workspace, "2026-12-04T07:02:00", send)
    assert outcome.exit_code == 1 and send.calls == []
    assert [s.kind for s in outcome.steps] == [kind]
    assert len(outcome.lines) == 1 and words in outcome.lines[0]


def test_a_due_issue_failing_its_check_is_not_sent(workspace: Workspace) -> None:
    write_issue(workspace, "2026-12-04", "ready", subject="")
    send = Recorder()
    outcome = due(workspace, "2026-12-04T07:00:00", send, check=default_check)
    assert outcome.exit_code == 1 and send.calls == []
    (line,) = outcome.lines
    assert line.startswith("issue 2026-12-04 is due but fails its check, not sent: ")


def test_a_skipped_week_sends_nothing_quietly(workspace: Workspace, cli: Cli) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    assert cli("issue", "skip", "2026-12-04").exit_code == 0
    send = Recorder()
    outcome = due(workspace, "2026-12-04T07:00:00", send)
    assert (outcome.steps, outcome.exit_code, send.calls) == ([], 0, [])
    write_issue(workspace, "2026-12-11", "ready")
    assert due(workspace, "2026-12-11T07:00:00", send).sent == [date(2026, 12, 11)]


def test_config_changes_move_the_due_slot(workspace: Workspace) -> None:
    config = workspace.config_path
    text = config.read_text(encoding="utf-8")
    text = text.replace('weekday = "friday"', 'weekday = "thursday"')
    text = text.replace('time = "07:00"', 'time = "09:30"')
    text = text.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"')
    config.write_text(text, encoding="utf-8")
    ws = open_workspace(workspace.root)
    write_issue(ws, "2026-12-03", "ready")
    send = Recorder()
    assert due(ws, "2026-12-03T08:29:00", send).steps == []
    assert due(ws, "2026-12-03T08:30:00", send).sent == [date(2026, 12, 3)]


def test_the_cutoff_warning_is_given_once_and_does_not_fail(workspace: Workspace) -> None:
    config = workspace.config_path
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'review_cutoff = ""', 'review_cutoff = "thursday 18:00"'
        ),
        encoding="utf-8",
    )
    ws = open_workspace(workspace.root)
    write_issue(ws, "2026-12-04", "draft")
    send = Recorder()
    assert due(ws, "2026-12-03T17:59:00", send).steps == []
    warned = due(ws, "2026-12-03T18:00:00", send)
    assert warned.exit_code == 0
    (line,) = warned.lines
    assert line.startswith("warning: review cutoff Thursday 2026-12-03 18:00 UTC has passed")
    assert "is still draft" in line
    assert due(ws, "2026-12-03T18:05:00", send).steps == []


# -- the claim in the database ---------------------------------------------------------


def test_a_claim_held_by_a_live_process_is_not_taken(
    workspace: Workspace, database_url: str
) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    with open_store(workspace) as store:
        db = RunClaims(workspace, store)
        slot = utc("2026-12-04T07:00:00")
        held = db.claim(date(2026, 12, 4), slot, slot, "elsewhere:1")
        assert isinstance(held, Claim)
        other = RunClaims(workspace, None)
        try:
            second = other.claim(date(2026, 12, 4), slot, slot, "here:2")
            if store.dialect == "postgresql":  # it joins the send: the ledger splits it
                assert isinstance(second, Claim) and second.joined
                second.release(done=False)
            else:
                assert second == "elsewhere:1"
        finally:
            other.close()
        held.release(done=True)
        again = RunClaims(workspace, None)
        try:
            assert again.claim(date(2026, 12, 4), slot, slot, "here:2") == "sent"
        finally:
            again.close()


@pytest.mark.postgres
def test_newsletters_in_two_schemas_of_one_database_claim_their_own_sends(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's advisory locks are the database's, not a schema's: a send of one
    newsletter must not make another's runs for the same Friday join it, and say nothing."""
    server = postgres_server()
    schemas = [f"t_{secrets.token_hex(6)}" for _ in range(2)]
    with psycopg.connect(server, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"CREATE SCHEMA {schema}")
    slot = utc("2026-12-04T07:00:00")
    claims: list[RunClaims] = []
    try:
        for schema in schemas:
            monkeypatch.setenv("DIGEST_DATABASE_URL", f"{server}?options=-csearch_path%3D{schema}")
            claims.append(RunClaims(workspace, None))
            assert claims[-1].store.dialect == "postgresql"  # opened now, on this schema
        held = claims[0].claim(date(2026, 12, 4), slot, slot, "weekly:1")
        other = claims[1].claim(date(2026, 12, 4), slot, slot, "daily:2")
        assert isinstance(held, Claim) and isinstance(other, Claim)
        assert not other.joined and not other.resumed  # its own send, started by this run
        other.release(done=True)
        held.release(done=True)
    finally:
        for db in claims:
            db.close()
        with psycopg.connect(server, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_an_interrupted_send_is_resumed(workspace: Workspace, database_url: str) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    half = Recorder(complete=False)  # the engine stopped part-way (SIGTERM, deferrals)
    first = due(workspace, "2026-12-04T07:00:00", half)
    assert [s.kind for s in first.steps] == ["interrupted"]
    assert "the next `digest send --due` resumes it" in first.lines[0]
    assert load_issue(workspace.issues_dir / "2026-12-04.yaml").status == "sending"
    rest = Recorder()
    # even after the grace window, an issue left sending is finished
    resumed = due(workspace, "2026-12-05T09:00:00", rest)
    assert [s.kind for s in resumed.steps] == ["resumed"] and resumed.exit_code == 0
    assert rest.calls[0][0] == date(2026, 12, 4)
    assert load_issue(workspace.issues_dir / "2026-12-04.yaml").status == "sent"
    with open_store(workspace) as store, store.read() as conn:
        row = conn.execute(schedule_runs.select()).mappings().one()
    assert (row["state"], row["issue_date"]) == ("sent", "2026-12-04")


def test_a_process_killed_mid_send_is_resumed_by_the_next_run(
    workspace: Workspace, database_url: str, tmp_path: Path
) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    started = tmp_path / "started"
    proc = _due_process(workspace, database_url, "2026-12-04T07:00:00Z", tmp_path, hang=started)
    _wait_for(started)
    proc.kill()
    proc.communicate()
    assert load_issue(workspace.issues_dir / "2026-12-04.yaml").status == "sending"
    send = Recorder()
    outcome = due(workspace, "2026-12-04T07:01:00", send)
    assert [s.kind for s in outcome.steps] == ["resumed"], outcome.lines
    assert [c[0] for c in send.calls] == [date(2026, 12, 4)]


# -- real concurrent processes ------------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import os, sys, time, json
    from pathlib import Path
    from digest import clock
    from digest.schedule import due as schedule_due
    from digest.workspace import open_workspace

    root, now, out, hang, start_at = sys.argv[1:6]
    clock.set_now(clock.parse_instant(now))

    def send(ws, issue, *, stop_event=None):
        Path(out, f"sent-{os.getpid()}").write_text(issue.slug)
        if hang != "-":
            Path(hang).write_text("x")
            time.sleep(60)
        time.sleep(0.5)  # a slow send: the other run arrives while it is going
        return None

    while time.time() < float(start_at):
        time.sleep(0.001)
    outcome = schedule_due.run_due(open_workspace(Path(root)), send=send, check=lambda ws, i: [])
    print(json.dumps([s.kind for s in outcome.steps]))
    """
)


def _pythonpath() -> str:
    """The project first, then whatever the run already had (CI's shifted run adds its own)."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _due_process(
    ws: Workspace, url: str, now: str, out: Path, hang: Path | None = None, start_at: float = 0
) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_DATABASE_URL": url, "PYTHONPATH": _pythonpath()}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUNNER,
            str(ws.root),
            now,
            str(out),
            str(hang or "-"),
            str(start_at),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_concurrent_due_runs_start_the_issue_once(
    workspace: Workspace, database_url: str, tmp_path: Path
) -> None:
    write_issue(workspace, "2026-12-04", "ready")
    with open_store(workspace):
        pass  # migrate first, so the runs race on the claim and not on the upgrade
    out = tmp_path / "out"
    out.mkdir()
    start_at = time.time() + 2.0
    procs = [
        _due_process(workspace, database_url, "2026-12-04T07:00:00Z", out, start_at=start_at)
        for _ in range(4)
    ]
    kinds = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        kinds.append(json.loads(stdout.strip().splitlines()[-1]))
    # One run starts the issue; on PostgreSQL the others that find it going join in
    # (the deliveries ledger splits the audience between them), quietly.
    assert sum(k == ["sent"] for k in kinds) == 1
    assert len(list(out.iterdir())) == sum(k in (["sent"], ["joined"]) for k in kinds), kinds
    allowed = [["sent"], ["busy"], ["already-sent"], [], ["joined"]]
    if "postgresql" not in database_url:
        allowed.remove(["joined"])
    assert all(k in allowed for k in kinds), kinds


# -- the "done when": a week of cron runs, one every minute --------------------------------


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_a_week_of_runs_every_minute_sends_exactly_once(workspace: Workspace, zone: str) -> None:
    config = workspace.config_path
    config.write_text(
        config.read_text(encoding="utf-8").replace('timezone = "UTC"', f'timezone = "{zone}"'),
        encoding="utf-8",
    )
    ws = open_workspace(workspace.root)
    write_issue(ws, "2026-10-30", "ready")  # the Friday before Europe's clocks go back
    write_issue(ws, "2026-11-06", "draft")  # next week's, still being written
    slot = slot_on(ws.config.schedule, date(2026, 10, 30))
    start = utc("2026-10-25T00:00:00")  # a Sunday: a DST night in Europe
    send = Recorder()
    began = time.perf_counter()
    runs = 0
    for minute in range(7 * 24 * 60):
        now = start + timedelta(minutes=minute)
        clock.set_now(now)
        outcome = schedule_due.run_due(ws, send=send, check=no_problems)
        assert outcome.exit_code == 0, (now, outcome.lines)
        runs += 1
    elapsed = time.perf_counter() - began
    assert runs == 10_080
    assert [(d, t) for d, t, _ in send.calls] == [(date(2026, 10, 30), slot)]
    assert slot.astimezone(ws.config.schedule.zone).strftime("%a %H:%M") == "Fri 07:00"
    assert elapsed < 60, f"a week of runs took {elapsed:.1f}s"


# -- the real thing: `digest send --due` processes with the send engine ----------------------


def _cli_due(ws: Workspace, url: str, now: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_DATABASE_URL": url, "PYTHONPATH": _pythonpath()}
    env.pop("DIGEST_NOW", None)
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "-C", str(ws.root), "--now", now, "send", "--due"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cron_runs_of_send_due_mail_each_reader_once(send_ws: Workspace, database_url: str) -> None:
    from _send_fixtures import add_readers

    add_readers(send_ws, 5)
    early = _cli_due(send_ws, database_url, "2026-12-04T06:59:00Z")
    assert early.communicate(timeout=60) == ("", "") and early.returncode == 0
    procs = [_cli_due(send_ws, database_url, "2026-12-04T07:00:00Z") for _ in range(4)]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    assert all(code == 0 for _, code in results), results
    said = [out for (out, _), _ in results if out]
    assert len(said) == 1 and said[0].startswith("sent issue 2026-12-04: 5 sent"), results
    mailed = sorted(p.name for p in send_ws.outbox_dir.rglob("*.eml"))
    assert len(mailed) == 5
    late = _cli_due(send_ws, database_url, "2026-12-04T07:05:00Z")
    assert late.communicate(timeout=60) == ("", "") and late.returncode == 0
    assert len(list(send_ws.outbox_dir.rglob("*.eml"))) == 5
    assert load_issue(send_ws.issues_dir / "2026-12-04.yaml").status == "sent"


def test_the_scheduler_sends_at_the_slot_and_stops_on_sigterm(
    send_ws: Workspace, database_url: str
) -> None:
    import signal

    from _send_fixtures import add_readers

    add_readers(send_ws, 2)
    env = {**os.environ, "DIGEST_DATABASE_URL": database_url, "PYTHONPATH": _pythonpath()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest",
            "-C",
            str(send_ws.root),
            "--now",
            "2026-12-04T06:59:58Z",
            "scheduler",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while len(list(send_ws.outbox_dir.rglob("*.eml"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the scheduler did not send"
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
    assert proc.returncode == 0, log
    assert "scheduler started" in log
    assert "sent issue 2026-12-04: 2 sent" in log
    assert "next slot Friday 2026-12-11 07:00 UTC" in log
    assert log.rstrip().endswith("scheduler stopped")
    # Stamped by the rehearsed clock, which runs on from --now, not by the wall clock.
    stamps = [line.split(" digest")[0] for line in log.splitlines() if " digest." in line]
    assert stamps and all(re.fullmatch(r"2026-12-04 0[67]:\d\d:\d\d UTC", s) for s in stamps), log
