"""Scale-out: 1, 2 and 4 `digest send` processes splitting one send on PostgreSQL.

    python benchmarks/scaleout_bench.py [--readers 1000000] [--processes 1,2,4]
        [--connections 4] [--postgres URL]

One PostgreSQL schema (on ``--postgres``, default ``DIGEST_TEST_POSTGRES``) holds
the readers, inserted straight into the table (setup). For each number of
processes P the ledger is emptied and P `digest send --yes` processes start
together against one Postfix smtp-sink; they split the audience through the
deliveries ledger (``FOR UPDATE SKIP LOCKED``). Printed per run:

* msg/s from the first process's start to the last one's exit;
* the CPU the database server spent per message: its backends serving these
  processes (found by their application_name in ``pg_stat_activity``, their CPU
  read from /proc while they live), and the server's own background processes
  (WAL writer, checkpointer ...; shared with anything else using that server);
* the senders' own CPU per message;
* duplicates and misses: the sink's count against the readers, and the ledger's
  rows not ``sent``.

The figures feed the projection in docs/speed.md (machines for a 10,000,000-reader
list in 20 minutes). Run it where PostgreSQL, the senders and the sink do not share
two cores with other work, for figures that mean something.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_workspace import (
    DAY,
    compile_digest,
    digest_process,
    make_workspace,
    postgres_database,
)
from sinks import PostfixSink, process_cpu

APPLICATION = "digest-scaleout"


class BackendMeter:
    """CPU of the PostgreSQL backends serving our processes, sampled while they live."""

    def __init__(self, server: str) -> None:
        import psycopg

        self.conn = psycopg.connect(server, autocommit=True)
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.background = self._background()
        self.background_start = sum(process_cpu(pid) for pid in self.background)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _background(self) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'"
        ).fetchall()
        return [int(pid) for (pid,) in rows]

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            rows = self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
            ).fetchall()
            for (pid,) in rows:
                cpu = process_cpu(int(pid))
                if cpu:
                    self.seen[int(pid)] = max(self.seen.get(int(pid), 0.0), cpu)

    def finish(self) -> tuple[float, float]:
        """Seconds of CPU: our backends, the server's background processes."""
        self.stop.set()
        self.thread.join()
        background = sum(process_cpu(pid) for pid in self.background) - self.background_start
        self.conn.close()
        return sum(self.seen.values()), background


def reset(server_url: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("TRUNCATE deliveries, issue_sends")
        conn.execute("DELETE FROM key_checks WHERE name LIKE 'links %%'")
        conn.execute("VACUUM ANALYZE subscribers")


def run(root: Path, sink: PostfixSink, url: str, server: str, n: int, p: int) -> dict[str, Any]:
    from digest.issue import save_issue, workspace_issue
    from digest.store import open_store
    from digest.workspace import open_workspace

    ws = open_workspace(root)
    issue = workspace_issue(ws, DAY)
    issue.status = "ready"
    save_issue(issue)
    reset(url)
    meter = BackendMeter(server)
    before = sink.count()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    procs = [digest_process(root, "send", DAY, "--yes") for _ in range(p)]
    outputs = [proc.communicate()[0] for proc in procs]
    seconds = time.perf_counter() - started
    backends, background = meter.finish()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    senders = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    codes = [proc.returncode for proc in procs]
    taken = sink.settle(before + n) - before
    with open_store(ws) as store, store.read() as conn:
        sent = conn.exec_driver_sql(
            "SELECT count(*) FROM deliveries WHERE issue = %s AND state = 'sent'", (DAY,)
        ).scalar()
    return {
        "p": p,
        "rate": n / seconds,
        "seconds": seconds,
        "db_us": (backends / n) * 1e6,
        "background_us": (background / n) * 1e6,
        "senders_us": (senders / n) * 1e6,
        "duplicates": max(0, taken - n),
        "missed": n - int(sent or 0) + max(0, n - taken),
        "codes": codes,
        "load": load,
        "said": [o.strip().splitlines()[-1] for o in outputs],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--postgres", default=os.environ.get("DIGEST_TEST_POSTGRES", ""))
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("--postgres URL (or DIGEST_TEST_POSTGRES) is needed")
    compile_digest()
    n = args.readers
    url, drop = postgres_database(args.postgres)
    url += f"&application_name={APPLICATION}"
    sink = PostfixSink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ws"
            print(f"inserting {n:,} readers ...")
            make_workspace(root, sink.port, n, args.connections, database_url=url)
            print(
                f"{n:,} readers on PostgreSQL, {args.connections} connections per process, "
                f"{os.cpu_count()} cores shared by the senders, the database and the sink"
            )
            for p in (int(x) for x in args.processes.split(",")):
                r = run(root, sink, url, args.postgres, n, p)
                print(
                    f"{p} process{'es' if p > 1 else ''}: {r['rate']:,.0f} msg/s "
                    f"({r['seconds']:.0f}s, load {r['load']:.2f} at the start); CPU per message: "
                    f"database backends {r['db_us']:.0f} us + server background "
                    f"{r['background_us']:.0f} us, senders {r['senders_us']:.0f} us; "
                    f"duplicates {r['duplicates']}, missed {r['missed']}, exit codes {r['codes']}"
                )
                for said in r["said"]:
                    print(f"    {said}")
    finally:
        sink.close()
        drop()


if __name__ == "__main__":
    main()
