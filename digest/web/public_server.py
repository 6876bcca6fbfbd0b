"""Running the public app: under uvicorn, or for one in-process request (``--get``).

Under uvicorn the app is wrapped in the access log (tokens redacted, no client
address unless ``[web] log_client_ip``), and each connection must send a
request's headers within ``[web] header_timeout`` seconds: uvicorn itself
waits for headers forever, so a client dribbling them one byte at a time
(slowloris) would hold a connection open. Bodies are timed and counted by
:class:`digest.web.guards.BodyLimit` inside the app.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
from starlette.types import ASGIApp

from digest.errors import ConfigError, DigestError
from digest.send.deliveries import latest_send
from digest.store import open_store
from digest.tokens import Tokens
from digest.web import public
from digest.web.guards import AccessLog
from digest.workspace import Workspace

log = logging.getLogger("digest.web.server")

MAX_HEADER_BYTES = 16 * 1024  # h11 refuses a request whose headers are larger
KEEP_ALIVE = 5  # seconds an idle connection is kept between requests


def create_public_app(ws: Workspace, *, check_keys: bool = True) -> ASGIApp:
    """The public app; ConfigError when the signing key is missing from the environment
    or (``check_keys``) none of the keys verifies the links of the issue sent last."""
    app = public.app(ws)
    if check_keys:
        check_link_keys(ws)
    return app


def check_link_keys(ws: Workspace) -> None:
    """Refuse keys that would break every link of the issue sent last (a rotation gone wrong)."""
    env = ws.signing_key_env
    previous_env = ws.config.web.previous_secret_keys_env
    tokens = Tokens(ws.signing_key(env_only=True), previous=ws.previous_secrets())
    with open_store(ws) as store:
        issue = latest_send(store)
        if issue is None:
            return
        used = store.link_keys(issue)
    if not used or used & set(tokens.verifying):
        return
    shown = ", ".join(sorted(used))
    raise ConfigError(
        f"none of the signing keys in {env} and {previous_env} verifies the links in issue "
        f"{issue}, the last one sent (its key's fingerprint: {shown}), so every unsubscribe "
        f"link already mailed would fail. Set {env} back to the key that sent it, or keep "
        f"that key verifying while {env} holds the new one: "
        f'export {previous_env}="<the key that sent it>" (or, to retire a leaked key on '
        "purpose, start with --retire-sent-key)"
    )


def request_once(app: ASGIApp, path: str, base_url: str) -> httpx.Response:
    """One GET through the app in this process, as a script or a test would make it."""
    if not path.startswith("/"):
        path = "/" + path

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            response = await client.get(path)
            await response.aread()
            return response

    return asyncio.run(go())


class _Watched(asyncio.Transport):
    """The connection's transport as the wrapped protocol sees it: the same, but each
    write (a response going out) is reported first."""

    def __init__(self, transport: asyncio.Transport, on_write: Callable[[], None]) -> None:
        super().__init__()
        self._transport = transport
        self._on_write = on_write

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._on_write()
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._on_write()
        self._transport.writelines(list_of_data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


def timed_headers_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """An HTTP/1.1 protocol for uvicorn that closes a connection whose headers come too slowly.

    uvicorn takes a protocol class for ``http`` (its documented hook) and builds it
    with the keywords it gives every protocol; this one builds uvicorn's own
    HTTP/1.1 protocol (what ``--http h11`` names) with them and stands between it
    and the connection, through asyncio's Protocol and Transport interfaces only:
    it subclasses nothing of uvicorn's and reads none of its attributes.

    The clock runs from the connection's start, and on a kept-alive connection
    from the first byte of each later request, until a blank line ends the
    request's headers; a response going out marks the end of a request. A
    connection idle between requests is uvicorn's keep-alive timeout's to close.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol  # deferred: only a server needs it

    class TimedHeaders(asyncio.Protocol):
        def __init__(self, **kwargs: Any) -> None:
            self.inner: asyncio.Protocol = H11Protocol(**kwargs)  # its Protocol API only
            self.loop = kwargs.get("_loop") or asyncio.get_event_loop()
            self.transport: asyncio.Transport | None = None
            self.timer: asyncio.TimerHandle | None = None
            self.awaiting = True  # reading a request's headers
            self.begun = False  # a byte of them (other than CR or LF) has come
            self.tail = b""  # the last bytes seen, for a blank line split across reads

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self._start()
            self.inner.connection_made(_Watched(transport, self._response_started))

        def data_received(self, data: bytes) -> None:
            if self.awaiting:
                self._scan(data)
            self.inner.data_received(data)

        def _scan(self, data: bytes) -> None:
            if self.timer is None:  # the first byte of a later request on a kept-alive one
                self._start()
            if not self.begun:  # blank lines before a request line are allowed, and skipped
                data = data.lstrip(b"\r\n")
                if not data:
                    return
                self.begun = True
            seen = self.tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self.awaiting = False
                self._stop()
            self.tail = seen[-3:]

        def _response_started(self) -> None:
            if not self.awaiting:  # the next bytes are the next request's
                self.awaiting, self.begun, self.tail = True, False, b""

        def _start(self) -> None:
            self._stop()
            self.timer = self.loop.call_later(header_timeout, self._too_slow)

        def _stop(self) -> None:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

        def _too_slow(self) -> None:
            self.timer = None
            if self.transport is not None and not self.transport.is_closing():
                log.info("closed a connection whose request headers took over %gs", header_timeout)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop()
            self.inner.connection_lost(exc)

        def eof_received(self) -> bool | None:
            return self.inner.eof_received()

        def pause_writing(self) -> None:
            self.inner.pause_writing()

        def resume_writing(self) -> None:
            self.inner.resume_writing()

    return TimedHeaders


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus digest's own loggers on the same stream."""
    from uvicorn.config import LOGGING_CONFIG  # deferred: only a server needs it

    config: dict[str, Any] = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    config["formatters"] = {
        **LOGGING_CONFIG["formatters"],
        "digest": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    }
    config["handlers"] = {
        **LOGGING_CONFIG["handlers"],
        "digest": {
            "formatter": "digest",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
    }
    config["loggers"]["digest"] = {"handlers": ["digest"], "level": "INFO", "propagate": False}
    return config


def run(ws: Workspace, app: ASGIApp, host: str, port: int) -> None:
    """Serve with uvicorn. Its own proxy-header rewriting is off: the app decides whom
    to believe (``[web] trusted_proxies``), so a forged X-Forwarded-For changes nothing.
    Its own access log is off too: :class:`AccessLog` writes one without tokens."""
    import uvicorn  # deferred: only a running server needs it

    web = ws.config.web
    sock = listen(host, port)  # before uvicorn starts: a busy port is one clear line
    config = uvicorn.Config(
        AccessLog(app, client_ip=web.log_client_ip, proxies=web.trusted_proxies),
        host=host,
        port=port,
        http=timed_headers_protocol(web.header_timeout),
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=_log_config(),
        log_level="info",
        timeout_keep_alive=KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    bound, shown = sock.getsockname()[1], f"[{host}]" if ":" in host else host

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # uvicorn says where only when it binds the socket itself
                log.info("running on http://%s:%d (Ctrl-C to stop)", shown, bound)

    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl-C, then raises it again
        pass
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``; a busy or forbidden address is a DigestError
    that names it and the way out."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on connections whose socket says TCP. With it on, the body of each reply (h11 writes it
    # apart from the head) waited for the client's delayed ACK: 40 ms more for every request
    # after the first on a kept-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise DigestError(
                f"cannot listen on {shown}: the address is already in use (is another "
                f"`digest serve` running?); pick another port with --port, "
                f"e.g. --port {port + 1}"
            ) from None
        raise DigestError(
            f"cannot listen on {shown}: {exc.strerror or exc}; pick another address with "
            "--host or another port with --port"
        ) from None
    return sock
