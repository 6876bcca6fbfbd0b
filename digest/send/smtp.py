"""SMTP through aiosmtplib: a few persistent connections in parallel.

Each ``send`` call borrows one connection from a small pool (``connections``
of them) and sends its messages one after another on it; a connection is
closed and opened again after ``messages_per_connection`` messages. Replies
are read per stage, because the stage tells what a failure means:

* MAIL or RCPT refused with 4xx: transient (retried later, with backoff);
  with 5xx: permanent for that recipient. A 421 ("closing") reconnects and
  tries the message once more at once.
* The connection lost before DATA: nothing was delivered; the message is
  tried once more on a fresh connection.
* The connection lost during DATA: the server may have taken the message, so
  it is *unknown*, reported, and re-sent only when the operator asks.
* Authentication and TLS failures, a refused sender address, or a server
  that cannot be reached stop the whole send with one line naming host:port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib

from digest.bounces import classify
from digest.config import Smtp
from digest.errors import SendError
from digest.send.sender import OutgoingMessage, Result, Sender

CONNECT_TRIES = 3


@dataclass(eq=False)
class _Connection:
    client: aiosmtplib.SMTP
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
        batch_size: int = 10,
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
                connection = _Connection(client)
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
            if connection.alive and connection.client.is_connected:
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
        try:
            if polite and connection.client.is_connected:
                await connection.client.quit()
            else:
                connection.client.close()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            connection.client.close()

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
        client = connection.client
        connection.used += 1
        stage = "MAIL FROM"
        sender = self.return_path(message) if self.return_path else self.envelope_from
        try:
            await client.mail(sender)
            stage = "RCPT TO"
            await client.rcpt(message.email)
            stage = "DATA"
            reply = await client.data(message.wire)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or not client.is_connected:
                connection.alive = False
                return Result.transient(f"{exc.code} {exc.message}".strip()), True
            if exc.code in (530, 535):
                raise SendError(
                    f"{self.where}: the server requires authentication ({exc.code} "
                    f"{exc.message}); set [sender.smtp] username_env and password_env"
                ) from None
            if stage == "MAIL FROM" and exc.code >= 500:
                raise SendError(
                    f"{self.where}: the server refused the sender address {sender} "
                    f"({exc.code} {exc.message}); check "
                    f"{'[bounces] return_path' if self.return_path else '[newsletter] from'}"
                ) from None
            await self._reset(connection)
            reason = f"{exc.code} {exc.message}".strip()
            if 400 <= exc.code < 500:
                return Result.transient(reason), False
            return Result.permanent(reason, bounce=classify(text=reason).kind), False
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            connection.alive = False
            if stage == "DATA":
                return Result.unknown(f"connection lost during DATA ({_short(exc)})"), False
            return Result.transient(f"connection lost at {stage} ({_short(exc)})"), True
        return Result.accepted(reply.message.strip()), False

    async def _reset(self, connection: _Connection) -> None:
        try:
            await connection.client.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            connection.alive = False

    async def aclose(self) -> None:
        for connection in list(self._all):
            await self._drop(connection, polite=True)
        self._idle.clear()


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
