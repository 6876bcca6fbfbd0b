"""SMTP send rate with the ledger on, beside a minimal "limit" client, in one run.

    python benchmarks/smtp_bench.py [--messages 20000] [--connections 4]

A loopback aiosmtpd sink that counts and discards runs in its own process.
First the limit client pushes the same prebuilt bytes over the same number of
persistent connections with plain aiosmtplib and no bookkeeping; then
`run_send` sends the issue to as many subscribers through the SMTP sender,
with the deliveries ledger (SQLite) claiming and recording every message.
Target: ours >= 70% of the limit client's rate. Subscribers are inserted
straight into the table (setup, not what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_sink(port: int, counter: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            with counter.get_lock():
                counter.value += len(envelope.rcpt_tos)
            return "250 OK"

    from aiosmtpd.smtp import SMTP

    class NoDelaySMTP(SMTP):
        def connection_made(self, transport):  # noqa: ANN001
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)

    class NoDelayController(Controller):
        def factory(self):  # noqa: ANN202
            return NoDelaySMTP(self.handler, **self.SMTP_kwargs)

    controller = NoDelayController(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        time.sleep(3600)


async def limit_client(port: int, message: bytes, total: int, connections: int) -> float:
    import aiosmtplib

    async def one(share: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for n in range(share):
            await client.sendmail("brief@example.com", [f"reader{n}@example.net"], message)
        await client.quit()

    shares = [
        total // connections + (1 if i < total % connections else 0) for i in range(connections)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(one(s) for s in shares))
    return time.perf_counter() - started


def make_workspace(root: Path, port: int, total: int, connections: int):  # noqa: ANN201
    from _render_fixtures import sample_issue, write_issue
    from insert_subscribers import insert_subscribers

    from digest.store import open_store
    from digest.workspace import init_workspace, open_workspace

    init_workspace(root)
    text = (root / "digest.toml").read_text()
    text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane"')
    text = text.replace('kind = "outbox"', 'kind = "smtp"')
    text = text.replace("port = 587", f"port = {port}").replace(
        'security = "starttls"', 'security = "none"'
    )
    text = text.replace("connections = 4 ", f"connections = {connections} ")
    (root / "digest.toml").write_text(text)
    ws = open_workspace(root)
    issue = sample_issue()
    issue.status = "ready"
    write_issue(ws, issue)
    with open_store(ws) as store:
        insert_subscribers(store, total)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    counter = multiprocessing.Value("q", 0)
    sink = multiprocessing.Process(target=run_sink, args=(port, counter), daemon=True)
    sink.start()
    time.sleep(1.0)
    try:
        from digest.send.engine import run_send

        with tempfile.TemporaryDirectory() as tmp:
            ws = make_workspace(Path(tmp) / "ws", port, args.messages, args.connections)
            from digest.message import MessageBuilder
            from digest.render import Recipient, prepare

            issue = __import__("digest.issue", fromlist=["x"]).workspace_issue(ws, "2026-12-04")
            builder = MessageBuilder.for_workspace(ws, prepare(ws, issue))
            message = builder.build(Recipient("bench", "reader@example.net", "Reader"))
            builder.build(Recipient("bench", "reader@example.net", ""))  # warm both skeletons
            limit_seconds = asyncio.run(
                limit_client(port, message, args.messages, args.connections)
            )
            limit_rate = args.messages / limit_seconds
            before = counter.value
            report = run_send(ws, "2026-12-04")
            assert report.counts["sent"] == args.messages, report.counts
            assert counter.value - before == args.messages
            ours = args.messages / report.elapsed
            print(
                f"messages: {args.messages}, connections: {args.connections}, "
                f"message size: {len(message)} bytes"
            )
            print(
                f"limit client (plain aiosmtplib, no bookkeeping): {limit_rate:,.0f} msg/s "
                f"({limit_seconds:.1f}s)"
            )
            print(
                f"digest run_send with the ledger (SQLite):       {ours:,.0f} msg/s "
                f"({report.elapsed:.1f}s, including freeze and render)"
            )
            print(f"ratio: {ours / limit_rate:.0%} (target >= 70%)")
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
