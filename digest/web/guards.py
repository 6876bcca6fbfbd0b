"""ASGI guards around both apps: body limits and timeouts, Host checks, the access log.

* :class:`BodyLimit` counts a request's body while it streams in, whatever
  its content type, and stops at the route's limit (413) or when the body
  takes longer than :data:`BODY_TIMEOUT` seconds (408): nothing reads a body
  whole before checking its size.
* :class:`LoopbackHosts` lets the preview answer only ``localhost``,
  ``127.0.0.1`` and ``[::1]`` on its own port, so a page on another site
  cannot read drafts through DNS rebinding.
* :class:`AccessLog` writes one line per request with tokens cut out of the
  path and no client address unless ``[web] log_client_ip`` asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.web.public_guard import client_ip, parse_proxies

DEFAULT_BODY_LIMIT = 64 * 1024  # bytes: the largest form a page here sends, with room
BODY_TIMEOUT = 15.0  # seconds for a whole request body ([web] body_timeout sets it)

access_log = logging.getLogger("digest.web.access")


class BodyLimit:
    """Refuse a body past its route's byte limit (413) or arriving too slowly (408).

    ``limits`` maps a path prefix to its own limit (the longest prefix wins);
    other paths get ``default``. The size is counted chunk by chunk as the
    app reads, so a chunked body without Content-Length is stopped at the
    limit too; a declared Content-Length past it is refused before reading.
    The exceptions are raised inside the app's read, so its error pages
    answer them.
    """

    def __init__(
        self,
        app: ASGIApp,
        default: int = DEFAULT_BODY_LIMIT,
        limits: Mapping[str, int] | None = None,
        timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.default = default
        self.limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))
        self.timeout = timeout

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        loop = asyncio.get_running_loop()
        received = 0
        finished = False
        deadline: float | None = None

        async def guarded() -> Message:
            nonlocal received, finished, deadline
            if finished:  # the body is in: what follows is a wait for disconnect
                return await receive()
            if declared is not None and declared > limit:
                raise _too_large(limit)
            if deadline is None:
                deadline = loop.time() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(
                    408, f"The request body did not arrive within {self.timeout:g} seconds."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
                finished = not message.get("more_body", False)
            else:
                finished = True
            return message

        await self.app(scope, guarded, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, f"The request is larger than this address accepts ({limit // 1024} KiB)."
    )


# -- the preview's Host header -----------------------------------------------------

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def split_host(value: str) -> tuple[str, str] | None:
    """``(name, port)`` of a Host header (port may be ""), or None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name, port


def loopback_host(value: str, server_port: int | None, also: Sequence[str] = ()) -> bool:
    """True for a loopback name (or one of ``also``), on the server's own port when given."""
    parts = split_host(value)
    if parts is None:
        return False
    name, port = parts
    if name not in LOOPBACK_NAMES and name not in also:
        return False
    return not port or server_port is None or int(port) == server_port


class LoopbackHosts:
    """Answer 400 to any Host other than a loopback name on our port (DNS rebinding).

    ``also`` names the address the editor chose to serve on (``--host``), when
    it is not a loopback one; a name an attacker controls never matches it.
    """

    def __init__(self, app: ASGIApp, also: Sequence[str] = ()) -> None:
        self.app = app
        self.also = tuple(f"[{name}]" if ":" in name else name.lower() for name in also)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = ""
            for name, value in scope.get("headers", []):
                if name == b"host":
                    host = value.decode("latin-1")
                    break
            server = scope.get("server")
            port = server[1] if server else None
            if not loopback_host(host, port, self.also):
                if scope["type"] == "http":
                    response = PlainTextResponse(
                        "The preview answers only http://localhost, http://127.0.0.1 and "
                        "http://[::1] on its own port.\n",
                        400,
                    )
                    await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- the access log ------------------------------------------------------------------

# Path segments that are signed tokens: after these prefixes, or any long dotted one.
_TOKEN_PREFIXES = re.compile(r"^/(unsubscribe|confirm|resubscribe|manage)/[^/]+")
_TOKEN_LIKE = re.compile(r"/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_.-]{16,}")


def redact_path(path: str) -> str:
    """The path with signed tokens replaced by ``…`` (the query string is never logged)."""
    path = _TOKEN_PREFIXES.sub(lambda m: f"/{m.group(1)}/…", path)
    return _TOKEN_LIKE.sub("/…", path)


class AccessLog:
    """One line per request: method, redacted path, status (and the client, if asked)."""

    def __init__(self, app: ASGIApp, client_ip: bool = False, proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.client_ip = client_ip
        self.proxies = parse_proxies(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, note_status)
        finally:
            who = f"{client_ip(Request(scope), self.proxies)} " if self.client_ip else ""
            access_log.info(
                '%s"%s %s" %s', who, scope["method"], redact_path(scope["path"]), status or 500
            )
