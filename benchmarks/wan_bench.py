"""Sending over a link with latency: a loopback proxy adds 25 ms each way (a 50 ms round trip).

    python benchmarks/wan_bench.py [--connections 4,16] [--per-connection 100] [--delay 0.025]

Postfix's smtp-sink sits behind a small delay proxy of our own (benchmarks/sinks.py,
in its own process): every chunk is held ``delay`` seconds in each direction, as on
a link to a relay in another region. For each number of connections C:

* the limit with one message in flight per connection, C / (2 x RTT): a message
  costs two round trips (MAIL, RCPT and DATA in one write, then its end-of-data);
* `digest send` with one message in flight per connection (its pipelining across
  messages turned off for the measurement: ``digest.send.smtp.ACROSS_MESSAGES``);
* `digest send` as it runs: each message's end-of-data goes with the next one's
  envelope (RFC 2920), one round trip a message (the limit is then C / RTT);
* `digest send` to a server that does not offer PIPELINING (smtp-sink -p): each
  command waits for its reply, four round trips a message (limit C / (4 x RTT));
* Postfix's smtp-source with as many sessions.

digest's rate is the sending phase as the server sees it (first message to last,
from smtp-sink's counter), and also from process start to exit. Targets: one in
flight >= 90% of C / (2 x RTT) at 16 connections; pipelined >= 1.5x that limit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_workspace import (
    DAY,
    bench_env,
    compile_digest,
    digest_process,
    make_workspace,
    sample_message,
)
from sinks import DelayProxy, PostfixSink, postfix_tools, smtp_source

ONE_IN_FLIGHT = (
    "import sys; import digest.send.smtp as smtp; smtp.ACROSS_MESSAGES = False; "
    "from digest.cli import main; main(sys.argv[1:])"
)


def timed(root: Path, sink: Any, n: int, *, across: bool = True) -> tuple[float, float]:
    """`digest send`: the server-side sending phase's rate, and start-to-exit seconds."""
    before = sink.count()
    started = time.perf_counter()
    if across:
        proc = digest_process(root, "send", DAY, "--yes")
    else:
        proc = subprocess.Popen(
            [sys.executable, "-c", ONE_IN_FLIGHT, "-C", str(root), "send", DAY, "--yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=bench_env(),
        )
    first = last = 0.0
    seen = before
    while True:
        count = sink.count()
        now = time.perf_counter()
        if count > seen:
            if not first:
                first, seen_first = now, count
            last, seen = now, count
        if count >= before + n or proc.poll() is not None:
            break
        time.sleep(0.001)
    output = proc.communicate()[0]
    total = time.perf_counter() - started
    if proc.returncode != 0 or sink.settle(before + n) != before + n:
        raise SystemExit(f"digest send failed:\n{output}")
    phase = (seen - seen_first) / (last - first) if last > first else 0.0
    return phase, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", default="4,16")
    parser.add_argument("--per-connection", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.025, help="seconds each way")
    args = parser.parse_args()
    if not postfix_tools():
        raise SystemExit("smtp-sink and smtp-source are needed (Debian: postfix; docs/speed.md)")
    compile_digest()
    rtt = 2 * args.delay
    print(f"round trip {rtt * 1000:.0f} ms through the proxy; {os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in (int(x) for x in args.connections.split(",")):
            n = c * args.per_connection
            limit = c / (2 * rtt)
            row: dict[str, Any] = {"c": c, "n": n, "limit": limit, "load": os.getloadavg()[0]}
            for mode in ("one", "pipelined", "none"):
                sink = PostfixSink(pipelining=mode != "none")
                proxy = DelayProxy(sink.port, args.delay)
                try:
                    root = Path(tmp) / f"ws{c}{mode}"
                    make_workspace(root, proxy.port, n, c)
                    phase, total = timed(root, sink, n, across=mode != "one")
                    row[mode] = (phase, n / total)
                    if mode == "pipelined":
                        message = sample_message(make_workspace_view(root))
                        row["source"] = n / smtp_source(proxy.port, message, n, c)
                finally:
                    proxy.close()
                    sink.close()
            rows.append(row)
            one, piped, none = row["one"], row["pipelined"], row["none"]
            print(
                f"{c} connections, {n} messages (load average {row['load']:.2f}): "
                f"limit C/(2xRTT) {limit:,.0f} msg/s\n"
                f"  digest, one in flight: {one[0]:,.1f} msg/s sending "
                f"({one[0] / limit:.0%} of the limit); {one[1]:,.1f} msg/s start to exit\n"
                f"  digest, pipelined across messages: {piped[0]:,.1f} msg/s sending "
                f"({piped[0] / limit:.2f}x the limit); {piped[1]:,.1f} msg/s start to exit\n"
                f"  digest, server without PIPELINING: {none[0]:,.1f} msg/s sending "
                f"({none[0] / (limit / 2):.0%} of its limit C/(4xRTT) {limit / 2:,.0f})\n"
                f"  smtp-source, {c} sessions: {row['source']:,.1f} msg/s"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def make_workspace_view(root: Path) -> Any:
    from digest.workspace import open_workspace

    return open_workspace(root)


if __name__ == "__main__":
    main()
