"""A loopback web site serving tests/fixtures (articles, feeds) plus awkward pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.samples import Route, SampleSite

FIXTURES = Path(__file__).parent / "fixtures"

CP1251_NO_META = (
    "<html><head><title>Газ и нефть</title></head><body><p>Текст.</p></body></html>"
).encode("cp1251")

EXTRA_ROUTES = {
    # Holds its reply back far longer than any test waits.
    "/slow.html": Route(body=b"<title>Slow</title>", delay=30.0),
    # Bigger than a small cap, and no Content-Length to refuse it by up front.
    "/endless.html": Route(body=b"<title>Big</title>" + b"<p>x</p>" * 20_000, content_length=False),
    # Bigger than the default 5 MB cap, declared.
    "/huge.html": Route(body=b"<title>Huge</title>" + b" " * 5_100_000),
    # The charset is only in the header.
    "/header-charset.html": Route(
        body=CP1251_NO_META, content_type="text/html; charset=windows-1251"
    ),
    "/broken.rss": Route(body=b"<html><p>Not a feed</p></html>", content_type="text/html"),
    "/gone.rss": Route(body=b"gone", content_type="text/plain", status=410),
    # Pages that are not articles: a server's directory listing, and a bare page.
    "/files/": Route(
        body=b"<html><head><title>Index of /files</title></head><body><h1>Index of /files</h1>"
        b'<a href="report.pdf">report.pdf</a></body></html>'
    ),
    "/bare.html": Route(body=b"<html><head><title>Home</title></head><body>Hi</body></html>"),
    # A feed whose item links through a short link that redirects to the article.
    "/short.rss": Route(
        body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>Short</title>'
        b"<link>http://127.0.0.1:PORT/</link><description>d</description><item>"
        b"<title>Tula</title><link>http://127.0.0.1:PORT/short/tula-plant.html</link>"
        b"</item></channel></rss>",
        content_type="application/rss+xml",
    ),
}


@pytest.fixture
def sample_site() -> Iterator[SampleSite]:
    """tests/fixtures served on 127.0.0.1 with PORT filled in, plus EXTRA_ROUTES."""
    with SampleSite(FIXTURES, routes=EXTRA_ROUTES) as served:
        yield served


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
