"""`digest stats` on a big list: 1,000,000 readers, 100 sent issues, on SQLite or PostgreSQL.

    python benchmarks/stats_bench.py [--readers 1000000] [--issues 100] [--full-weeks 12]
                                     [--backend sqlite|postgresql] [--postgres URL] [--keep DIR]

``--keep DIR`` builds the workspace in DIR/ws and keeps it; run again with the same
``--keep DIR`` to time the kept ledger without building it again (its weeks are
those of the day it was built; its backend is the one it was built on).

``--backend postgresql`` builds the ledger on SQLite as below, then copies it into
a fresh schema on ``--postgres`` (default ``DIGEST_TEST_POSTGRES``): digest makes
its own tables there (the workspace's ``[database] url`` names the schema), each
table the build filled is streamed in with ``COPY``, then ``VACUUM ANALYZE``
(statistics and visibility map, as autovacuum leaves a database that has lived
two years), and the SQLite file is deleted. The schema is dropped at the end,
unless ``--keep`` is given. The CPU time printed is the `digest` process's own:
PostgreSQL's work is in the wall clock only.

Builds two years of a newsroom's ledger with bulk SQL (setup, not measured):
30% of the readers imported in the first week and the rest signing up and
confirming week by week; one issue every Friday, its audience frozen in the
deliveries ledger (0.2% failed, a few unknown); hard and soft bounces and
complaints in the bounce reports; 1% of the readers unsubscribing through the
link of the issue they had just received (one in ten through an old link
naming no issue), 0.4% bounced and a few complaints, with an answer to "why
are you leaving?" from one unsubscriber in ten.

Then it times ``digest stats`` (and ``--json``, ``--weeks 104``, ``--html``) as
a user runs it: a fresh process, start-up and imports included, three runs
each, after one run to warm the page cache (the first run is shown too). Each
line gives the wall clock and the CPU time the process used (user and
system): on a shared machine the first depends on the load, the second much
less. Target: ``digest stats`` under 2 s.

What the setup leaves out, because `digest stats` never reads it: the consent
chain's hashes (each event gets a placeholder; `digest consent verify` would
refuse this ledger) and the evidence of every event but operator additions.
The deliveries ledger holds every row of the issues of the last
``--full-weeks`` weeks (12 by default, as many as `digest stats` shows), and,
for older issues, only the rows not sent (failed, unknown): `digest stats`
counts an issue's sent messages as its frozen audience less the rows in every
other state, so it never reads the sent rows; all of them (100 issues of about
650,000 readers each, 20 GB on disk) with ``--full-weeks 100``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_workspace import postgres_database

from digest import clock
from digest.store import open_store, stamp
from digest.workspace import init_workspace, open_workspace

EVENT_COLUMNS = (
    "seq, occurred_at, kind, subject_id, pseudonym, method, source, statement_id, policy_id,"
    " evidence_sha256, prev_hash, hash"
)
BASE = "https://news.example.org"
REASONS = ("too_often", "not_relevant", "read_elsewhere", "never_signed_up", "other", "")


def build(path: Path, readers: int, issues: int, full_weeks: int, now: datetime) -> dict[str, int]:
    """The ledger, straight into the tables, in a few transactions."""
    now = now.astimezone(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    first_monday = monday - timedelta(weeks=issues)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    db.execute("BEGIN")
    # Each week: its Monday and its Friday issue (date and send time).
    db.execute(
        "CREATE TEMP TABLE weeks (w INTEGER PRIMARY KEY, monday TEXT, friday TEXT, sent TEXT)"
    )
    db.executemany(
        "INSERT INTO weeks VALUES (?, ?, ?, ?)",
        [
            (
                w,
                stamp(first_monday + timedelta(weeks=w)),
                (first_monday + timedelta(weeks=w, days=4)).date().isoformat(),
                stamp(first_monday + timedelta(weeks=w, days=4, hours=7)),
            )
            for w in range(issues + 1)
        ],
    )
    imported = readers * 3 // 10
    # Who each reader is: when they joined and, for some, when and how they left.
    db.execute(
        """
        CREATE TEMP TABLE readers AS
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :readers)
        SELECT i, printf('r%09d', i) AS id,
               CASE WHEN i < :imported THEN 0
                    ELSE 1 + (i - :imported) * (:issues - 1) / (:readers - :imported) END AS joined,
               CASE WHEN i % 100 = 0 THEN 'unsubscribed' WHEN i % 250 = 1 THEN 'bounced'
                    WHEN i % 5000 = 2 THEN 'complained' ELSE 'active' END AS status
        FROM n
        """,
        {"readers": readers, "imported": imported, "issues": issues},
    )
    db.execute(
        """
        CREATE TEMP TABLE leaving AS
        SELECT i, id, status, joined,
               min(:issues - 1, joined + 1 + (i / 7) % max(1, :issues - joined - 1)) AS left_week
        FROM readers WHERE status <> 'active'
        """,
        {"issues": issues},
    )
    db.execute(
        "INSERT INTO subscribers (id, email, email_key, name, status, created_at, updated_at,"
        " attributes) SELECT r.id, 'reader.' || r.i || '@example.com', printf('%064d', r.i),"
        " NULL, r.status, w.monday, w.monday, '{}' FROM readers r JOIN weeks w ON w.w = r.joined"
    )
    placeholder = "'" + "0" * 64 + "'"
    # The statement and the policy every event names (their foreign keys hold).
    db.executemany(
        "INSERT INTO consent_texts (id, kind, version, body, url, sha256, created_at, language)"
        f" VALUES (?, ?, 'bench', 'Bench text.', '', {placeholder}, ?, '')",
        [(1, "statement", stamp(first_monday)), (2, "policy", stamp(first_monday))],
    )
    common = f"1, 2, {placeholder}, {placeholder}, {placeholder}"
    # Joining: imported, or asked and confirmed (ten minutes later).
    db.execute(
        f"INSERT INTO consent_events ({EVENT_COLUMNS})"
        " SELECT 4 * r.i + 1, strftime('%Y-%m-%dT%H:%M:%S.000000Z', w.monday, '+9 hours',"
        " '+' || (r.i % 36000) || ' seconds'), CASE WHEN r.joined = 0 THEN 'imported'"
        " ELSE 'signup_requested' END, r.id, printf('%064d', r.i),"
        f" CASE WHEN r.joined = 0 THEN 'import' ELSE 'web_form' END, 'bench', {common}"
        " FROM readers r JOIN weeks w ON w.w = r.joined"
    )
    db.execute(
        f"INSERT INTO consent_events ({EVENT_COLUMNS})"
        " SELECT 4 * r.i + 2, strftime('%Y-%m-%dT%H:%M:%S.000000Z', w.monday, '+9 hours',"
        " '+' || (r.i % 36000 + 600) || ' seconds'), 'confirmed', r.id, printf('%064d', r.i),"
        f" 'link', 'bench', {common} FROM readers r JOIN weeks w ON w.w = r.joined"
        " WHERE r.joined > 0"
    )
    # Leaving, on the Saturday after an issue: by its link (one in ten by an old link).
    db.execute(
        f"INSERT INTO consent_events ({EVENT_COLUMNS})"
        " SELECT 4 * l.i + 3, strftime('%Y-%m-%dT%H:%M:%S.000000Z', w.monday, '+5 days',"
        " '+' || (l.i % 36000) || ' seconds'), l.status, l.id, printf('%064d', l.i),"
        " CASE l.status WHEN 'unsubscribed' THEN 'one_click' ELSE 'bounce_report' END,"
        " CASE WHEN l.status <> 'unsubscribed' THEN 'smtp report'"
        f"      WHEN l.i % 1000 = 0 THEN '{BASE}/unsubscribe'"
        f"      ELSE '{BASE}/unsubscribe (issue ' || w.friday || ')' END, {common}"
        " FROM leaving l JOIN weeks w ON w.w = l.left_week"
    )
    # The issues: audience frozen, deliveries, bounce reports.
    for week in range(issues):
        friday, sent = db.execute("SELECT friday, sent FROM weeks WHERE w = ?", (week,)).fetchone()
        audience = (
            "FROM readers r LEFT JOIN leaving l ON l.i = r.i"
            f" WHERE r.joined <= {week} AND (l.left_week IS NULL OR l.left_week >= {week})"
        )
        full = week >= issues - full_weeks
        state = (
            "CASE WHEN r.i % 500 = 3 THEN 'failed' WHEN r.i % 20000 = 4 THEN 'unknown'"
            " ELSE 'sent' END"
        )
        db.execute(
            "INSERT INTO deliveries (issue, subscriber_id, state, attempts, owner, claim,"
            " lease_until, retry_at, failure, reason, provider_id, sent_at, updated_at)"
            f" SELECT ?, r.id, {state}, 1, '', '', '', '', '', '', '', ?, ? {audience}"
            + ("" if full else " AND (r.i % 500 = 3 OR r.i % 20000 = 4)"),
            (friday, sent, sent),
        )
        size = db.execute(f"SELECT count(*) {audience}").fetchone()[0]
        took = timedelta(seconds=size / 700)
        finished = stamp(datetime.fromisoformat(sent.replace("Z", "+00:00")) + took)
        db.execute(
            "INSERT INTO issue_sends (issue, frozen_at, audience, finished_at) VALUES (?, ?, ?, ?)",
            (friday, sent, size, finished),
        )
        db.execute(
            "INSERT INTO bounce_reports (key, received_at, source, kind, outcome, subscriber_id,"
            " issue, status, reason, domain, report_sha256)"
            " SELECT printf('%s-%09d', ?, r.i), ?, 'smtp',"
            " CASE WHEN r.i % 333 = 5 THEN 'hard' WHEN r.i % 5000 = 2 THEN 'complaint'"
            " ELSE 'soft' END, CASE WHEN r.i % 333 = 5 THEN 'already' ELSE 'counted' END,"
            f" r.id, ?, '5.1.1', 'bench', 'example.com', {placeholder} {audience}"
            " AND (r.i % 333 = 5 OR r.i % 200 = 6 OR r.i % 5000 = 2)",
            (friday, sent, friday),
        )
    db.execute(
        "INSERT INTO unsubscribe_reasons (answer_key, issue, reason, text)"
        " SELECT printf('%064d', l.i), w.friday, ?, CASE WHEN l.i % 3 = 0"
        " THEN 'Weekly is too often for me.' ELSE '' END"
        " FROM leaving l JOIN weeks w ON w.w = l.left_week"
        " WHERE l.status = 'unsubscribed' AND l.i % 1000 = 500",
        ("too_often",),
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in FILLED}
    db.close()
    return counts


# The tables build() fills, in an order their foreign keys accept.
FILLED = (
    "consent_texts",
    "subscribers",
    "consent_events",
    "deliveries",
    "issue_sends",
    "bounce_reports",
    "unsubscribe_reasons",
)


def copy_to_postgres(path: Path, url: str) -> float:
    """Every table build() filled, streamed from the SQLite file at ``path`` into the
    tables digest made at ``url`` with COPY, one transaction a table; then VACUUM ANALYZE.
    Returns the GB the schema's tables and indexes take."""
    import psycopg

    source = sqlite3.connect(path)
    with psycopg.connect(url) as conn:
        for table in FILLED:
            columns = ", ".join(row[1] for row in source.execute(f"PRAGMA table_info({table})"))
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in source.execute(f"SELECT {columns} FROM {table}"):
                        copy.write_row(row)
            conn.commit()
        # The ids were copied, not drawn: the next consent text takes the one after them.
        conn.execute("SELECT setval(pg_get_serial_sequence('consent_texts', 'id'), 2)")
        conn.commit()
        conn.autocommit = True
        conn.execute(f"VACUUM (ANALYZE) {', '.join(FILLED)}")
        size = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()
    source.close()
    return float(size[0] if size else 0) / 2**30


