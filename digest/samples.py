"""A loopback web site serving sample article pages and feeds.

The demo and the tests curate from real HTTP without the internet: this
serves a folder (``articles/*.html``, ``feeds/*.rss`` …) on 127.0.0.1 at a
port the OS picks. The sample files hold the literal ``PORT`` where their
own address goes; it is replaced on the fly, byte for byte, so a
windows-1251 page stays windows-1251. HTML goes out as ``text/html`` with no
charset parameter, so a reader has to find the charset in the page's
``<meta>``, as it must on many real sites.

``/short/NAME`` answers ``301`` to ``/articles/NAME``, for following
redirects. Extra routes (a slow page, a huge one, a charset header) can be
passed in as :class:`Route` objects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".xml": "application/xml",
    ".json": "application/json",
    ".csv": "text/csv",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
PLACEHOLDER_TYPES = {".html", ".htm", ".rss", ".atom", ".xml"}


def sample_folder() -> Path:
    """The sample pages and feeds that ship inside the package."""
    return Path(str(resources.files("digest").joinpath("data/samples")))


@dataclass(frozen=True)
class Route:
    """A canned reply for one path, beyond the files of the folder.

    ``delay`` holds the reply back (for timeouts); ``content_length=False``
    leaves the length out, so a reader cannot refuse a big body up front.
    ``PORT`` in ``body`` is replaced like in the files.
    """

    body: bytes = b""
    content_type: str = "text/html"
    status: int = 200
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    content_length: bool = True


class SampleSite:
    """``with SampleSite(folder) as site: httpx.get(site.url + "/articles/x.html")``."""

    def __init__(self, folder: Path, routes: Mapping[str, Route] | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.routes = dict(routes or {})
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SampleSite:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="digest-samples",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SampleSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fill(self, data: bytes) -> bytes:
        return data.replace(b"PORT", str(self.port).encode("ascii"))

    def reply_for(self, path: str) -> tuple[Route, str | None]:
        """The route for ``path`` and, for a redirect, its target."""
        if path in self.routes:
            route = self.routes[path]
            return Route(
                body=self.fill(route.body),
                content_type=route.content_type,
                status=route.status,
                delay=route.delay,
                headers=route.headers,
                content_length=route.content_length,
            ), None
        if path.startswith("/short/") and len(path) > len("/short/"):
            return Route(status=301, content_type="text/plain"), "/articles/" + path[7:]
        relative = path.lstrip("/")
        target = (self.folder / relative).resolve()
        if not relative or not target.is_relative_to(self.folder) or not target.is_file():
            return Route(body=b"not found\n", content_type="text/plain", status=404), None
        suffix = target.suffix.lower()
        data = target.read_bytes()
        if suffix in PLACEHOLDER_TYPES:
            data = self.fill(data)
        kind = CONTENT_TYPES.get(suffix, "application/octet-stream")
        return Route(body=data, content_type=kind), None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "digest-samples"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._reply(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._reply(head=True)

            def _reply(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                route, location = site.reply_for(path)
                deadline = time.monotonic() + route.delay
                while time.monotonic() < deadline and not site._stop.is_set():
                    time.sleep(0.01)
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    if location:
                        self.send_header("Location", location)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    if route.content_length:
                        self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to tell

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
