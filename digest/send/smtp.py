"""SMTP through aiosmtplib: a few persistent connections in parallel.

Each connection is a *lane* (:class:`_Lane`) that takes messages one at a time
from a feed (the engine's ledger: :meth:`SmtpSender.stream`), or from a list
(:meth:`SmtpSender.send`); a connection is closed and opened again after
``messages_per_connection`` messages. aiosmtplib opens each session (TLS or
STARTTLS, AUTH, EHLO); the mail transactions then run on digest's own small
protocol over the same transport (:class:`_Session`), which writes the built
bytes as they are. When the server offers PIPELINING (RFC 2920), MAIL, RCPT
and DATA go in one write, and each message's end-of-data in the same write as
the next message's envelope: one round trip a message. At most two messages
of a connection are then in doubt at any moment; without PIPELINING, one.

International addresses (RFC 6531): with SMTPUTF8 offered they go as they
are; without it a domain-only IDN goes with its IDNA domain and a non-ASCII
local part is that recipient's permanent failure (see :func:`route`). Any
unexpected error from one recipient's data is that recipient's permanent
failure too, never the send's.

Replies are read per stage, because the stage tells what a failure means:

* MAIL or RCPT refused with 4xx: transient (retried later, with backoff);
  with 5xx: permanent for that recipient. A 421 ("closing") reconnects and
  tries the message once more at once.
* The connection lost before the message's bytes went: nothing was
  delivered; the message is tried once more on a fresh connection.
* The connection lost after they went: the server may have taken the
  message, so it is *unknown*, reported, and re-sent only when the operator
  asks.
* Authentication and TLS failures, a refused sender address, or a server
  that cannot be reached stop the whole send with one line naming host:port.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib

from digest.addresses import Unroutable, route
from digest.bounces import classify
from digest.config import Smtp
from digest.errors import SendError
from digest.send.sender import Done, Feed, OutgoingMessage, Result, Sender

CONNECT_TRIES = 3
# RFC 2920 across messages: the next envelope goes with this message's end-of-data.
# (benchmarks/wan_bench.py turns it off to measure one message in flight.)
ACROSS_MESSAGES = True


@dataclass(eq=False)
class _Connection:
    client: aiosmtplib.SMTP
    session: _Session
    smtputf8: bool = False
    pipelining: bool = False
    used: int = 0
    alive: bool = True


class SmtpSender(Sender):
    bounce_source = "smtp"
    streams = True

    def __init__(
        self,
        settings: Smtp,
        envelope_from: str,
        *,
        connections: int = 4,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        batch_size: int = 1,
        return_path: Callable[[OutgoingMessage], str] | None = None,
    ) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self.return_path = return_path
        self.username = username
        self.password = password
        self.tls_context = tls_context
        self.where = f"{settings.host}:{settings.port}"
        self.parallel = max(1, connections)
        self.name = f"smtp {self.where} ({settings.security}, {self.parallel} connections)"
        self.batch_size = batch_size
        self._from = envelope_from.encode("utf-8")
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    # -- connections -------------------------------------------------------------
    async def _open(self) -> _Connection:
        s = self.settings
        last: BaseException | None = None
        for attempt in range(CONNECT_TRIES):
            # STARTTLS and the login are digest's own steps after connect(): aiosmtplib's
            # connect() closes a connection that fails inside it gracefully, and a TLS
            # close waits for the server's reply after the send has ended, leaving the
            # socket to the garbage collector. Here a failure aborts it at once.
            client = aiosmtplib.SMTP(
                hostname=s.host,
                port=s.port,
                timeout=s.timeout,
                use_tls=s.security == "tls",
                start_tls=False,
                tls_context=self.tls_context,
            )
            try:
                try:
                    await client.connect()
                    if s.security == "starttls":
                        await client.starttls()
                    if self.username:
                        await client.login(self.username, self.password or "")
                    if client.is_ehlo_or_helo_needed:
                        try:
                            await client.ehlo()
                        except aiosmtplib.SMTPHeloError:
                            await client.helo()
                except BaseException:
                    await _abort(client)
                    raise
            except aiosmtplib.SMTPAuthenticationError as exc:
                raise SendError(
                    f"{self.where}: authentication failed ({exc.code} {exc.message}); "
                    "check the user name and password in the environment variables named "
                    "in [sender.smtp] username_env and password_env"
                ) from None
            except (ssl.SSLError, aiosmtplib.SMTPNotSupported) as exc:
                raise SendError(
                    f"{self.where}: TLS failed ({_short(exc)}); {_tls_hint(s.security)}"
                ) from None
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code in (530, 534, 535, 538):
                    raise SendError(
                        f"{self.where}: the server requires authentication ({exc.code} "
                        f"{exc.message}); set [sender.smtp] username_env and password_env"
                    ) from None
                last = exc
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, ssl.SSLError) or "SSL" in str(exc) or "TLS" in str(exc):
                    raise SendError(
                        f"{self.where}: TLS failed ({_short(exc)}); {_tls_hint(s.security)}"
                    ) from None
                last = exc
            else:
                _no_delay(client)
                transport = client.transport
                assert transport is not None
                session = _Session(transport, s.timeout)
                transport.set_protocol(session)  # digest runs the transactions from here on
                connection = _Connection(
                    client,
                    session,
                    smtputf8=client.supports_extension("smtputf8"),
                    pipelining=client.supports_extension("pipelining"),
                )
                self._all.add(connection)
                return connection
            if attempt + 1 < CONNECT_TRIES:
                await asyncio.sleep(0.5 * 2**attempt)
        raise SendError(
            f"{self.where}: cannot connect ({_short(last)}); check [sender.smtp] host and port, "
            "then run the same command again to resume"
        )

    async def _acquire(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.alive and connection.session.lost is None:
                return connection
            await self._drop(connection)
        return await self._open()

    async def _release(self, connection: _Connection) -> None:
        if not connection.alive or connection.used >= max(1, self.settings.messages_per_connection):
            await self._drop(connection, polite=connection.alive)
        else:
            self._idle.append(connection)

    async def _drop(self, connection: _Connection, polite: bool = False) -> None:
        self._all.discard(connection)
        connection.alive = False
        session = connection.session
        try:
            if polite and session.lost is None:
                await session.quit()
            else:
                transport = session.transport
                if isinstance(transport, asyncio.WriteTransport):
                    transport.abort()
        except (TimeoutError, ConnectionError, OSError):
            session.transport.close()
        for _ in range(2):  # let the transport release its socket
            await asyncio.sleep(0)

    # -- sending -----------------------------------------------------------------
    async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
        """``batch`` on one connection, in order (pipelined where the server allows)."""
        feed = _ListFeed(batch)
        try:
            await self.stream(feed)
        except SendError as exc:
            # The messages before the failure did go: the engine records them.
            exc.partial = feed.results_so_far()  # type: ignore[attr-defined]
            raise
        return feed.results()

    async def stream(self, feed: Feed) -> None:
        await _Lane(self, feed).run()

    def _transaction(
        self, connection: _Connection, message: OutgoingMessage
    ) -> tuple[bytes, bytes]:
        """The MAIL, RCPT and DATA commands and the dot-stuffed message for one recipient."""
        address, utf8 = route(message.email, utf8=connection.smtputf8, who="the server")
        wire = message.readdressed(address).wire
        sender = self._from if self.return_path is None else self.return_path(message).encode()
        envelope = b"".join(
            (
                b"MAIL FROM:<",
                sender,
                b"> SMTPUTF8\r\nRCPT TO:<" if utf8 else b">\r\nRCPT TO:<",
                address.encode("utf-8"),
                b">\r\nDATA\r\n",
            )
        )
        return envelope, _body(wire, built=message.builder is not None)

    def _refused(
        self, connection: _Connection, message: OutgoingMessage, stage: str, reply: _Reply
    ) -> tuple[Result, bool]:
        """A refusal's meaning: retry on a new connection, stop the send, or this row's
        transient or permanent failure (a permanent one with its bounce kind)."""
        code, text = reply
        reason = f"{code} {text}".strip()
        if code == 421:
            connection.alive = False
            return Result.transient(reason), True
        if code in (530, 535):
            raise SendError(
                f"{self.where}: the server requires authentication ({reason}); "
                "set [sender.smtp] username_env and password_env"
            )
        if stage == "MAIL FROM" and code >= 500:
            sender = self.return_path(message) if self.return_path else self.envelope_from
            raise SendError(
                f"{self.where}: the server refused the sender address {sender} ({reason}); "
                f"check {'[bounces] return_path' if self.return_path else '[newsletter] from'}"
            )
        if 400 <= code < 500:
            return Result.transient(reason), False
        command = "RCPT" if stage == "RCPT TO" else "DATA"
        return Result.permanent(reason, bounce=classify(text=reason, command=command).kind), False

    async def aclose(self) -> None:
        for connection in list(self._all):
            await self._drop(connection, polite=True)
        self._idle.clear()


def data_payload(wire: bytes, *, built: bool = False) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, the final dot.

    ``built``: the bytes come from digest's builder, which writes CRLF only and
    no line starting with a dot, so they go as they are. Other messages are
    normalised.
    """
    return _body(wire, built=built) + _END


