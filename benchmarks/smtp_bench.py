"""SMTP send rate of `digest send` beside the fastest plain client, in one run.

    python benchmarks/smtp_bench.py [--messages 10000] [--connections 4] [--rounds 1]

A loopback aiosmtpd sink that counts and discards runs in its own process.
Each round runs, against that same sink:

1. the *limit client*: one thread per connection, raw blocking sockets,
   the prebuilt bytes of the rendered message (dot-stuffed once), MAIL, RCPT
   and DATA pipelined (RFC 2920) when the sink offers PIPELINING; no
   bookkeeping at all;
2. ``digest send --yes`` as a subprocess, timed from process start to exit:
   imports, render and check, freezing the audience, building every message,
   the deliveries ledger (SQLite) claiming and recording each one;
3. the limit client again: ours is compared with the mean of its two runs,
   so a change in the (shared) machine's load weighs on both sides.

Target: ours >= 80% of the limit client. Subscribers are inserted straight
into the table before the clock starts (setup, not what is measured).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DAY = "2026-12-04"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_sink(port: int, counter: Any, cpu: Any) -> None:
    import resource

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class Count:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            with counter.get_lock():
                counter.value += len(envelope.rcpt_tos)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu.value = usage.ru_utime + usage.ru_stime
            return "250 OK"

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


# -- the limit client ----------------------------------------------------------------


def _reply(reader: Any) -> bytes:
    """One (possibly multi-line) reply; its last line."""
    while True:
        line = reader.readline()
        if not line:
            raise ConnectionError("the sink closed the connection")
        if line[3:4] != b"-":
            if line[:1] not in (b"2", b"3"):
                raise RuntimeError(line.decode(errors="replace").strip())
            return line


def limit_connection(port: int, body: bytes, count: int, start: int) -> bool:
    """``count`` messages over one connection; True when the sink offered PIPELINING."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    _reply(reader)
    sock.sendall(b"EHLO limit.example\r\n")
    offered = []
    while True:
        line = reader.readline()
        offered.append(line[4:].strip().upper())
        if line[3:4] != b"-":
            break
    pipelining = b"PIPELINING" in offered
    for n in range(start, start + count):
        envelope = b"MAIL FROM:<brief@example.com>\r\nRCPT TO:<reader%d@example.net>\r\n" % n
        if pipelining:
            sock.sendall(envelope + b"DATA\r\n")
            _reply(reader)
            _reply(reader)
            _reply(reader)
        else:
            mail, rcpt = envelope.split(b"\r\n")[:2]
            sock.sendall(mail + b"\r\n")
            _reply(reader)
            sock.sendall(rcpt + b"\r\n")
            _reply(reader)
            sock.sendall(b"DATA\r\n")
            _reply(reader)
        sock.sendall(body)
        _reply(reader)
    sock.sendall(b"QUIT\r\n")
    _reply(reader)
    sock.close()
    return pipelining


