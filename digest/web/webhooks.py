"""Provider webhooks on the public side: ``POST /webhooks/{provider}``.

A route exists only for a provider configured in ``[webhooks.PROVIDER]``;
the work (verifying, reading the events, the policy) is
:func:`digest.send.intake.webhooks.receive.handle`. The answer is quick and small:
200 with counts for a verified request (even when every event is ignored),
401 for a request that is not the provider's, 403 for a stale or replayed
one, 413 for an oversized body.
"""

from __future__ import annotations

import functools

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from digest.send.intake.webhooks import receive
from digest.send.intake.webhooks.common import MAX_BODY, Refused
from digest.store import open_store
from digest.workspace import Workspace


def routes(ws: Workspace) -> list[BaseRoute]:
    """One route per configured provider; ConfigError when its secret is not set."""
    receive.check_secrets(ws.config)
    return [
        Route(f"/webhooks/{name}", functools.partial(_receive, ws, name), methods=["POST"])
        for name in receive.configured(ws.config)
    ]


async def _receive(ws: Workspace, provider: str, request: Request) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "request body too large"}, 413)
    headers = dict(request.headers)
    try:
        handled = await run_in_threadpool(_handle, ws, provider, headers, body)
    except Refused as exc:
        return JSONResponse({"error": str(exc)}, exc.status)
    return JSONResponse(handled.to_dict())


def _handle(ws: Workspace, provider: str, headers: dict[str, str], body: bytes) -> receive.Handled:
    with open_store(ws) as store:
        return receive.handle(store, provider, headers, body)
