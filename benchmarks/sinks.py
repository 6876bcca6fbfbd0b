"""SMTP servers for the sending benchmarks, each in a process of its own, on loopback.

* :class:`PostfixSink`: Postfix's ``smtp-sink`` (C, offers PIPELINING, discards
  what it gets). Debian package ``postfix``, installed with "No configuration"
  (docs/speed.md). Its running counter (``-c``) goes to a file, read when asked.
* :class:`PythonSink`: an aiosmtpd server that counts and discards (no PIPELINING;
  about 1.2 ms of CPU per 21 KB message: it, not the client, is the ceiling).
* :class:`DelayProxy`: a loopback TCP proxy that holds every chunk ``delay``
  seconds in each direction (a relay in another region), in front of a sink.

Every server reports the CPU seconds it has used (``cpu()``) and the messages it
has taken (``count()``).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postfix_tools() -> bool:
    return os.access(SMTP_SINK, os.X_OK) and os.access(SMTP_SOURCE, os.X_OK)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc), children waited for included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks


class _Sink:
    """What both sinks share: waiting for the count to catch up."""

    def count(self) -> int:
        raise NotImplementedError

    def settle(self, expected: int, timeout: float = 10.0) -> int:
        """The count once it reaches ``expected`` (a counter lags the last reply a little)."""
        end = time.monotonic() + timeout
        while self.count() < expected and time.monotonic() < end:
            time.sleep(0.01)
        return self.count()


class PostfixSink(_Sink):
    """``smtp-sink`` on 127.0.0.1; ``count()`` reads its running counter."""

    name = "Postfix smtp-sink (C, PIPELINING)"

    def __init__(self, backlog: int = 256, *, pipelining: bool = True) -> None:
        self.pipelining = pipelining
        if not pipelining:
            self.name = "Postfix smtp-sink (C, no PIPELINING)"
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="smtp-sink-")
        self.counter = Path(self.folder) / "count"
        command = [SMTP_SINK, "-c"] + ([] if pipelining else ["-p"])
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # as root it drops privileges to this user
        command += [f"127.0.0.1:{self.port}", str(backlog)]
        with open(self.counter, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
        _wait_listening(self.port)

    def count(self) -> int:
        """Messages taken so far (the last ``mesg=N`` of the counter)."""
        with open(self.counter, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 80))
            tail = f.read()
        at = tail.rfind(b"mesg=")
        if at < 0:
            return 0
        digits = tail[at + 5 :].split(b"\r")[0]
        return int(digits) if digits.isdigit() else 0

    def cpu(self) -> float:
        return process_cpu(self.proc.pid)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _python_sink(port: int, counter: Any, cpu: Any) -> None:
    import asyncio
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
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)

    class NoDelayController(Controller):
        def factory(self):  # noqa: ANN202
            return NoDelaySMTP(self.handler, **self.SMTP_kwargs)

    NoDelayController(Count(), hostname="127.0.0.1", port=port).start()
    while True:
        time.sleep(3600)


class PythonSink(_Sink):
    """An aiosmtpd server that counts and discards, in its own process."""

    name = "aiosmtpd sink (Python, no PIPELINING)"
    pipelining = False

    def __init__(self) -> None:
        self.port = free_port()
        self.counter = multiprocessing.Value("q", 0)
        self.cpu_used = multiprocessing.Value("d", 0.0)
        self.proc = multiprocessing.Process(
            target=_python_sink, args=(self.port, self.counter, self.cpu_used), daemon=True
        )
        self.proc.start()
        _wait_listening(self.port)

    def count(self) -> int:
        return int(self.counter.value)

    def cpu(self) -> float:
        return float(self.cpu_used.value)

    def close(self) -> None:
        self.proc.kill()
        self.proc.join()


# -- a link with latency ---------------------------------------------------------------


def _proxy(port: int, target: int, delay: float, ready: Any) -> None:
    import asyncio

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward each chunk ``delay`` seconds after it arrived, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                chunk = await reader.read(262144)
                queue.put_nowait((loop.time() + delay, chunk))
                if not chunk:
                    break
        except ConnectionError:
            queue.put_nowait((0.0, b""))
        await sender

    async def client(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        for w in (cw,):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.sleep(delay)  # the SYN's way there
        sr, sw = await asyncio.open_connection("127.0.0.1", target)
        sw.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(cr, sw), pump(sr, cw), return_exceptions=True)

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", port, backlog=256)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class DelayProxy:
    """A loopback proxy to ``target`` that delays each direction by ``delay`` seconds."""

    def __init__(self, target: int, delay: float) -> None:
        self.port = free_port()
        self.delay = delay
        ready = multiprocessing.Event()
        self.proc = multiprocessing.Process(
            target=_proxy, args=(self.port, target, delay, ready), daemon=True
        )
        self.proc.start()
        ready.wait(10)

    def cpu(self) -> float:
        return process_cpu(self.proc.pid or 0)

    def close(self) -> None:
        self.proc.kill()
        self.proc.join()


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- Postfix's load generator ----------------------------------------------------------------


def smtp_source(port: int, message: bytes, total: int, sessions: int) -> float:
    """Seconds ``smtp-source`` takes to send ``total`` copies of ``message`` over
    ``sessions`` connections, each reused for its share (``-d``)."""
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        # smtp-source wants LF line ends: it writes CRLF and dot-stuffs itself.
        f.write(message.replace(b"\r\n", b"\n"))
        f.flush()
        started = time.perf_counter()
        subprocess.run(
            [
                SMTP_SOURCE,
                "-d",
                "-s",
                str(sessions),
                "-m",
                str(total),
                "-f",
                "brief@weekly-brief.news",
                "-t",
                "reader@example.net",
                "-F",
                f.name,
                f"127.0.0.1:{port}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started
