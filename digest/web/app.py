"""App assembly: one side's routes, security headers, error pages, health.

Each side's module (:mod:`digest.web.preview`, :mod:`digest.web.public`)
hands its routes and error page up to :func:`create_app`; this module knows
no side by name, so the sides import it and never the other way round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from html import escape

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.web.guards import BodyLimit, LoopbackHosts, redact_path
from digest.workspace import Workspace

# No inline scripts and nothing from third parties; images may come from the
# articles' own sites, as in the email itself.
CSP = (
    "default-src 'self'; img-src 'self' https: http: data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"SAMEORIGIN",
    b"cross-origin-opener-policy": b"same-origin",
}


log = logging.getLogger("digest.web")

HSTS = b"max-age=31536000"  # a year; sent only when base_url is https


class SecurityHeaders:
    """Adds the security headers to every response that does not set its own."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.headers = {
            **SECURITY_HEADERS,
            **({b"strict-transport-security": HSTS} if hsts else {}),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers.items() if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ErrorPages:
    """An unexpected failure becomes the side's own 500 page, inside SecurityHeaders.

    Starlette's last-resort handler sits outside every middleware, so its bare
    500 would go out without the security headers; this one answers first
    (unless the reply had already begun) and logs the failure, path redacted.
    """

    def __init__(self, app: ASGIApp, error_page: ErrorPage) -> None:
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            log.exception("%s %s failed", scope["method"], redact_path(scope["path"]))
            detail = "Please try again in a few minutes."
            request = Request(scope, receive)
            if wants_json(request):
                response: Response = JSONResponse({"error": detail, "status": 500}, 500)
            else:
                response = HTMLResponse(self.error_page(request, 500, detail), 500)
            await response(scope, receive, send)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if wants_json(request):
        return JSONResponse(
            {"error": exc.detail, "status": exc.status_code}, exc.status_code, exc.headers
        )
    render = request.app.state.error_page
    html = render(request, exc.status_code, str(exc.detail))
    return HTMLResponse(html, exc.status_code, exc.headers)  # e.g. Retry-After, Allow


def plain_error_page(request: Request, status: int, detail: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{status}</title><h1>{status}</h1><p>{escape(detail)}</p></html>"
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


ErrorPage = Callable[[Request, int, str], str]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_app(
    ws: Workspace,
    routes: list[BaseRoute],
    *,
    error_page: ErrorPage = plain_error_page,
    debug: bool = False,
    loopback_only: bool = False,
    also_hosts: Sequence[str] = (),
    body_limits: Mapping[str, int] | None = None,
    redirect_slashes: bool = True,
    lifespan: Lifespan | None = None,
) -> Starlette:
    """The app for one side: its ``routes`` and ``error_page``, plus ``/healthz``.

    Every request body is counted and timed as it streams (``body_limits``:
    path prefix -> bytes, else 64 KiB); ``loopback_only`` answers only
    loopback Host headers, and ``also_hosts`` (the preview); HSTS goes out when base_url is https
    and the app is public. ``redirect_slashes=False`` turns off Starlette's
    slash redirect, which builds its Location from the request's Host header.
    ``lifespan`` runs around a server's life (not around one in-process request).
    """
    https = ws.config.newsletter.base_url.startswith("https://")
    middleware = [
        Middleware(SecurityHeaders, hsts=https and not loopback_only),
        *([] if debug else [Middleware(ErrorPages, error_page=error_page)]),
        *([Middleware(LoopbackHosts, also=also_hosts)] if loopback_only else []),
        Middleware(BodyLimit, limits=body_limits, timeout=ws.config.web.body_timeout),
    ]
    app = Starlette(
        debug=debug,
        routes=[Route("/healthz", healthz), *routes],
        middleware=middleware,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = redirect_slashes
    app.state.workspace = ws
    app.state.error_page = error_page
    return app
