"""Import a Mailchimp subscribed file and our own CSV of the same readers, and compare.

    python benchmarks/import_bench.py [--rows 1000000] [--backend sqlite|postgresql]

Generates N readers twice: as Mailchimp's ``subscribed_members_export_….csv``
(22 columns, opt-in and confirmation times and IPs, tags) and as a CSV of
digest's own columns (what ``store_bench.py`` imports). Each import runs in a
fresh store, in a child process of its own, so its peak resident memory is
its own; our CSV is imported before and after Mailchimp's and the two rates
averaged, so that a change in the machine's load weighs on both sides.
Target: Mailchimp's rate within 20% of our CSV's, peak memory < 200 MB.
PostgreSQL uses ``--url`` or DIGEST_TEST_POSTGRES (a fresh schema each,
dropped afterwards).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "news.example.org"]
MAILCHIMP_HEADER = [
    "Email Address",
    "First Name",
    "Last Name",
    "Address",
    "Phone Number",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
    "LAST_CHANGED",
    "LEID",
    "EUID",
    "NOTES",
    "TAGS",
]


def generate(folder: Path, rows: int) -> tuple[Path, Path]:
    """The same readers as Mailchimp's subscribed file and as our own CSV."""
    mailchimp = folder / "subscribed_members_export_5d1e8a3b7c.csv"
    ours = folder / "subscribers.csv"
    with (
        mailchimp.open("w", encoding="utf-8", newline="") as theirs_file,
        ours.open("w", encoding="utf-8", newline="") as ours_file,
    ):
        theirs = csv.writer(theirs_file)
        own = csv.writer(ours_file)
        theirs.writerow(MAILCHIMP_HEADER)
        own.writerow(["email", "name", "consented_at", "source", "policy_version", "ip", "team"])
        for n in range(rows):
            email = f"reader.{n}@{DOMAINS[n % len(DOMAINS)]}"
            day = f"2023-{1 + n % 9:02d}-{1 + n % 28:02d}"
            ip = f"198.51.100.{n % 250}"
            theirs.writerow(
                [
                    email,
                    "Reader",
                    str(n),
                    "",
                    "",
                    2,
                    f"{day} 08:15:00",
                    ip,
                    f"{day} 08:17:30",
                    ip,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{day} 09:00:00",
                    100000 + n,
                    f"{n:010x}",
                    "",
                    '"Weekly"' if n % 3 else "",
                ]
            )
            own.writerow(
                [
                    email,
                    f"Reader {n}",
                    f"{day}T08:15:00Z",
                    "web form",
                    "2026-05-01",
                    ip,
                    "sports" if n % 3 else "",
                ]
            )
    return mailchimp, ours


def one(path: Path, backend: str, url: str) -> dict[str, float]:
    """Import ``path`` into a fresh store (in this process) and measure it."""
    from digest.people.imports import tools
    from digest.store import open_store
    from digest.workspace import init_workspace, open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        schema = ""
        if backend == "postgresql":
            import psycopg

            schema = f"bench_{secrets.token_hex(4)}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            os.environ["DIGEST_DATABASE_URL"] = f"{url}?options=-csearch_path%3D{schema}"
        try:
            with open_store(open_workspace(root)) as store:
                started, cpu = time.perf_counter(), time.process_time()
                report = tools.import_file(store, path)
                wall, used = time.perf_counter() - started, time.process_time() - cpu
                assert report.written and report.invalid == 0, report.problems[:3]
                rows = report.active
        finally:
            if schema:
                import psycopg

                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "wall": wall, "cpu": used, "peak_mb": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", default=os.environ.get("DIGEST_TEST_POSTGRES", ""))
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a child's import
    args = parser.parse_args()
    if args.backend == "postgresql" and not args.url:
        parser.error("PostgreSQL needs --url or DIGEST_TEST_POSTGRES")
    if args.one is not None:
        print(json.dumps(one(args.one, args.backend, args.url)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        mailchimp, ours = generate(Path(tmp), args.rows)
        load = [os.getloadavg()[0]]
        results = {}
        for name, path in (("ours", ours), ("mailchimp", mailchimp), ("ours again", ours)):
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(path), "--backend", args.backend]
                + (["--url", args.url] if args.url else []),
                check=True,
                capture_output=True,
                text=True,
            )
            results[name] = json.loads(child.stdout.strip().splitlines()[-1])
            load.append(os.getloadavg()[0])
    print(f"backend {args.backend}, {args.rows:,} readers, {os.cpu_count()} CPUs")
    print("load average: " + ", ".join(f"{x:.1f}" for x in load) + " (before and after each)")
    for name, r in results.items():
        print(
            f"{name:<11} {r['rows'] / r['wall']:>9,.0f} rows/s ({r['wall']:.1f} s wall; "
            f"{r['rows'] / r['cpu']:,.0f} rows/s of the process's CPU), "
            f"peak RSS {r['peak_mb']:.0f} MB"
        )
    ours_rate = (
        results["ours"]["rows"] / results["ours"]["wall"]
        + results["ours again"]["rows"] / results["ours again"]["wall"]
    ) / 2
    theirs_rate = results["mailchimp"]["rows"] / results["mailchimp"]["wall"]
    ours_cpu = (
        results["ours"]["rows"] / results["ours"]["cpu"]
        + results["ours again"]["rows"] / results["ours again"]["cpu"]
    ) / 2
    theirs_cpu = results["mailchimp"]["rows"] / results["mailchimp"]["cpu"]
    print(
        f"Mailchimp's file at {theirs_rate / ours_rate:.0%} of our CSV's rate by the wall "
        f"clock (mean of the two runs: {ours_rate:,.0f} rows/s), {theirs_cpu / ours_cpu:.0%} "
        "by CPU time; target: at least 80%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
