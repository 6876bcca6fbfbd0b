"""App assembly: one side's routes, security headers, error pages, health.

Each side's module (:mod:`digest.web.preview`, :mod:`digest.web.public`)
hands its routes and error page up to :func:`create_app`; this module knows
no side by name, so the sides import it and never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeaders:
    """Adds the security headers to every response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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


def create_app(
    ws: Workspace,
    routes: list[BaseRoute],
    *,
    error_page: ErrorPage = plain_error_page,
    debug: bool = False,
) -> Starlette:
    """The app for one side: its ``routes`` and ``error_page``, plus ``/healthz``."""
    app = Starlette(
        debug=debug,
        routes=[Route("/healthz", healthz), *routes],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.workspace = ws
    app.state.error_page = error_page
    return app
