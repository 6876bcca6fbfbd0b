"""The bounce intake against hostile mail: it can't be stalled or poisoned.

Anyone can mail the bounce address. Every pattern reading a report is linear on
hostile input; a message over the size cap or nested past the MIME-part cap is
recorded as refused (on IMAP, moved to ``digest-rejected``) and counted; one message
never stops the run or loses the others; a busy or locked database exits 75.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _bounce_fixtures import Dovecot, bounce_config, reader_values, report
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from digest import bounce_rules, bounces
from digest import store as store_module
from digest.people import changes, record
from digest.send.intake import files, mailbox, reports
from digest.store import open_store, schema

ISSUE = "2026-12-04"
MEGABYTE = 1024 * 1024


def _cpu(work: Any) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


# -- every pattern is linear ----------------------------------------------------------------

PIECES = ["-", "\n", " ", "a", "@", "<", ">", "5", ".", ":", "\r\n", "\t", "x-", "Message-ID:", "="]
_PIECES = st.sampled_from(PIECES)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    piece=_PIECES,
    other=_PIECES,
    layout=st.sampled_from(["dsn", "plain", "arf", "text", "james", "fml", "transcript"]),
)
def test_megabyte_long_lines_are_read_in_linear_time(piece: str, other: str, layout: str) -> None:
    line = (piece * (MEGABYTE // len(piece)))[:MEGABYTE] + other * 1000
    raw = _message(layout, line).encode("utf-8", "replace")
    spent = _cpu(lambda: _read(raw))
    assert spent < 10, f"{layout} with a line of {piece!r}: {spent:.1f}s"
    spent = _cpu(lambda: bounce_rules.classify("5.0.0", None, line))
    assert spent < 2


def _read(raw: bytes) -> None:
    try:
        reports.classes(raw)
    except reports.Unreadable:
        pass


def _message(layout: str, line: str) -> str:
    head = "From: MAILER-DAEMON@mx.example.com\nReturn-Path: <>\nSubject: failure notice\n"
    if layout == "plain":
        return f"{head}\n<r@example.net>:\n{line}\n--- Below this line is a copy.\n{line}\n"
    if layout == "text":
        return f"{head}\n{line}\n"
    if layout == "james":  # Apache James's notice (layouts.py)
        return (
            f"{head}\nError message below:\n{line}\nMessage details:\n  RCPT TO: {line}\n"
            f"  RCPT TO: r@example.net\n"
        )
    if layout == "fml":  # an fml mailing-list notice (layouts.py)
        return (
            "From: list-admin@example.org\nMessage-ID: <1.FML@example.org>\n"
            f"X-MLServer: fml\nSubject: x\n\n<{line}>\n{line}\nOriginal mail as follows:\n"
        )
    if layout == "transcript":  # a Sendmail transcript, paired reply by reply
        return (
            f"{head}\n<r@example.net>\n>>> RCPT To:<r@example.net> {line}\n<<< 550 {line}\n"
            f">>> DATA\n<<< {line}\n<<< 503 5.0.0 Need RCPT\n{line}\n"
        )
    kind = "delivery-status" if layout == "dsn" else "feedback-report"
    fields = (
        f"Final-Recipient: rfc822; r@example.net\nAction: failed\nDiagnostic-Code: smtp; {line}"
        if layout == "dsn"
        else f"Feedback-Type: abuse\nOriginal-Rcpt-To: {line}"
    )
    return (
        f"{head}MIME-Version: 1.0\nContent-Type: multipart/report; report-type={kind}; "
        f'boundary="b"\n\n--b\nContent-Type: text/plain\n\n{line}\n--b\n'
        f"Content-Type: message/{kind}\n\nReporting-MTA: dns; mx\n\n{fields}\n\n--b\n"
        f"Content-Type: text/rfc822-headers\n\nMessage-ID: {line}\n\n--b--\n"
    )


@pytest.mark.parametrize("layout", ["james", "fml", "transcript"])
@pytest.mark.parametrize("piece", ["-", "<", "a@", ">>> RCPT To:<"])
def test_the_layout_readers_are_linear_on_a_megabyte_line(layout: str, piece: str) -> None:
    line = (piece * (MEGABYTE // len(piece)))[:MEGABYTE]
    raw = _message(layout, line).encode()
    assert _cpu(lambda: _read(raw)) < 10


def test_a_diagnostic_of_one_long_word_is_read_in_linear_time() -> None:
    """A Diagnostic-Code of 64 KB of letters took 27 s (a pattern tried from each letter
    scanned the rest of the run again); a megabyte would have taken hours."""
    for size in (64 * 1024, MEGABYTE):
        raw = _message("dsn", "a" * size).encode()
        assert _cpu(lambda raw=raw: _read(raw)) < 3, size


def test_a_message_of_more_lines_than_any_report_is_refused_at_once() -> None:
    raw = _message("dsn", "\n" * MEGABYTE).encode()
    with pytest.raises(reports.Unreadable, match=f"more than {reports.MAX_LINES} lines"):
        reports.classes(raw)


@pytest.mark.parametrize("layout", ["dsn", "plain", "arf", "text", "james", "fml", "transcript"])
def test_every_piece_in_every_layout_is_read_in_linear_time(layout: str) -> None:
    """Each piece the property test draws from, as a 256 KB line, in each layout: all of
    them, every run (the property test samples a dozen of the 1,575 pairs)."""
    for piece in PIECES:
        line = (piece * (256 * 1024 // len(piece)))[: 256 * 1024] + "x"
        raw = _message(layout, line).encode("utf-8", "replace")
        assert _cpu(lambda raw=raw: _read(raw)) < 5, (layout, piece)
        assert _cpu(lambda line=line: bounce_rules.classify("5.0.0", None, line)) < 2, piece


def test_the_two_reported_slow_cases_are_fast() -> None:
    """An 80 KB line of dashes took 101 s; a 120 KB DSN of blank lines 38 s."""
    dashes = _message("plain", "-" * 80_000).encode()
    blank = _message("dsn", "\n" * 120_000).encode()
    assert _cpu(lambda: _read(dashes)) < 5
    assert _cpu(lambda: _read(blank)) < 5


# -- poison: a message nested 1,000 deep -----------------------------------------------------


def nested(depth: int = 1000) -> bytes:
    """A 68 KB message of ``depth`` nested multiparts (RecursionError in a naive reader)."""
    head = "From: MAILER-DAEMON@mx.example.com\nReturn-Path: <>\nSubject: failure notice\n"
    opening = "".join(
        f'Content-Type: multipart/mixed; boundary="b{n}"\n\n--b{n}\n' for n in range(depth)
    )
    closing = "".join(f"\n--b{n}--\n" for n in reversed(range(depth)))
    return (head + opening + "Content-Type: text/plain\n\nx\n" + closing).encode()


@pytest.fixture
def readers(database_url: str, workspace: Any) -> tuple[Any, list[record.Subscriber]]:
    ws = bounce_config(workspace)
    with open_store(ws) as store:
        made = [
            changes.admin_add(store, f"reader{n}@example.net", source="t", confirmed=True)
            for n in range(3)
        ]
    return ws, made


def _reports(ws: Any, made: list[record.Subscriber]) -> list[bytes]:
    return [
        report("postfix-user-unknown.eml", reader_values(ws, s.id, s.email, ISSUE))
        for s in made[:2]
    ]


def test_ingest_dir_refuses_a_poison_message_and_goes_on(
    readers: Any, tmp_path: Path, cli: Any
) -> None:
    ws, made = readers
    raw = nested()
    assert 60_000 < len(raw) < 80_000
    first, last = _reports(ws, made)
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "1.eml").write_bytes(first)
    (folder / "2.eml").write_bytes(raw)
    (folder / "3.eml").write_bytes(last)
    result = cli("bounces", "ingest", str(folder))
    assert result.exit_code == 0, result.output
    assert "1 refused, 2 suppressed" in result.output
    assert "Traceback" not in result.output
    with open_store(ws) as store:
        assert bounces.unattributed(store).get("refused") == 1
        again = files.ingest(store, str(folder))
        assert dict(again.outcomes) == {"duplicate": 3}


def test_a_message_over_the_cap_on_stdin_is_refused_without_holding_it(
    readers: Any, tmp_path: Path
) -> None:
    """A 50 MB report is hashed as it streams by: the process never holds it."""
    ws, _ = readers
    size = 50 * MEGABYTE
    big = tmp_path / "big.eml"
    with big.open("wb") as handle:
        handle.write(b"From: MAILER-DAEMON@mx.example.com\nSubject: failure notice\n\n")
        chunk = b"x" * 1023 + b"\n"
        for _ in range(size // len(chunk)):
            handle.write(chunk)
    # The peak RSS of this process image (VmHWM): getrusage's ru_maxrss would also
    # count the pytest process it was forked from, which Linux keeps across exec.
    script = (
        "import re, sys, pathlib\n"
        "from digest.cli import main\n"
        "try:\n"
        "    main(['-C', sys.argv[1], 'bounces', 'ingest', '-'])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "status = pathlib.Path('/proc/self/status').read_text()\n"
        "print('rss', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), 'exit', code)\n"
    )
    env = {**os.environ, "DIGEST_SECRET_KEY": os.environ.get("DIGEST_SECRET_KEY", "")}
    with big.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", script, str(ws.root)],
            stdin=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    assert "1 refused" in done.stdout, done.stdout + done.stderr
    rss_kb, code = int(done.stdout.split()[-3]), done.stdout.split()[-1]
    assert code in ("0", "None")
    assert rss_kb < 200 * 1024, f"{rss_kb // 1024} MB of RSS for a 50 MB report"


# -- a busy or locked database exits 75 -------------------------------------------------------


@contextlib.contextmanager
def _held(ws: Any) -> Iterator[None]:
    """Another process in the middle of a write: on SQLite it holds the write lock, on
    PostgreSQL the consent chain's head row, which every change locks first."""
    if ws.database_url.startswith("sqlite"):
        holder = sqlite3.connect(ws.database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with psycopg.connect(ws.database_url, autocommit=True) as holder:
        # The server ends the holder after 15 s, so a reader that waits for the lock
        # (no lock timeout) makes this test fail, not hang.
        holder.execute("SET idle_in_transaction_session_timeout = 15000")
        holder.execute("BEGIN")
        holder.execute("SELECT * FROM chain_head FOR UPDATE")
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                holder.execute("ROLLBACK")


def test_a_locked_database_exits_75_from_ingest(
    readers: Any, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, made = readers
    saved = tmp_path / "one.eml"
    saved.write_bytes(_reports(ws, made)[0])
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(store_module, "POSTGRES_LOCK_TIMEOUT_MS", 200)
    started = time.monotonic()
    with _held(ws):
        result = cli("bounces", "ingest", str(saved))
    assert time.monotonic() - started < 20  # it gave up; it did not wait for the holder
    assert result.exit_code == 75, result.output
    said = result.output.lower()
    assert ("locked" in said or "lock timeout" in said) and "Traceback" not in result.output
    assert "try again later" in said
    with open_store(ws) as store, store.read() as conn:  # nothing was half-written
        assert conn.execute(select(func.count()).select_from(schema.bounce_reports)).scalar() == 0
        assert record.from_row(record.by_id(conn, made[0].id)).status == "active"
    result = cli("bounces", "ingest", str(saved))
    assert result.exit_code == 0 and "1 suppressed" in result.output


# -- IMAP: poison and big messages on a real Dovecot ------------------------------------------


def _imap(ws: Any, server: Dovecot, user: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DIGEST_BOUNCE_IMAP_USER", user)
    monkeypatch.setenv("DIGEST_BOUNCE_IMAP_PASSWORD", "secret")
    return bounce_config(
        ws,
        {
            ("bounces.imap", "host"): '"127.0.0.1"',
            ("bounces.imap", "port"): str(server.port),
            ("bounces.imap", "security"): '"none"',
        },
    )


def test_fetch_moves_poison_and_big_messages_aside_and_reads_the_rest(
    readers: Any, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, made = readers
    user = f"poison-{os.getpid()}-{time.monotonic_ns()}"
    ws = _imap(ws, dovecot, user, monkeypatch)
    first, last = _reports(ws, made)
    big = b"From: MAILER-DAEMON@mx.example.com\r\nSubject: x\r\n\r\n" + b"y" * (
        reports.MAX_REPORT_BYTES + 1000
    )
    for raw in (first, nested(), big, last):
        dovecot.deliver(raw, user=user)
    with open_store(ws) as store:
        done = mailbox.fetch(store)
    assert done.messages == 4
    assert dict(done.outcomes) == {"suppressed": 2, "refused": 2}
    assert dovecot.count("INBOX", user=user) == 0
    assert dovecot.count("digest-processed", user=user) == 2
    assert dovecot.count(mailbox.REJECTED_FOLDER, user=user) == 2
    with open_store(ws) as store:
        assert mailbox.fetch(store).messages == 0  # nothing left to stall the next run
