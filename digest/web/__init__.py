"""The one Starlette app of digest, in two sides.

``digest.web.preview.app(ws)`` is the loopback-only preview of issues for
editors; ``digest.web.public.app(ws)`` is the public side (subscribe,
confirm, unsubscribe, archive) meant to sit behind a reverse proxy. Both are
assembled by :mod:`digest.web.app`, which adds the security headers, the
error pages and ``/healthz``. The package imports nothing itself.
"""
