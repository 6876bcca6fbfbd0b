"""Where an SMTP send's time goes: start-up, then per message claim+record, build, protocol.

    python benchmarks/send_profile.py [--messages 10000] [--connections 4]

Each part is measured on its own, in CPU time of this process (steadier than the
wall clock on a shared machine), with no profiler's overhead:

* start-up: a `digest send` process from its start to its first message on the
  wire and to its exit (from smtp-sink's counter), and ``python -X importtime``'s
  total for the modules a send imports;
* the ledger: recording one message and claiming the next on SQLite, one
  transaction each, the rows taken from reserved blocks as a send takes them (a
  send with several connections shares a commit between them: less than this);
* building: every reader's complete message from the prepared issue;
* the protocol: digest's SMTP sender alone (its connections pipelining across
  messages), prebuilt bytes, to smtp-sink.

Then the sum beside what a whole `digest send` costs per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_workspace import DAY, bench_env, compile_digest, digest_process, make_workspace
from sinks import PostfixSink


def cpu() -> float:
    return time.process_time()


def startup(root: Path, sink: PostfixSink, n: int) -> tuple[float, float, float]:
    """Seconds from process start to the first message taken and to the exit, and the
    imports' total (``-X importtime``)."""
    before = sink.count()
    started = time.perf_counter()
    proc = digest_process(root, "send", DAY, "--yes")
    first = 0.0
    while proc.poll() is None:
        if not first and sink.count() > before:
            first = time.perf_counter() - started
        time.sleep(0.0005)
    total = time.perf_counter() - started
    assert sink.settle(before + n) == before + n
    code = (
        "import digest.cli, digest.send.engine, digest.send.smtp, digest.render, "
        "digest.check, digest.message, digest.store, sqlalchemy.dialects.sqlite"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=bench_env(),
    )
    # Top-level imports have their name one space after the last bar; their
    # cumulative times add up to the whole.
    imports = sum(
        int(m.group(1)) for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \| \S", done.stderr)
    )
    return first, total, imports / 1e6


def ledger_per_message(ws: object, n: int) -> float:
    from digest.people.audience import AUDIENCE_IDS
    from digest.send.deliveries import DeliveryLedger
    from digest.send.engine import RESERVE_BLOCK
    from digest.send.sender import Result
    from digest.store import open_store

    with open_store(ws) as store:  # type: ignore[arg-type]
        ledger = DeliveryLedger(store, "2099-01-01")
        ledger.freeze(AUDIENCE_IDS)
        ok = Result.accepted("250 OK")
        with ledger.held():
            started = cpu()
            done: list = []
            while True:  # as a send's steps: record one, claim the next (from a reserved block)
                _, [claimed], _ = ledger.steps(
                    [(done, 1)], max_attempts=5, backoff=30.0, reserve=RESERVE_BLOCK
                )
                if not claimed:
                    break
                done = [(claimed[0], ok)]
            ledger.record(done, max_attempts=5, backoff=30.0)
            return (cpu() - started) / n


def build_per_message(ws: object, n: int) -> tuple[float, float]:
    from digest.issue import workspace_issue
    from digest.message import MessageBuilder
    from digest.render import Recipient, prepare

    started = cpu()
    builder = MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, DAY)))  # type: ignore[arg-type]
    prepare_seconds = cpu() - started
    readers = [Recipient(f"s{i:09d}", f"reader{i}@example.net", f"Reader {i}") for i in range(n)]
    started = cpu()
    for reader in readers:
        builder.build(reader)
    return prepare_seconds, (cpu() - started) / n


def protocol_per_message(ws: object, sink: PostfixSink, n: int, k: int) -> tuple[float, float]:
    """CPU per message of digest's SMTP sender alone (prebuilt bytes), and its rate."""
    from bench_workspace import sample_message

    from digest.issue import workspace_issue
    from digest.message import MessageBuilder
    from digest.render import Recipient, prepare
    from digest.send.configured import open_sender
    from digest.send.sender import OutgoingMessage

    wire = sample_message(ws)
    builder = MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, DAY)))  # type: ignore[arg-type]

    class Feed:  # prebuilt messages, results dropped: the protocol alone
        def __init__(self) -> None:
            self.left = n

        async def next(self, done: list) -> OutgoingMessage | None:
            if self.left <= 0:
                return None
            self.left -= 1
            address = f"reader{self.left}@example.net"
            reader = Recipient(f"s{self.left:09d}", address, "")
            # built bytes, as a send's are (they go as they are: no dot-stuffing pass)
            return OutgoingMessage(
                self.left, address, "k", wire=wire, builder=builder, recipient=reader
            )

        async def record(self, done: list) -> None:
            return None

        def release(self, messages: list) -> None:
            return None

    async def go() -> None:
        sender = open_sender(ws, DAY)  # type: ignore[arg-type]
        feed = Feed()
        async with sender:
            await asyncio.gather(*(sender.stream(feed) for _ in range(k)))

    before = sink.count()
    started, wall = cpu(), time.perf_counter()
    asyncio.run(go())
    used, wall = cpu() - started, time.perf_counter() - wall
    assert sink.settle(before + n) == before + n
    return used / n, n / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    n, k = args.messages, args.connections
    compile_digest()
    sink = PostfixSink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ws"
            ws = make_workspace(root, sink.port, n, k)
            print(f"load average {os.getloadavg()[0]:.2f}; {n} messages, {k} connections")
            first, total, imports = startup(root, sink, n)
            print(
                f"digest send: first message {first * 1000:.0f} ms after the process started, "
                f"exit after {total:.2f}s ({n / total:,.0f} msg/s); imports {imports * 1000:.0f} ms"
            )
            prepare_seconds, build = build_per_message(ws, n)
            print(f"prepare (render once, premailer, in-process): {prepare_seconds * 1000:.0f} ms")
            ledger = ledger_per_message(ws, n)
            protocol, rate = protocol_per_message(ws, sink, n, k)
            print(
                f"per message, CPU: claim+record {ledger * 1e6:.0f} us, build {build * 1e6:.0f} us,"
            )
            print(f"  protocol {protocol * 1e6:.0f} us (the SMTP sender alone: {rate:,.0f} msg/s)")
            whole = (total - first) / n
            print(
                f"sum {(ledger + build + protocol) * 1e6:.0f} us; the whole send's sending phase "
                f"{whole * 1e6:.0f} us of wall clock per message"
            )
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        sink.close()


if __name__ == "__main__":
    main()
