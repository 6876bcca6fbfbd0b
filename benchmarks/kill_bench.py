"""How many messages a SIGKILL leaves in doubt, beside the number of SMTP connections.

    python benchmarks/kill_bench.py [--messages 3000] [--connections 4] [--kills 5]

A loopback aiosmtpd sink runs in its own process. `digest send --yes` runs as
a subprocess and is killed with SIGKILL when the sink has taken a share of
the messages (early, midway, late ...); the rows it left ``sending`` are what
the next run reports ``unknown``. After each kill the send is resumed and
killed again further on; at the end `digest retry --include-unknown` finishes
it, and the sink's count shows how many readers got a second copy.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_bench import DAY, free_port, make_workspace, run_sink  # noqa: E402


def in_doubt(ws: object) -> int:
    from sqlalchemy import func, select

    from digest.store import open_store, schema

    d = schema.deliveries
    with open_store(ws) as store:  # type: ignore[arg-type]
        with store.read() as conn:
            query = select(func.count()).where(d.c.issue == DAY, d.c.state == "sending")
            return int(conn.execute(query).scalar() or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    counter = multiprocessing.Value("q", 0)
    cpu = multiprocessing.Value("d", 0.0)
    sink = multiprocessing.Process(target=run_sink, args=(port, counter, cpu), daemon=True)
    sink.start()
    time.sleep(1.0)
    n, k = args.messages, args.connections
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ws"
            ws = make_workspace(root, port, n, k)
            command = [sys.executable, "-m", "digest", "-C", str(root)]
            doubts = []
            for kill in range(1, args.kills + 1):
                target = n * kill // (args.kills + 1)
                proc = subprocess.Popen(
                    [*command, "send", DAY, "--yes"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                while counter.value < target and proc.poll() is None:
                    time.sleep(0.001)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                doubts.append(in_doubt(ws))
                print(
                    f"kill {kill} after {counter.value} messages: {doubts[-1]} rows in doubt "
                    f"({k} connections)"
                )
            subprocess.run(
                [*command, "retry", DAY, "--include-unknown"], check=True, capture_output=True
            )
            print(
                f"messages: {n}, connections: {k}, kills: {args.kills}; rows in doubt per kill: "
                f"{doubts} (at most {max(doubts)}, limit {k}); after retry --include-unknown "
                f"the sink took {counter.value} messages for {n} readers "
                f"({counter.value - n} second copies)"
            )
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
