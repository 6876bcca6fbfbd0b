"""What stands between the public pages and the Internet.

The client's address (believing ``X-Forwarded-For`` only from a configured
proxy), a per-address limit on form posts, the double-submit CSRF check of
the subscribe form, and the honeypot that quietly drops what bots fill in.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from starlette.requests import Request

from digest import clock
from digest.errors import ConfigError, TokenError
from digest.tokens import Tokens

CSRF_COOKIE = "digest_form"
CSRF_FIELD = "form_token"
CSRF_MAX_AGE = 2 * 3600
HONEYPOT_FIELD = "website"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """``[web] trusted_proxies`` as networks; a single address is a /32 (or /128)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"web.trusted_proxies: {value!r} is not an IP address or network "
                '(write e.g. "127.0.0.1" or "10.0.0.0/8")'
            ) from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(text: str, proxies: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in proxies)


def client_ip(request: Request, proxies: tuple[Network, ...]) -> str:
    """The address of the person, not of our reverse proxy.

    ``X-Forwarded-For`` is read only when the connection comes from a trusted
    proxy, and then from the right: each trusted hop is skipped and the first
    address not ours is the client (anything left of it could be forged).
    """
    peer = request.client.host if request.client else ""
    if not peer or not _trusted(peer, proxies):
        return peer or "unknown"
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            address = _address(hop)
            return str(address) if address else peer
    return hops[0] if hops and _address(hops[0]) else peer


def came_over_https(request: Request, proxies: tuple[Network, ...]) -> bool:
    """Whether the client reached us over https: directly (TLS to this server), or to a
    trusted proxy that says so in ``X-Forwarded-Proto`` (its own, right-most value).

    The header is believed from a trusted proxy only; it decides nothing but whether
    the form cookie is ``Secure`` (links come from base_url, never from headers).
    """
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else ""
    if not peer or not _trusted(peer, proxies):
        return False
    said = [
        value.strip().lower()
        for header in request.headers.getlist("x-forwarded-proto")
        for value in header.split(",")
        if value.strip()
    ]
    return bool(said) and said[-1] == "https"


def rate_key(ip: str, ipv6_prefix: int = 64) -> str:
    """What the rate limit counts: an IPv4 address, or the IPv6 network of ``ipv6_prefix``.

    One IPv6 customer usually holds a whole /64 (often more), so counting single
    IPv6 addresses lets a client rotate through billions of them.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{ipv6_prefix}", strict=False))
    return str(address)


class RateLimiter:
    """At most ``per_minute`` events per key in any sliding ``window`` (0: no limit).

    Kept in memory: each server process counts its own posts, which is enough
    to stop one address hammering the form; run one process per address
    family behind the proxy if a hard global limit matters.
    """

    def __init__(
        self, per_minute: int, max_keys: int = 100_000, window: timedelta = timedelta(minutes=1)
    ) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.window = window
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 when allowed (and counted), else the seconds until it would be."""
        if self.per_minute <= 0:
            return 0
        now = clock.now()
        window = now - self.window
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._prune(window)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= window:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(1, int((hits[0] - window).total_seconds() + 0.999))
            hits.append(now)
            return 0

    def wait(self, key: str) -> int:
        """Like :meth:`retry_after`, but only looks: nothing is counted."""
        if self.per_minute <= 0:
            return 0
        window = clock.now() - self.window
        with self._lock:
            hits = [hit for hit in self._hits.get(key, ()) if hit > window]
            if len(hits) >= self.per_minute:
                return max(1, int((hits[0] - window).total_seconds() + 0.999))
            return 0

    def _prune(self, window: datetime) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # still full of live keys: forget the oldest
            for key in list(self._hits)[: len(self._hits) // 2]:
                del self._hits[key]


def new_form_nonce() -> str:
    return secrets.token_urlsafe(18)


def form_token(tokens: Tokens, nonce: str) -> str:
    """The hidden form field: the cookie's nonce, signed and timestamped."""
    return tokens.csrf(nonce)


def check_form_token(tokens: Tokens, token: str, cookie: str | None) -> bool:
    """True when the posted token is ours, fresh, and matches this browser's cookie."""
    if not token or not cookie:
        return False
    try:
        tokens.read_csrf(token, max_age_seconds=CSRF_MAX_AGE, expected=cookie)
    except TokenError:
        return False
    return True
