"""SMTP through aiosmtplib: a few persistent connections in parallel.

Each ``send`` call borrows one connection from a small pool (``connections``
of them) and sends its messages one after another on it; a connection is
closed and opened again after ``messages_per_connection`` messages.
aiosmtplib opens each session (TLS or STARTTLS, AUTH, EHLO); the mail
transactions then run on digest's own small protocol over the same
transport (:class:`_Session`), which writes the built bytes as they are and
pipelines MAIL, RCPT and DATA when the server offers PIPELINING (RFC 2920).

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
from digest.send.sender import OutgoingMessage, Result, Sender

CONNECT_TRIES = 3


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

    def __init__(
        self,
        settings: Smtp,
        envelope_from: str,
        *,
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
        self.name = f"smtp {self.where} ({settings.security}, {settings.connections} connections)"
        self.parallel = max(1, settings.connections)
        self.batch_size = batch_size
        self._from = envelope_from.encode("utf-8")
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    # -- connections -------------------------------------------------------------
    async def _open(self) -> _Connection:
        s = self.settings
        last: BaseException | None = None
        for attempt in range(CONNECT_TRIES):
            client = aiosmtplib.SMTP(
                hostname=s.host,
                port=s.port,
                timeout=s.timeout,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=self.tls_context,
                username=self.username or None,
                password=self.password or None,
            )
            try:
                try:
                    await client.connect()
                    if client.is_ehlo_or_helo_needed:
                        try:
                            await client.ehlo()
                        except aiosmtplib.SMTPHeloError:
                            await client.helo()
                except BaseException:
                    await _abort(client)  # a refused login or TLS can leave the socket open
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
                session = _Session(transport)
                transport.set_protocol(session)  # digest runs the transactions from here on
                connection = _Connection(
                    client,
                    session,
                    smtputf8=client.supports_extension("smtputf8"),
                    pipelining=client.supports_extension("pipelining"),
                )
                self._all.add(connection)
                return connection
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
                await session.quit(self.settings.timeout)
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
        connection = await self._acquire()
        results: list[Result] = []
        try:
            for message in batch:
                if connection.used >= max(1, self.settings.messages_per_connection):
                    await self._drop(connection, polite=True)
                    connection = await self._open()
                result, retry = await self._deliver(connection, message)
                if retry:
                    await self._drop(connection)
                    connection = await self._open()
                    result, retry = await self._deliver(connection, message)
                    if retry:
                        await self._drop(connection)
                        connection = await self._open()
                results.append(result)
        except SendError as exc:
            # The messages before the failure did go: the engine records them.
            exc.partial = results  # type: ignore[attr-defined]
            raise
        finally:
            await self._release(connection)
        return results

    async def _deliver(
        self, connection: _Connection, message: OutgoingMessage
    ) -> tuple[Result, bool]:
        """One message; the flag asks for a fresh connection and one more try."""
        connection.used += 1
        try:
            commands, payload = self._transaction(connection, message)
        except Unroutable as exc:
            return Result.permanent(str(exc)), False
        except Exception as exc:  # one recipient's data must never stop the send
            return Result.permanent(f"{type(exc).__name__}: {_short(exc)}"), False
        session = connection.session
        stage = "MAIL FROM"
        rcpt: tuple[int, str] | None = None
        data: tuple[int, str] | None = None
        try:
            async with asyncio.timeout(self.settings.timeout):
                if connection.pipelining:  # RFC 2920: MAIL, RCPT and DATA in one write
                    replies = session.send(b"".join(commands), 3)
                    mail = await replies[0]
                    stage = "RCPT TO"
                    rcpt = await replies[1]
                    stage = "DATA"
                    data = await replies[2]
                else:
                    mail = await session.send(commands[0], 1)[0]
                    if mail[0] == 250:
                        stage = "RCPT TO"
                        rcpt = await session.send(commands[1], 1)[0]
                        if rcpt[0] in (250, 251):
                            stage = "DATA"
                            data = await session.send(commands[2], 1)[0]
                refusal = _refusal(mail, rcpt, data)
                if refusal is None:
                    stage = "the message"
                    reply = await session.send(payload, 1)[0]
                    if reply[0] == 250:
                        return Result.accepted(reply[1]), False
                    refusal = reply
                elif data is not None and data[0] == 354:
                    # A server that said 354 after refusing the envelope: end the empty message.
                    await session.send(b".\r\n", 1)[0]
                if mail[0] != 250:
                    stage = "MAIL FROM"
                elif rcpt is None or rcpt[0] not in (250, 251):
                    stage = "RCPT TO"
                return await self._refused(connection, message, stage, refusal)
        except SendError:
            raise
        except (TimeoutError, ConnectionError, OSError) as exc:
            connection.alive = False
            if stage == "the message":
                return Result.unknown(f"connection lost during DATA ({_short(exc)})"), False
            return Result.transient(f"connection lost at {stage} ({_short(exc)})"), True

    def _transaction(
        self, connection: _Connection, message: OutgoingMessage
    ) -> tuple[list[bytes], bytes]:
        """The MAIL, RCPT and DATA commands and the dot-stuffed message for one recipient."""
        address, utf8 = route(message.email, utf8=connection.smtputf8, who="the server")
        wire = message.readdressed(address).wire
        sender = self._from if self.return_path is None else self.return_path(message).encode()
        mail = b"MAIL FROM:<" + sender + (b"> SMTPUTF8\r\n" if utf8 else b">\r\n")
        rcpt = b"RCPT TO:<" + address.encode("utf-8") + b">\r\n"
        return [mail, rcpt, b"DATA\r\n"], data_payload(wire, built=message.builder is not None)

    async def _refused(
        self,
        connection: _Connection,
        message: OutgoingMessage,
        stage: str,
        reply: tuple[int, str],
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
        await self._reset(connection)
        if 400 <= code < 500:
            return Result.transient(reason), False
        command = "RCPT" if stage == "RCPT TO" else "DATA"
        return Result.permanent(reason, bounce=classify(text=reason, command=command).kind), False

    async def _reset(self, connection: _Connection) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout):
                await connection.session.send(b"RSET\r\n", 1)[0]
        except (TimeoutError, ConnectionError, OSError):
            connection.alive = False

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
    if built:
        return wire + b".\r\n"
    pairs = wire.count(b"\r\n")
    if wire.count(b"\n") != pairs or wire.count(b"\r") != pairs:
        wire = _LINE_ENDS.sub(b"\r\n", wire)
    if b"\n." in wire:
        wire = wire.replace(b"\r\n.", b"\r\n..")
    if wire.startswith(b"."):
        wire = b"." + wire
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    return wire + b".\r\n"


def _refusal(
    mail: tuple[int, str], rcpt: tuple[int, str] | None, data: tuple[int, str] | None
) -> tuple[int, str] | None:
    """The first reply that refuses the envelope, or None when the message may follow."""
    if mail[0] != 250:
        return mail
    assert rcpt is not None
    if rcpt[0] not in (250, 251):
        return rcpt
    assert data is not None
    return None if data[0] == 354 else data


_LINE_ENDS = re.compile(rb"\r\n|\n|\r")


class _Session(asyncio.Protocol):
    """The SMTP session after aiosmtplib opened it (TLS, STARTTLS, AUTH, EHLO).

    digest runs the mail transactions itself on the same transport: the bytes
    of each message go out as built (no per-message regular expressions), and
    replies are matched to commands in order, so pipelined commands (RFC 2920)
    work too.
    """

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.waiting: collections.deque[asyncio.Future[tuple[int, str]]] = collections.deque()
        self.buffer = bytearray()
        self.text: list[str] = []
        self.lost: BaseException | None = None

    def send(self, data: bytes, replies: int) -> list[asyncio.Future[tuple[int, str]]]:
        """Write ``data``; futures for the ``replies`` it asks for, in order."""
        transport = self.transport
        if self.lost is not None or transport.is_closing():
            raise ConnectionResetError(str(self.lost or "the connection is closed"))
        futures = [self.loop.create_future() for _ in range(replies)]
        self.waiting.extend(futures)
        transport.write(data)  # type: ignore[attr-defined]
        return futures

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start : end + 1])
            start = end + 1
            self.text.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] == b"-":
                continue
            try:
                code = int(line[:3])
            except ValueError:
                code = 0
            reply = (code, "\n".join(self.text))
            self.text = []
            if self.waiting:
                waiter = self.waiting.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
            elif code == 421:  # the server is closing (idle timeout, shutdown)
                self.lost = ConnectionResetError(f"{reply[0]} {reply[1]}")
        del buffer[:start]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("the server closed the connection")
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionResetError(str(self.lost)))
                waiter.exception()  # retrieved: nobody may await it any more

    async def quit(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.send(b"QUIT\r\n", 1)[0]
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
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


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