def _body(wire: bytes, *, built: bool = False) -> bytes:
    """:func:`data_payload` without the final dot, which the write adds (the message
    is copied once, into the write that carries it)."""
    if built:
        return wire
    pairs = wire.count(b"\r\n")
    if wire.count(b"\n") != pairs or wire.count(b"\r") != pairs:
        wire = _LINE_ENDS.sub(b"\r\n", wire)
    if b"\n." in wire:
        wire = wire.replace(b"\r\n.", b"\r\n..")
    if wire.startswith(b"."):
        wire = b"." + wire
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    return wire


_END = b".\r\n"
_Reply = tuple[int, str]
_LINE_ENDS = re.compile(rb"\r\n|\n|\r")


class _Envelope:
    """A message whose envelope is on the wire (MAIL, RCPT and DATA; MAIL alone
    without PIPELINING), the replies to come, and the connection it went on."""

    __slots__ = ("message", "payload", "commands", "replies", "connection", "tries")

    def __init__(
        self,
        message: OutgoingMessage,
        payload: bytes,
        commands: bytes,
        replies: _Replies,
        connection: _Connection,
        tries: int,
    ) -> None:
        self.message, self.payload, self.commands = message, payload, commands
        self.replies, self.connection, self.tries = replies, connection, tries


class _Lane:
    """One connection's share of a send: a message at a time from the feed.

    With PIPELINING (RFC 2920), the next message's MAIL, RCPT and DATA follow
    this message's end-of-data before its reply is in: one round trip a message
    instead of two. The next message is claimed (and the one before recorded)
    after this one's bytes went, so at most two messages of a connection are
    ever in doubt: the one whose reply is awaited and the one whose envelope
    follows it (nothing of which can have been delivered). Without PIPELINING
    each command waits for its reply and one message is in flight.
    """

    def __init__(self, sender: SmtpSender, feed: Feed) -> None:
        self.sender = sender
        self.feed = feed
        self.connection: _Connection | None = None
        self.done: Done = []  # results not yet handed to the feed
        self.open: dict[int, OutgoingMessage] = {}  # claimed, no result yet
        self.on_wire: OutgoingMessage | None = None  # its bytes went, its reply has not come
        self.limit = max(1, sender.settings.messages_per_connection)

    async def run(self) -> None:
        try:
            envelope: _Envelope | None = None
            while True:
                if envelope is None:
                    message = await self._next()
                    if message is None:
                        break
                    envelope = await self._start(message, tries=0)
                else:
                    envelope = await self._transact(envelope)
        except SendError:
            # What went without a reply may have arrived; the rest never left.
            if self.on_wire is not None and id(self.on_wire) in self.open:
                self._result(self.on_wire, Result.unknown("in flight when the send stopped"))
            self.feed.release(list(self.open.values()))
            self.open.clear()
            raise
        except BaseException:
            # Cancelled, or the ledger failed: record what is known if the ledger can
            # (the rest stays "sending" and the engine makes it unknown); the error goes on.
            done, self.done = self.done, []
            if done:
                with contextlib.suppress(Exception):
                    await self.feed.record(done)
            raise
        finally:
            try:
                if self.done:
                    done, self.done = self.done, []
                    await self.feed.record(done)
            finally:
                if self.connection is not None:
                    await self.sender._release(self.connection)

    def _result(self, message: OutgoingMessage, result: Result) -> None:
        self.open.pop(id(message), None)
        self.done.append((message, result))

    async def _next(self) -> OutgoingMessage | None:
        done, self.done = self.done, []
        message = await self.feed.next(done)
        if message is not None:
            self.open[id(message)] = message
        return message

    async def _connection(self) -> _Connection:
        connection = self.connection
        if connection is not None and (not connection.alive or connection.used >= self.limit):
            self.connection = None
            await self.sender._drop(connection, polite=connection.alive)
            connection = None
        if connection is None:
            connection = self.connection = await self.sender._acquire()
        return connection

    async def _start(self, message: OutgoingMessage, tries: int) -> _Envelope | None:
        """Write ``message``'s envelope (MAIL alone, without PIPELINING); None when the
        message cannot go (its result is then in ``done``)."""
        connection = await self._connection()
        made = self._made(connection, message)
        if made is None:
            return None
        commands, payload = made
        session = connection.session
        try:
            if connection.pipelining:
                replies = session.send(commands, 3)[0]
            else:
                replies = session.send(commands[: commands.index(b"\n") + 1], 1)[0]
        except (ConnectionError, OSError) as exc:
            connection.alive = False
            return await self._again(
                message, tries, f"connection lost at MAIL FROM ({_short(exc)})"
            )
        return _Envelope(message, payload, commands, replies, connection, tries)

    def _made(
        self, connection: _Connection, message: OutgoingMessage
    ) -> tuple[bytes, bytes] | None:
        """The envelope's commands and the message's bytes; None (and the message's
        result) when its data cannot go."""
        try:
            return self.sender._transaction(connection, message)
        except Unroutable as exc:
            self._result(message, Result.permanent(str(exc)))
        except Exception as exc:  # one recipient's data must never stop the send
            self._result(message, Result.permanent(f"{type(exc).__name__}: {_short(exc)}"))
        return None

    async def _again(self, message: OutgoingMessage, tries: int, reason: str) -> _Envelope | None:
        """Nothing of ``message`` was delivered: once more on a fresh connection, else
        a transient result."""
        if tries == 0:
            return await self._start(message, tries=1)
        self._result(message, Result.transient(reason))
        return None

    async def _transact(self, envelope: _Envelope) -> _Envelope | None:
        """Read ``envelope``'s replies, send its message, and (pipelining) the next
        message's envelope right behind it; the envelope now on the wire, if any."""
        connection = envelope.connection
        message = envelope.message
        session = connection.session
        stage = "MAIL FROM"
        rcpt: _Reply | None = None
        data: _Reply | None = None
        try:
            got = await session.wait(envelope.replies)
            if connection.pipelining:
                mail, rcpt, data = got
            else:
                mail = got[0]
                lines = envelope.commands.split(b"\r\n")
                if mail[0] == 250:
                    stage = "RCPT TO"
                    rcpt = (await session.wait(session.send(lines[1] + b"\r\n", 1)[0]))[0]
                    if rcpt[0] in (250, 251):
                        stage = "DATA"
                        data = (await session.wait(session.send(b"DATA\r\n", 1)[0]))[0]
            refusal = _refusal(mail, rcpt, data)
        except (TimeoutError, ConnectionError, OSError) as exc:
            connection.alive = False
            return await self._again(
                message, envelope.tries, f"connection lost at {stage} ({_short(exc)})"
            )
        if refusal is not None:
            if data is not None and data[0] == 354:
                # A server that said 354 after refusing the envelope: end the empty message.
                await self._quietly(connection, b".\r\n")
            if mail[0] != 250:
                stage = "MAIL FROM"
            elif rcpt is None or rcpt[0] not in (250, 251):
                stage = "RCPT TO"
            else:
                stage = "DATA"
            result, retry = self.sender._refused(connection, message, stage, refusal)
            if retry:
                return await self._again(message, envelope.tries, result.reason)
            await self._quietly(connection, b"RSET\r\n")
            self._result(message, result)
            return None
        # The message goes, and (pipelining) the next one's envelope in the same write:
        # the server answers both at once. The next one is claimed (and the result
        # before this one recorded) first, so two of this connection's messages at
        # most are in doubt: this one and the next, whose body has not gone.
        following: tuple[OutgoingMessage, bytes, bytes] | None = None
        if connection.pipelining and ACROSS_MESSAGES and connection.used + 1 < self.limit:
            upcoming = await self._next()
            while upcoming is not None:
                made = self._made(connection, upcoming)
                if made is not None:
                    following = (upcoming, *made)
                    break
                upcoming = await self._next()
        connection.used += 1
        try:
            if following is None:
                reply_to_data = session.send(envelope.payload + _END, 1)[0]
                after = None
            else:
                reply_to_data, replies = session.send(
                    b"".join((envelope.payload, _END, following[1])), 1, 3
                )
                after = _Envelope(following[0], following[2], following[1], replies, connection, 0)
        except (ConnectionError, OSError) as exc:
            connection.alive = False
            if following is not None:
                self.feed.release([following[0]])
                self.open.pop(id(following[0]), None)
            return await self._again(message, envelope.tries, f"connection lost ({_short(exc)})")
        self.on_wire = message
        try:
            reply = (await session.wait(reply_to_data))[0]
        except (TimeoutError, ConnectionError, OSError) as exc:
            connection.alive = False
            self.on_wire = None
            reason = f"connection lost during DATA ({_short(exc)})"
            self._result(message, Result.unknown(reason))
            if after is not None:
                # Its envelope went on the connection that is gone: nothing was delivered.
                return await self._again(after.message, after.tries, reason)
            return None
        self.on_wire = None
        if reply[0] == 250:
            self._result(message, Result.accepted(reply[1]))
        else:
            result, _ = self.sender._refused(connection, message, "the message", reply)
            self._result(message, result)
        return after

    async def _quietly(self, connection: _Connection, command: bytes) -> None:
        """A command whose reply only has to come (RSET, an empty message's end)."""
        try:
            await connection.session.wait(connection.session.send(command, 1)[0])
        except (TimeoutError, ConnectionError, OSError):
            connection.alive = False


