"""The fastest plain Python SMTP clients we could write: the baseline digest is measured against.

No bookkeeping at all: the message is built and dot-stuffed once, every
envelope is prebuilt, replies are only counted and checked for a 4xx/5xx.
When the server offers PIPELINING (RFC 2920) each message's end-of-data goes
in the same write as the next message's MAIL, RCPT and DATA, so a message
costs one round trip; without it, each command waits for its reply.

Two shapes, because which is faster depends on the machine:

* ``threads``: one thread per connection, blocking sockets (the GIL is
  released in every send and receive);
* ``select``: one thread, non-blocking sockets, an epoll loop over all
  connections.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable

FROM = b"brief@weekly-brief.news"


def dot_stuffed(message: bytes) -> bytes:
    """The message as DATA carries it: leading dots doubled, ended by CRLF.CRLF."""
    lines = message.split(b"\r\n")
    body = b"\r\n".join(b"." + x if x.startswith(b".") else x for x in lines)
    return body.rstrip(b"\r\n") + b"\r\n.\r\n"


def envelope(n: int) -> bytes:
    return b"MAIL FROM:<%s>\r\nRCPT TO:<reader%d@example.net>\r\nDATA\r\n" % (FROM, n)


def _check(replies: bytes) -> None:
    if b"\n4" in replies or b"\n5" in replies or replies[:1] in (b"4", b"5"):
        raise RuntimeError(replies.decode(errors="replace").strip())


def _open(port: int) -> tuple[socket.socket, bool]:
    """A connection past EHLO; whether the server offers PIPELINING."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    while not buffer.endswith(b"\n"):
        buffer += sock.recv(4096)
    sock.sendall(b"EHLO plain.example\r\n")
    buffer = b""
    while True:
        buffer += sock.recv(4096)
        last = buffer.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        if buffer.endswith(b"\n") and last[3:4] == b" ":
            break
    return sock, b"PIPELINING" in buffer.upper()


def _quit(sock: socket.socket) -> None:
    sock.sendall(b"QUIT\r\n")
    sock.recv(4096)
    sock.close()


# -- one thread per connection -------------------------------------------------------


def _thread_connection(port: int, body: bytes, count: int, first: int, out: list[bool]) -> None:
    sock, pipelining = _open(port)
    out.append(pipelining)
    buffer = bytearray()

    def expect(n: int) -> None:
        nonlocal buffer
        while buffer.count(b"\n") < n:
            buffer += sock.recv(65536)
        _check(bytes(buffer))
        buffer = bytearray()

    if pipelining:
        sock.sendall(envelope(first))
        expect(3)
        for n in range(first, first + count - 1):
            sock.sendall(body + envelope(n + 1))
            expect(4)
        sock.sendall(body)
        expect(1)
    else:
        for n in range(first, first + count):
            for command in envelope(n).split(b"\r\n")[:3]:
                sock.sendall(command + b"\r\n")
                expect(1)
            sock.sendall(body)
            expect(1)
    _quit(sock)


def threads(port: int, message: bytes, total: int, connections: int) -> tuple[float, bool]:
    """Seconds for ``total`` messages over ``connections`` threads; pipelined or not."""
    body = dot_stuffed(message)
    shares = _shares(total, connections)
    out: list[bool] = []
    workers = [
        threading.Thread(target=_thread_connection, args=(port, body, count, first, out))
        for count, first in shares
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, all(out)


# -- one thread, an epoll loop -----------------------------------------------------------


class _Lane:
    """One connection's state in the select loop."""

    def __init__(self, sock: socket.socket, pipelining: bool, body: bytes, n: int, last: int):
        self.sock, self.pipelining, self.body = sock, pipelining, body
        self.n, self.last = n, last  # next message number, one past the last
        self.out = memoryview(b"")
        self.waiting = 0  # replies still expected
        self.got = 0
        self.step = 0  # without PIPELINING: 0 MAIL, 1 RCPT, 2 DATA, 3 body
        self.done = False

    def next_write(self) -> None:
        """What to send once every expected reply is in."""
        if self.pipelining:
            if self.step == 0:  # the first envelope alone
                self.out, self.waiting, self.step = memoryview(envelope(self.n)), 3, 1
            elif self.n + 1 < self.last:
                self.out, self.waiting = memoryview(self.body + envelope(self.n + 1)), 4
                self.n += 1
            elif self.n < self.last:
                self.out, self.waiting = memoryview(self.body), 1
                self.n += 1
            else:
                self.done = True
            return
        if self.n >= self.last:
            self.done = True
            return
        if self.step < 3:
            self.out = memoryview(envelope(self.n).split(b"\r\n")[self.step] + b"\r\n")
            self.step += 1
        else:
            self.out, self.step = memoryview(self.body), 0
            self.n += 1
        self.waiting = 1


def select_loop(port: int, message: bytes, total: int, connections: int) -> tuple[float, bool]:
    """Seconds for ``total`` messages over ``connections`` sockets in one epoll loop."""
    body = dot_stuffed(message)
    selector = selectors.DefaultSelector()
    lanes = []
    started = time.perf_counter()
    for count, first in _shares(total, connections):
        sock, pipelining = _open(port)
        sock.setblocking(False)
        lane = _Lane(sock, pipelining, body, first, first + count)
        lane.next_write()
        lanes.append(lane)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, lane)
    open_lanes = len(lanes)
    while open_lanes:
        for key, events in selector.select():
            lane = key.data
            if events & selectors.EVENT_WRITE and lane.out:
                sent = lane.sock.send(lane.out)
                lane.out = lane.out[sent:]
                if not lane.out:
                    selector.modify(lane.sock, selectors.EVENT_READ, lane)
            if events & selectors.EVENT_READ:
                data = lane.sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                _check(data)
                lane.got += data.count(b"\n")
                if lane.got >= lane.waiting and not lane.out:
                    lane.got -= lane.waiting
                    lane.next_write()
                    if lane.done:
                        selector.unregister(lane.sock)
                        lane.sock.setblocking(True)
                        _quit(lane.sock)
                        open_lanes -= 1
                        continue
                    sent = _send_now(lane)
                    if not sent:
                        selector.modify(
                            lane.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, lane
                        )
    selector.close()
    return time.perf_counter() - started, all(lane.pipelining for lane in lanes)


def _send_now(lane: _Lane) -> bool:
    """Write what the socket takes now; True when all of it went."""
    try:
        sent = lane.sock.send(lane.out)
    except BlockingIOError:
        sent = 0
    lane.out = lane.out[sent:]
    return not lane.out


CLIENTS: dict[str, Callable[[int, bytes, int, int], tuple[float, bool]]] = {
    "threads": threads,
    "select": select_loop,
}


def _shares(total: int, connections: int) -> list[tuple[int, int]]:
    counts = [total // connections + (i < total % connections) for i in range(connections)]
    return [(c, sum(counts[:i])) for i, c in enumerate(counts) if c]
