"""Import N generated subscribers from CSV into a fresh store, then stream the audience.

    python benchmarks/store_bench.py [--backend sqlite|postgresql] [--rows 1000000]

PostgreSQL uses ``--url`` or DIGEST_TEST_POSTGRES (a fresh schema, dropped
afterwards). Reports rows/s for the import and the audience stream, and the
peak resident set. Wall time depends on what else the machine runs, so
the CPU time of this process (PostgreSQL's own work is not in it) is
reported too. Targets: import >= 50,000 rows/s, stream >= 200,000
rows/s, peak < 200 MB.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from digest import consent
from digest.people import audience
from digest.people.imports import generic
from digest.store import open_store
from digest.workspace import init_workspace, open_workspace


def generate(path: Path, rows: int) -> None:
    domains = ["example.com", "example.org", "example.net", "mail.example.com", "news.example.org"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "consented_at", "source", "policy_version", "ip", "team"])
        for n in range(rows):
            writer.writerow(
                [
                    f"reader.{n}@{domains[n % len(domains)]}",
                    f"Reader {n}",
                    f"2026-{1 + n % 9:02d}-{1 + n % 28:02d}T08:15:00Z",
                    "web form",
                    "2026-05-01",
                    f"198.51.100.{n % 250}",
                    "sports" if n % 3 else "",
                ]
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default=os.environ.get("DIGEST_TEST_POSTGRES", ""))
    parser.add_argument("--verify", action="store_true", help="also verify the consent chain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        schema = ""
        if args.backend == "postgresql":
            if not args.url:
                parser.error("PostgreSQL needs --url or DIGEST_TEST_POSTGRES")
            schema = f"bench_{secrets.token_hex(4)}"
            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            os.environ["DIGEST_DATABASE_URL"] = f"{args.url}?options=-csearch_path%3D{schema}"
        try:
            csv_path = Path(tmp) / "subscribers.csv"
            generate(csv_path, args.rows)
            ws = open_workspace(root)
            load_before = os.getloadavg()[0]
            with open_store(ws) as store:
                started, cpu = time.perf_counter(), time.process_time()
                report = generic.import_csv(store, csv_path)
                imported = time.perf_counter() - started
                imported_cpu = time.process_time() - cpu
                assert report.written and report.imported == args.rows, report
                started, cpu = time.perf_counter(), time.process_time()
                streamed = sum(1 for _ in audience.audience(store))
                stream = time.perf_counter() - started
                stream_cpu = time.process_time() - cpu
                assert streamed == args.rows
                if args.verify:
                    started = time.perf_counter()
                    verified = consent.verify(store)
                    assert verified.ok and verified.events == args.rows, verified
                    took = time.perf_counter() - started
                    print(f"verify: {verified.events:,} events in {took:.1f} s")
        finally:
            if schema:
                with psycopg.connect(args.url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"backend {args.backend}, {args.rows:,} rows, {os.cpu_count()} CPUs")
    print(f"load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(
        f"import: {args.rows / imported:,.0f} rows/s ({imported:.1f} s wall; "
        f"{args.rows / imported_cpu:,.0f} rows/s of this process's CPU, {imported_cpu:.1f} s)"
    )
    print(
        f"stream: {streamed / stream:,.0f} rows/s ({stream:.1f} s wall; "
        f"{streamed / stream_cpu:,.0f} rows/s of this process's CPU, {stream_cpu:.1f} s)"
    )
    print(f"peak RSS: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