class _ListFeed:
    """A fixed list of messages as a feed: what :meth:`SmtpSender.send` streams."""

    def __init__(self, batch: list[OutgoingMessage]) -> None:
        self.batch = batch
        self.position = 0
        self.got: dict[int, Result] = {}

    async def next(self, done: Done) -> OutgoingMessage | None:
        await self.record(done)
        if self.position >= len(self.batch):
            return None
        self.position += 1
        return self.batch[self.position - 1]

    async def record(self, done: Done) -> None:
        for message, result in done:
            self.got[id(message)] = result

    def release(self, messages: list[OutgoingMessage]) -> None:
        return None

    def results(self) -> list[Result]:
        return [self.got[id(m)] for m in self.batch]

    def results_so_far(self) -> list[Result]:
        out = []
        for message in self.batch:
            if id(message) not in self.got:
                break
            out.append(self.got[id(message)])
        return out


def _refusal(mail: _Reply, rcpt: _Reply | None, data: _Reply | None) -> _Reply | None:
    """The first reply that refuses the envelope, or None when the message may follow."""
    if mail[0] != 250:
        return mail
    assert rcpt is not None
    if rcpt[0] not in (250, 251):
        return rcpt
    assert data is not None
    return None if data[0] == 354 else data


class _Replies:
    """The replies one write asked for: resolved when the last of them is in."""

    __slots__ = ("count", "got", "future")

    def __init__(self, count: int, future: asyncio.Future[list[_Reply]]) -> None:
        self.count = count
        self.got: list[_Reply] = []
        self.future = future


