"""How many messages a SIGKILL leaves in doubt, beside the number of SMTP connections.

    python benchmarks/kill_bench.py [--messages 3000] [--connections 4] [--kills 5]
                                    [--sink postfix|python] [--postgres URL]

The server (Postfix's smtp-sink, which offers PIPELINING, when installed; else an
aiosmtpd sink without it) runs in its own process. `digest send --yes` runs as a
subprocess and is killed with SIGKILL when the server has taken a share of the
messages (early, midway, late ...); the rows it left ``sending`` are what the next
run reports ``unknown``. With PIPELINING a connection has at most two messages in
doubt (one whose reply is awaited, and the next, whose envelope follows it and
which cannot have been delivered); without it, one. After each kill the send is
resumed and killed again further on; at the end `digest retry --include-unknown`
finishes it, and the server's count shows how many readers got a second copy.
``--postgres URL``: the ledger in a fresh schema on that server instead of SQLite.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
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
from sinks import PostfixSink, PythonSink, postfix_tools


def in_doubt(ws: Any) -> int:
    from sqlalchemy import func, select

    from digest.store import open_store, schema

    d = schema.deliveries
    with open_store(ws) as store, store.read() as conn:
        query = select(func.count()).where(d.c.issue == DAY, d.c.state == "sending")
        return int(conn.execute(query).scalar() or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--sink", choices=("postfix", "python"), default="postfix")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL")
    args = parser.parse_args()
    if args.sink == "postfix" and not postfix_tools():
        print("smtp-sink is not installed (Debian: postfix): the aiosmtpd sink instead")
        args.sink = "python"
    compile_digest()
    sink = PostfixSink() if args.sink == "postfix" else PythonSink()
    url, drop = postgres_database(args.postgres) if args.postgres else ("", None)
    n, k = args.messages, args.connections
    per = 2 if sink.pipelining else 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ws"
            ws = make_workspace(root, sink.port, n, k, database_url=url)
            doubts = []
            for kill in range(1, args.kills + 1):
                target = n * kill // (args.kills + 1)
                proc = digest_process(root, "send", DAY, "--yes")
                while sink.count() < target and proc.poll() is None:
                    time.sleep(0.0005)
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                doubts.append(in_doubt(ws))
                print(
                    f"kill {kill} after {sink.count()} messages: {doubts[-1]} rows in doubt "
                    f"({k} connections)"
                )
            retry = digest_process(root, "retry", DAY, "--include-unknown")
            output = retry.communicate()[0]
            if retry.returncode != 0:
                raise SystemExit(output)
            total = sink.settle(n)
            print(
                f"{sink.name}, ledger on {'PostgreSQL' if url else 'SQLite'}; messages: {n}, "
                f"connections: {k}, kills: {args.kills}\n"
                f"rows in doubt per kill: {doubts} (at most {max(doubts)}; bound {per} x "
                f"{k} connections = {per * k})\n"
                f"after retry --include-unknown the server took {total} messages for {n} "
                f"readers ({total - n} second copies, at most one per connection per kill)"
            )
    finally:
        sink.close()
        if drop is not None:
            drop()


if __name__ == "__main__":
    main()