def limit_client(port: int, message: bytes, total: int, connections: int) -> tuple[float, bool]:
    lines = message.split(b"\r\n")
    body = b"\r\n".join(b"." + x if x.startswith(b".") else x for x in lines)
    body = body.rstrip(b"\r\n") + b"\r\n.\r\n"
    shares = [total // connections + (i < total % connections) for i in range(connections)]
    offsets = [sum(shares[:i]) for i in range(connections)]
    answers: list[bool] = []
    threads = [
        threading.Thread(target=lambda c=c, o=o: answers.append(limit_connection(port, body, c, o)))
        for c, o in zip(shares, offsets, strict=True)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, any(answers)


# -- digest ------------------------------------------------------------------------


def make_workspace(root: Path, port: int, total: int, connections: int):  # noqa: ANN201
    from _render_fixtures import sample_issue, write_issue
    from insert_subscribers import insert_subscribers

    from digest.store import open_store
    from digest.workspace import init_workspace, open_workspace

    init_workspace(root)
    text = (root / "digest.toml").read_text()
    text = text.replace('postal_address = ""', 'postal_address = "1 Press Lane"')
    # A real-looking sender and policy: `digest check` refuses the placeholders.
    text = text.replace("brief@example.com", "brief@weekly-brief.news")
    text = text.replace(
        "https://newsletter.example.com/privacy", "https://weekly-brief.news/privacy"
    )
    text = text.replace('kind = "outbox"', 'kind = "smtp"')
    text = text.replace("port = 587", f"port = {port}").replace(
        'security = "starttls"', 'security = "none"'
    )
    text = text.replace("connections = 4 ", f"connections = {connections} ")
    (root / "digest.toml").write_text(text)
    ws = open_workspace(root)
    assert ws.config.sender.smtp.connections == connections
    issue = sample_issue()
    issue.status = "ready"
    write_issue(ws, issue)
    with open_store(ws) as store:
        insert_subscribers(store, total)
    return ws


def sample_message(ws: Any) -> bytes:
    from digest.issue import workspace_issue
    from digest.message import MessageBuilder
    from digest.render import Recipient, prepare

    builder = MessageBuilder.for_workspace(ws, prepare(ws, workspace_issue(ws, DAY)))
    return builder.build(Recipient("s000000001", "reader1@example.net", "Reader 1"))


def digest_send(root: Path) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds of one `digest send` process, and its last line."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "digest", "-C", str(root), "send", DAY, "--yes"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise SystemExit(f"digest send failed:\n{done.stdout}\n{done.stderr}")
    return seconds, cpu, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    port = free_port()
    counter = multiprocessing.Value("q", 0)
    sink_cpu = multiprocessing.Value("d", 0.0)
    sink = multiprocessing.Process(target=run_sink, args=(port, counter, sink_cpu), daemon=True)
    sink.start()
    time.sleep(1.0)
    n, k = args.messages, args.connections
    try:
        with tempfile.TemporaryDirectory() as tmp:
            message = b""
            print(f"messages: {n}, connections: {k}, {os.cpu_count()} cores")
            for round_ in range(1, args.rounds + 1):
                root = Path(tmp) / f"ws{round_}"
                ws = make_workspace(root, port, n, k)
                message = message or sample_message(ws)
                load = os.getloadavg()[0]

                def limit_run(message: bytes = message) -> tuple[float, float, bool]:
                    before, cpu_before = counter.value, sink_cpu.value
                    seconds, pipelined = limit_client(port, message, n, k)
                    assert counter.value - before == n, (counter.value - before, n)
                    return seconds, sink_cpu.value - cpu_before, pipelined

                first = limit_run()
                before, cpu_before = counter.value, sink_cpu.value
                ours_seconds, ours_own_cpu, summary = digest_send(root)
                assert counter.value - before == n, (counter.value - before, n)
                ours_cpu = sink_cpu.value - cpu_before
                # The limit client runs again after ours, so a change in the machine's
                # load weighs on both sides: ours is compared with the mean of the two.
                second = limit_run()
                limit_rate = (n / first[0] + n / second[0]) / 2
                ours_rate = n / ours_seconds
                print(
                    f"round {round_} (message {len(message):,} bytes, load average "
                    f"{load:.2f} before, {os.getloadavg()[0]:.2f} after)"
                )
                print(
                    f"  limit client (raw sockets, prebuilt bytes, {k} threads, "
                    f"{'pipelined' if first[2] else 'no PIPELINING offered'}): "
                    f"{n / first[0]:,.0f} msg/s before ours, {n / second[0]:,.0f} after, "
                    f"mean {limit_rate:,.0f} (sink CPU {first[1]:.2f}s, {second[1]:.2f}s)"
                )
                print(
                    f"  digest send (process start to exit, render + ledger): "
                    f"{ours_rate:,.0f} msg/s ({ours_seconds:.2f}s; sink CPU {ours_cpu:.2f}s, "
                    f"digest CPU {ours_own_cpu:.2f}s = {ours_own_cpu / n * 1e6:.0f} us/message)"
                )
                print(f"  ratio: {ours_rate / limit_rate:.0%} of the mean limit (target >= 80%)")
                print(f"  digest said: {summary}")
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
