"""The one Starlette app of digest.

``create_app(ws, "preview")`` is the loopback-only preview of issues for
editors; ``create_app(ws, "public")`` is the public side (subscribe, confirm,
unsubscribe, archive) meant to sit behind a reverse proxy. Both share the
security headers, the error pages and ``/healthz`` from :mod:`digest.web.app`.
"""

from __future__ import annotations

from digest.web.app import create_app

__all__ = ["create_app"]