class _Session(asyncio.Protocol):
    """The SMTP session after aiosmtplib opened it (TLS, STARTTLS, AUTH, EHLO).

    digest runs the mail transactions itself on the same transport: the bytes
    of each message go out as built (no per-message regular expressions), and
    replies are matched to writes in order, so pipelined commands (RFC 2920)
    work too. A write asks for a number of replies and gets one future for all
    of them.
    """

    def __init__(self, transport: asyncio.BaseTransport, timeout: float) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.waiting: collections.deque[_Replies] = collections.deque()
        self.buffer = b""
        self.text: list[str] = []
        self.lost: BaseException | None = None
        # One watchdog per connection, not a timer per reply: when replies are awaited
        # and nothing has come for ``timeout`` seconds, they fail with TimeoutError.
        self.timeout = timeout
        self.heard = self.loop.time()
        self.watchdog: asyncio.TimerHandle | None = None

    def send(self, data: bytes, *replies: int) -> list[_Replies]:
        """Write ``data``; for each number in ``replies``, that many replies to
        :meth:`wait` for (in order: a message's end, then the next envelope's three)."""
        transport = self.transport
        if self.lost is not None or transport.is_closing():
            raise ConnectionResetError(str(self.lost or "the connection is closed"))
        if not self.waiting:
            self.heard = self.loop.time()
            if self.watchdog is None:
                self.watchdog = self.loop.call_later(self.timeout / 4, self._watch)
        waiters = [_Replies(n, self.loop.create_future()) for n in replies]
        self.waiting.extend(waiters)
        transport.write(data)  # type: ignore[attr-defined]
        return waiters

    async def wait(self, replies: _Replies) -> list[_Reply]:
        future = replies.future
        if not future.done():
            await future
        return future.result()

    def _watch(self) -> None:
        self.watchdog = None
        if not self.waiting or self.lost is not None:
            return
        if self.loop.time() - self.heard < self.timeout:
            self.watchdog = self.loop.call_later(self.timeout / 4, self._watch)
            return
        self.lost = TimeoutError(f"no reply in {self.timeout:g} seconds")
        while self.waiting:
            future = self.waiting.popleft().future
            if not future.done():
                future.set_exception(TimeoutError(str(self.lost)))
                future.exception()  # retrieved: nobody may await it any more (the next envelope's)
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start : end + 1]
            start = end + 1
            if line[3:4] == b"-":
                self.text.append(line[4:].strip().decode("utf-8", "replace"))
                continue
            try:
                code = int(line[:3])
            except ValueError:
                code = 0
            text = line[4:].strip().decode("utf-8", "replace")
            if self.text:
                self.text.append(text)
                text = "\n".join(self.text)
                self.text = []
            if self.waiting:
                waiter = self.waiting[0]
                waiter.got.append((code, text))
                if len(waiter.got) >= waiter.count:
                    self.waiting.popleft()
                    if not waiter.future.done():
                        waiter.future.set_result(waiter.got)
            elif code == 421:  # the server is closing (idle timeout, shutdown)
                self.lost = ConnectionResetError(f"{code} {text}")
        self.buffer = buffer[start:]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.lost = self.lost or exc or ConnectionResetError("the server closed the connection")
        while self.waiting:
            future = self.waiting.popleft().future
            if not future.done():
                future.set_exception(ConnectionResetError(str(self.lost)))
                future.exception()  # retrieved: nobody may await it any more

    async def quit(self) -> None:
        try:
            await self.wait(self.send(b"QUIT\r\n", 1)[0])
        finally:
            self.transport.close()


def _no_delay(client: aiosmtplib.SMTP) -> None:
    """Send each command at once: Nagle's algorithm would hold the end of DATA for an ACK."""
    transport = client.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # the reply, not (code, text)
        text = f"{exc.code} {exc.message}"
    else:
        text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _tls_hint(security: str) -> str:
    if security == "tls":
        return 'check that the port speaks implicit TLS (usually 465) or use security = "starttls"'
    return 'check that the server offers STARTTLS with a valid certificate, or use security = "tls"'


async def _abort(client: aiosmtplib.SMTP) -> None:
    """Drop a half-open connection now, socket included.

    A TLS transport's plain close waits for a shutdown exchange; aborting
    and giving the loop two turns releases the socket before ``asyncio.run``
    returns, so nothing is left for the garbage collector to complain about.
    """
    transport = client.transport
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    client.close()
    for _ in range(2):
        await asyncio.sleep(0)
