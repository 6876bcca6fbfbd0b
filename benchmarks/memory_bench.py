"""Peak memory of a 1,000,000-subscriber send to the null sender (messages built, discarded).

    python benchmarks/memory_bench.py [--subscribers 1000000]

The audience streams into the ledger and batches stream out of it, so memory
should not grow with the list. Prints the peak resident set size of the
process (ru_maxrss) before and after the send. Target: < 250 MB.
Subscribers are inserted straight into the table (setup, not what is measured).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    args = parser.parse_args()
    from _render_fixtures import sample_issue, write_issue
    from insert_subscribers import insert_subscribers

    from digest.send.engine import run_send
    from digest.store import open_store
    from digest.workspace import init_workspace, open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        text = (root / "digest.toml").read_text()
        text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane"')
        text = text.replace('kind = "outbox"', 'kind = "null"')
        (root / "digest.toml").write_text(text)
        ws = open_workspace(root)
        issue = sample_issue()
        issue.status = "ready"
        write_issue(ws, issue)
        with open_store(ws) as store:
            insert_subscribers(store, args.subscribers)
        before = peak_mb()
        started = time.perf_counter()
        report = run_send(ws, "2026-12-04")
        assert report.counts["sent"] == args.subscribers, report.counts
        print(f"subscribers: {args.subscribers}, sender: {report.sender}")
        print(
            f"sent in {time.perf_counter() - started:.0f}s "
            f"({args.subscribers / report.elapsed:,.0f}/s with the ledger on SQLite)"
        )
        print(f"peak RSS: {peak_mb():.0f} MB (after setup: {before:.0f} MB; target < 250 MB)")


if __name__ == "__main__":
    main()
