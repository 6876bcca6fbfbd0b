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
    env = ws.config.web.secret_key_env
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


def timed_headers_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose headers come too slowly.

    The clock starts when the connection opens and again after each response
    (keep-alive); it stops when a request's headers are complete.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol  # deferred: only a server needs it

    class TimedHeaders(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._header_timer: asyncio.TimerHandle | None = None
            super().connection_made(transport)
            self._start_header_clock()

        def _start_header_clock(self) -> None:
            self._stop_header_clock()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _stop_header_clock(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                log.info("closed a connection whose request headers took over %gs", header_timeout)
                self.transport.close()

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's headers are in
                self._stop_header_clock()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._start_header_clock()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_clock()
            super().connection_lost(exc)

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
    sock = socket.socket(family, socket.SOCK_STREAM)
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
