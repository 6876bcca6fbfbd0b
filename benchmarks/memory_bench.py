"""Peak memory of a whole send at 100,000 and 1,000,000 readers: flat in the list's size.

    python benchmarks/memory_bench.py [--readers 100000,1000000]
        [--cases postgresql-null,sqlite-smtp,postgresql-smtp] [--postgres URL]

Each case is a `digest send --yes` process, as a user runs it; its peak resident
set size comes from the kernel when it exits (``wait4``'s ``ru_maxrss``). Cases:
the ledger on SQLite or PostgreSQL (a fresh schema on ``--postgres``, default the
test server's ``DIGEST_TEST_POSTGRES``), the messages built and discarded (the null
sender) or sent over SMTP to Postfix's smtp-sink. Readers are inserted straight into
the table first (setup, not what is measured). Targets: peak RSS <= 150 MB in every
case, and within 20 MB between 100k and 1M.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench_workspace import (
    DAY,
    compile_digest,
    digest_process,
    make_workspace,
    postgres_database,
)
from sinks import PostfixSink


def peak_of_send(root: Path) -> tuple[float, float, str]:
    """Peak RSS (MB) and seconds of one `digest send`, and its last line."""
    started = time.perf_counter()
    proc = digest_process(root, "send", DAY, "--yes")
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"digest send failed:\n{output}")
    return usage.ru_maxrss / 1024, seconds, output.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", default="100000,1000000")
    parser.add_argument("--cases", default="postgresql-null,sqlite-smtp,postgresql-smtp")
    parser.add_argument("--postgres", default=os.environ.get("DIGEST_TEST_POSTGRES", ""))
    args = parser.parse_args()
    compile_digest()
    sizes = [int(x) for x in args.readers.split(",")]
    results: dict[str, list[float]] = {}
    for case in args.cases.split(","):
        backend, sender = case.split("-")
        for n in sizes:
            sink = PostfixSink() if sender == "smtp" else None
            url, drop = ("", None)
            if backend == "postgresql":
                if not args.postgres:
                    raise SystemExit("--postgres URL (or DIGEST_TEST_POSTGRES) is needed")
                url, drop = postgres_database(args.postgres)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    root = Path(tmp) / "ws"
                    port = sink.port if sink is not None else 25
                    make_workspace(root, port, n, 4, database_url=url, kind=sender)
                    load = os.getloadavg()[0]
                    peak, seconds, said = peak_of_send(root)
                    if sink is not None:
                        assert sink.settle(n) == n, (sink.count(), n)
                results.setdefault(case, []).append(peak)
                print(
                    f"{case:<16} {n:>9,} readers: peak RSS {peak:6.1f} MB, "
                    f"{n / seconds:,.0f} msg/s start to exit ({seconds:.0f}s; load {load:.2f})"
                )
                print(f"    digest said: {said}")
            finally:
                if sink is not None:
                    sink.close()
                if drop is not None:
                    drop()
    for case, peaks in results.items():
        print(
            f"{case}: peak {max(peaks):.0f} MB (target <= 150), "
            f"spread {max(peaks) - min(peaks):.1f} MB over {args.readers} (target <= 20)"
        )


if __name__ == "__main__":
    main()
