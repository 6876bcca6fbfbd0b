"""Running the public app: under uvicorn, or for one in-process request (``--get``)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import ASGIApp

from digest.web import public
from digest.workspace import Workspace


def create_public_app(ws: Workspace) -> ASGIApp:
    """The public app; ConfigError when the signing key is missing from the environment."""
    return public.app(ws)


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


def run(app: ASGIApp, host: str, port: int) -> None:
    """Serve with uvicorn. Its own proxy-header rewriting is off: the app decides whom
    to believe (``[web] trusted_proxies``), so a forged X-Forwarded-For changes nothing."""
    import uvicorn  # deferred: only a running server needs it

    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )
