"""Senders started at the same instant on PostgreSQL split the audience, and none dies.

A team may start one `digest send` per machine from the same cron minute. The
processes here are real ones; each loads digest first and then waits at a
barrier (an instant a second or two ahead), so they reach every shared step
together: migrations on first use, freezing the audience, noting the link key,
claiming rows. The sink is an aiosmtpd server in this process, which records
every recipient it accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from _render_fixtures import sample_issue, write_issue
from _send_fixtures import SmtpSink, add_readers, use_smtp

from digest.store import Store
from digest.workspace import Workspace

pytestmark = pytest.mark.slow

PROCESSES = 4
ROUNDS = 10
READERS = 40

# Loads the CLI, waits for the barrier, then runs `digest ARGS...` as the command does.
BARRIER = textwrap.dedent(
    """
    import sys, time
    from digest.cli import main
    import digest.store
    if "send" in sys.argv:
        import digest.send.engine, digest.send.smtp, digest.render, digest.check
    start_at = float(sys.argv[1])
    while time.time() < start_at:
        time.sleep(0.0005)
    main(sys.argv[2:])
    """
)


def together(ws: Workspace, *commands: list[str]) -> list[tuple[int, str]]:
    """Run ``digest -C WS COMMAND`` for each command, in processes released at one instant."""
    start_at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BARRIER, str(start_at), "-C", str(ws.root), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        for command in commands
    ]
    return [(p.wait(timeout=180), p.communicate()[0]) for p in procs]


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_four_senders_started_together_all_work(
    send_ws: Workspace, smtp_sink: SmtpSink, backend: str
) -> None:
    """`digest send` by hand and `send --due` from cron, started at one instant: all
    exit 0, and every reader gets the issue exactly once, ten times over."""
    ws = use_smtp(send_ws, smtp_sink, 2)
    add_readers(ws, READERS)
    expected = {f"reader{n}@example.net" for n in range(READERS)}
    day = date(2026, 12, 4)
    for round_ in range(ROUNDS):
        issue = sample_issue(day=day)
        issue.status = "ready"
        write_issue(ws, issue)
        smtp_sink.handler.received.clear()
        # Two by hand and two from cron, at the slot (07:00 UTC on the Friday).
        by_hand = ["send", day.isoformat(), "--yes"]
        from_cron = ["--now", f"{day.isoformat()}T07:00:00Z", "send", "--due"]
        results = together(ws, by_hand, from_cron, by_hand, from_cron)
        codes = [code for code, _ in results]
        assert codes == [0] * PROCESSES, (round_, results)
        got = Counter(smtp_sink.recipients())
        assert set(got) == expected, f"round {round_}: missed {sorted(expected - set(got))}"
        assert max(got.values()) == 1, f"round {round_}: twice {got.most_common(3)}"
        assert sum("Traceback" in output for _, output in results) == 0, results
        day += timedelta(days=7)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_four_processes_on_a_new_database_migrate_it_once(
    send_ws: Workspace, database_url: str, backend: str, tmp_path: Path
) -> None:
    """The first use of an empty database migrates it: four processes at once all work
    (an advisory lock serialises them on PostgreSQL, SQLite's own write lock on SQLite)."""
    import psycopg

    server = os.environ.get("DIGEST_TEST_POSTGRES", "")
    for round_ in range(5):
        schema = f"fresh_{os.getpid()}_{round_}"
        if backend == "postgresql":
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            fresh = f"{server}?options=-csearch_path%3D{schema}"
        else:
            fresh = f"sqlite:///{tmp_path / schema}.db"
        try:
            os.environ["DIGEST_DATABASE_URL"] = fresh
            results = together(send_ws, *[["subscribers", "list", "--json"]] * PROCESSES)
        finally:
            os.environ["DIGEST_DATABASE_URL"] = database_url
            if backend == "postgresql":
                with psycopg.connect(server, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
        assert [code for code, _ in results] == [0] * PROCESSES, (round_, results)
        assert all(output.strip() == "[]" for _, output in results), results


def at_once(threads: int, call: Callable[[int], object]) -> list[BaseException]:
    """``call(i)`` in ``threads`` threads released together; the exceptions raised."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            call(i)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_noting_the_link_key_at_once_is_one_row(store: Store, backend: str) -> None:
    """Several senders note an issue's link key at the same moment: one row, no error."""
    for round_ in range(ROUNDS):
        issue = f"2027-01-{round_ + 1:02d}"
        errors = at_once(8, lambda i, issue=issue: store.note_link_key(issue, "f" * 16))
        assert errors == [], errors
        assert store.link_keys(issue) == {"f" * 16}