def move_to_postgres(root: Path, path: Path, server: str) -> tuple[str, Any, float]:
    """The SQLite ledger at ``path`` copied into a fresh schema on ``server``, the workspace
    at ``root`` pointed at it and the SQLite file deleted: the schema's URL, the function
    that drops it and the GB it takes."""
    url, drop = postgres_database(server)
    try:
        toml = root / "digest.toml"
        text = toml.read_text()
        toml.write_text(text.replace('[database]\nurl = ""', f'[database]\nurl = "{url}"', 1))
        ws = open_workspace(root)
        assert ws.database_url == url, ws.database_url
        with open_store(ws):  # digest makes its own tables, as on a first run
            pass
        size = copy_to_postgres(path, url)
    except BaseException:
        drop()
        raise
    for file in path.parent.glob(path.name + "*"):
        file.unlink()
    return url, drop, size


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(root: Path, *args: str, runs: int = 3) -> tuple[float, list[float], list[float], str]:
    """Seconds of ``digest -C ROOT ARGS`` in a fresh process (first run, then ``runs`` more)
    by the wall clock, and the CPU seconds of those ``runs``."""
    times, cpu = [], []
    output = ""
    for _ in range(runs + 1):
        started, used = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            [sys.executable, "-m", "digest", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - used)
        if done.returncode != 0:
            raise SystemExit(f"digest {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        output = done.stdout
    return times[0], times[1:], cpu[1:], output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--full-weeks", type=int, default=12)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DIGEST_TEST_POSTGRES", ""),
        help="the PostgreSQL server for --backend postgresql (a fresh schema on it)",
    )
    parser.add_argument("--keep", type=Path, help="build the workspace here and keep it")
    args = parser.parse_args()
    if args.backend == "postgresql" and not args.postgres:
        parser.error("PostgreSQL needs --postgres URL or DIGEST_TEST_POSTGRES")
    url, drop = "", None
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.keep or Path(tmp)) / "ws"
        kept = (root / "digest.toml").exists()
        if not kept:
            init_workspace(root)
        ws = open_workspace(root)
        with open_store(ws) as store:
            path = Path(store.engine.url.database or "")
            backend = store.dialect
        if kept:
            print(f"timing the ledger kept in {root} ({backend})")
        else:
            started = time.perf_counter()
            counts = build(path, args.readers, args.issues, args.full_weeks, clock.now())
            built = time.perf_counter() - started
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**30
            print(
                f"ledger built in {built:.0f} s ({size:.1f} GB): "
                + ", ".join(f"{table} {n:,}" for table, n in counts.items())
            )
            if args.backend == "postgresql":
                started = time.perf_counter()
                url, drop, size = move_to_postgres(root, path, args.postgres)
                print(
                    f"copied into PostgreSQL in {time.perf_counter() - started:.0f} s"
                    f" ({size:.1f} GB; COPY, then VACUUM ANALYZE)"
                )
        try:
            timings(root, Path(tmp))
        finally:
            if drop is not None and not args.keep:
                drop()
        if args.keep:
            print(f"kept: {root}")
            if drop is not None:
                schema = url.rsplit("%3D", 1)[1]
                print(
                    f"drop its schema with: psql {args.postgres} -c 'DROP SCHEMA {schema} CASCADE'"
                )
    return 0


def timings(root: Path, tmp: Path) -> None:
    """``digest stats`` and its variants, timed on the workspace at ``root``."""
    load = os.getloadavg()[0]
    print(f"load average before timing: {load:.1f} ({os.cpu_count()} CPUs)")
    for label, command in (
        ("digest stats", ("stats",)),
        ("digest stats --json", ("stats", "--json")),
        ("digest stats --weeks 104", ("stats", "--weeks", "104")),
        ("digest stats --html FILE", ("stats", "--html", str(tmp / "stats.html"))),
    ):
        first, runs, cpu, output = timed(root, *command)
        print(
            f"{label:<26} median {statistics.median(runs):.2f} s, CPU "
            f"{statistics.median(cpu):.2f} s (runs {', '.join(f'{t:.2f}' for t in runs)};"
            f" first {first:.2f} s)"
        )
        if command == ("stats",):
            print("  " + output.splitlines()[0])
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
