"""The editor's preview: the issue as subscribers get it, updated as files change.

``digest preview`` serves these pages on loopback. The page is rebuilt from the
files on every change, never from state kept in the server, so a broken issue
file, template or ``digest.toml`` is simply shown as its error (file and line)
and fixing it brings the preview back.

Live reload is a poll, not a push: the page asks ``/_version`` a few times a
second for a fingerprint of the watched files (their sizes and modification
times, a handful of ``stat`` calls) and fetches itself again when it changes.
A poll needs no open connection, so Ctrl-C stops the server at once, and it
works the same through any proxy or browser.

The email shown is decoded from the very message bytes a subscriber would be
sent (for a sample recipient), so the preview cannot drift from the send.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import ipaddress
import re
import socket
import threading
import traceback
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from digest import check, render
from digest.errors import DigestError, IssueError
from digest.issue import Issue, issue_path, list_issue_paths, load_issue, workspace_issue
from digest.message import MessageBuilder
from digest.web import stats
from digest.web.app import create_app
from digest.workspace import Workspace, open_workspace

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PAGE_TEMPLATES = HERE / "templates"
BUILTIN_TEMPLATES = HERE.parent / "templates"
DEFAULT_PORT = 8025
GMAIL_CLIP_BYTES = 102 * 1024  # as digest.check counts it
NO_STORE = {"cache-control": "no-store"}


# -- what changed ------------------------------------------------------------


def watched_files(root: Path) -> Iterator[Path]:
    """The files a preview depends on: config, issues, workspace and built-in templates,
    and the workspace's own catalogs (locale/)."""
    yield root / "digest.toml"
    yield from list_issue_paths(root / "issues")
    for folder in (root / "templates", BUILTIN_TEMPLATES, root / "locale"):
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file())


def fingerprint(root: Path) -> str:
    """A short hash that changes whenever a watched file is edited, added or removed."""
    digest = hashlib.blake2b(digest_size=8)
    for path in watched_files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\0{st.st_ino}\n".encode())
    return digest.hexdigest()


# -- what the page shows -----------------------------------------------------


@dataclass
class Finding:
    level: str
    code: str
    message: str


@dataclass
class IssueView:
    """Everything the issue page shows, built from one rendered message."""

    issue: Issue
    file: str
    html: str
    text: str
    source: str
    headers: list[tuple[str, str]]
    findings: list[Finding]
    html_size: int
    from_name: str
    from_address: str
    subject: str
    preheader: str

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "info"]

    @property
    def size_ratio(self) -> float:
        return self.html_size / GMAIL_CLIP_BYTES

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


@dataclass
class Broken:
    """A file that cannot be read or rendered: what to show instead of the preview."""

    message: str
    kind: str = "error"
    detail: str = ""


@dataclass
class ListEntry:
    date: str
    status: str = ""
    subject: str = ""
    articles: int = 0
    error: str = ""


def describe_error(exc: BaseException) -> Broken:
    """A user's mistake as its one line; anything else as a bug, with where it happened."""
    if isinstance(exc, DigestError):
        return Broken(str(exc), kind=type(exc).__name__)
    where = ""
    lineno = getattr(exc, "lineno", None)
    filename = getattr(exc, "filename", None) or getattr(exc, "name", None)
    if filename and lineno:
        where = f"{filename}:{lineno}: "
    return Broken(
        f"{where}{type(exc).__name__}: {exc}",
        kind="unexpected",
        detail="".join(traceback.format_exception(exc)[-6:]),
    )


def _decoded(part: EmailMessage) -> str:
    """A text part as a mail app shows it: decoded, with the wire's CRLF line ends undone."""
    content = part.get_content()
    text = content if isinstance(content, str) else content.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _parts(message: EmailMessage) -> tuple[str, str]:
    html = text = ""
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if kind == "text/html" and not html:
            html = _decoded(part)
        elif kind == "text/plain" and not text:
            text = _decoded(part)
    return html, text


_DARK = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.I)
_LIGHT = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.I)


def as_dark(html: str) -> str:
    """The email as a mail app in dark mode shows it: its dark-scheme rules switched on.

    (Browsers do not pass a page's dark mode into an iframe's media queries, so
    the preview turns the queries themselves on and off.)
    """
    return _LIGHT.sub("(max-width: 0px)", _DARK.sub("(min-width: 0px)", html))


def _relative(ws: Workspace, path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return str(path.relative_to(ws.root))
    except ValueError:
        return str(path)


def build_view(ws: Workspace, issue: Issue) -> IssueView:
    """Render ``issue`` for the sample subscriber and check it, as a send would."""

    prepared = render.prepare(ws, issue)
    raw = MessageBuilder.for_workspace(ws, prepared).build(render.sample_recipient())
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = _parts(message)
    findings, html_size = run_check(ws, issue, prepared, html)
    from_name, from_address = parseaddr(str(message.get("From", "")))
    return IssueView(
        issue=issue,
        file=_relative(ws, issue.path),
        html=html,
        text=text,
        source=raw.decode("utf-8", "replace").replace("\r\n", "\n"),
        headers=[(k, str(v)) for k, v in message.items()],
        findings=findings,
        html_size=html_size,
        from_name=from_name or from_address,
        from_address=from_address,
        subject=str(message.get("Subject", "")),
        preheader=issue.preheader,
    )


def run_check(ws: Workspace, issue: Issue, prepared: Any, html: str) -> tuple[list[Finding], int]:
    """`digest check`'s findings for the issue, and the decoded HTML's size as Gmail counts it."""

    result = check.check_prepared(prepared)
    findings = [Finding(f.level, f.code, f.message) for f in result.findings]
    return findings, len(html.encode("utf-8"))


class Previewer:
    """The workspace as it is on disk now; views cached until a watched file changes."""

    def __init__(self, ws: Workspace) -> None:
        self.root = ws.root
        self._lock = threading.Lock()
        self._version = ""
        self._workspace: Workspace | Broken = ws
        self._views: dict[date, IssueView | Broken] = {}

    def version(self) -> str:
        return fingerprint(self.root)

    def _refresh(self) -> str:
        """Forget everything when a file changed; reread the config."""
        version = self.version()
        if version != self._version:
            self._version = version
            self._views.clear()
            try:
                self._workspace = open_workspace(self.root)
            except Exception as exc:  # noqa: BLE001 - shown in the page
                self._workspace = describe_error(exc)
        return version

    def workspace(self) -> tuple[str, Workspace | Broken]:
        with self._lock:
            version = self._refresh()
            return version, self._workspace

    def issues(self) -> tuple[str, Workspace | Broken, list[ListEntry]]:
        version, ws = self.workspace()
        entries = []
        for path in reversed(list_issue_paths(self.root / "issues")):
            try:
                issue = load_issue(path)
            except Exception as exc:  # noqa: BLE001 - shown in the list
                entries.append(ListEntry(date=path.stem, error=describe_error(exc).message))
                continue
            entries.append(
                ListEntry(
                    date=issue.slug,
                    status=issue.status,
                    subject=issue.subject,
                    articles=len(issue.articles),
                )
            )
        return version, ws, entries

    def view(self, day: date) -> tuple[str, IssueView | Broken]:
        """The view of the issue dated ``day``; IssueError 'no such issue' when it is absent."""
        with self._lock:
            version = self._refresh()
            if not issue_path(self.root / "issues", day).exists():
                raise IssueError(
                    f"No issue dated {day} in issues/. "
                    f"Create it with `digest issue new --date {day}`."
                )
            if day not in self._views:
                self._views[day] = self._build(day)
            return version, self._views[day]

    def _build(self, day: date) -> IssueView | Broken:
        if isinstance(self._workspace, Broken):
            return self._workspace
        try:
            issue = load_issue(issue_path(self.root / "issues", day))
            return build_view(self._workspace, issue)
        except Exception as exc:  # noqa: BLE001 - a broken file is shown, not raised
            return describe_error(exc)


# -- pages -------------------------------------------------------------------

_pages = Environment(
    loader=FileSystemLoader(PAGE_TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def _long_date(value: str | date) -> str:
    day = value if isinstance(value, date) else date.fromisoformat(value)
    return f"{day:%A} {day.day} {day:%B %Y}"


def _short_date(value: str | date) -> str:
    day = value if isinstance(value, date) else date.fromisoformat(value)
    return f"{day.day} {day:%b}"


_pages.filters["kb"] = _kb
_pages.filters["long_date"] = _long_date
_pages.filters["short_date"] = _short_date


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _pages.get_template(template).render(gmail_limit=GMAIL_CLIP_BYTES, **context)
    return HTMLResponse(html, status, headers=NO_STORE)


def _day(request: Request) -> date:
    text = request.path_params["day"]
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(404, f"{text!r} is not an issue date (YYYY-MM-DD).") from None


def _newsletter_name(ws: Workspace | Broken) -> str:
    return ws.config.newsletter.name if isinstance(ws, Workspace) else "digest"


class Pages:
    """The preview's views, over one :class:`Previewer`.

    They are plain functions, so Starlette runs them in its thread pool: a
    render of a second or so never stalls the page's polls or static files.
    """

    def __init__(self, previewer: Previewer) -> None:
        self.previewer = previewer

    def _view(self, request: Request) -> tuple[str, IssueView | Broken]:
        try:
            return self.previewer.view(_day(request))
        except IssueError as exc:
            raise HTTPException(404, str(exc)) from None

    def _part(self, request: Request) -> IssueView | Response:
        """The view, or a plain 422 naming the broken file, for the raw routes."""
        _, view = self._view(request)
        if isinstance(view, Broken):
            return PlainTextResponse(view.message, 422, headers=NO_STORE)
        return view

    def issue_list(self, request: Request) -> Response:
        version, ws, entries = self.previewer.issues()
        return page(
            "preview_list.html",
            version=version,
            name=_newsletter_name(ws),
            broken=ws if isinstance(ws, Broken) else None,
            entries=entries,
        )

    def issue_page(self, request: Request) -> Response:
        version, view = self._view(request)
        _, ws = self.previewer.workspace()
        return page(
            "preview_issue.html",
            version=version,
            name=_newsletter_name(ws),
            day=_day(request).isoformat(),
            view=view if isinstance(view, IssueView) else None,
            broken=view if isinstance(view, Broken) else None,
        )

    def email_html(self, request: Request) -> Response:
        view = self._part(request)
        if isinstance(view, Response):
            return view
        html = view.html
        if request.query_params.get("scheme") == "dark":
            html = as_dark(html)
        return HTMLResponse(html, headers=NO_STORE)

    def text_part(self, request: Request) -> Response:
        view = self._part(request)
        if isinstance(view, Response):
            return view
        return PlainTextResponse(view.text, headers=NO_STORE)

    def raw_source(self, request: Request) -> Response:
        view = self._part(request)
        if isinstance(view, Response):
            return view
        return PlainTextResponse(view.source, headers=NO_STORE)

    def headers_json(self, request: Request) -> Response:
        view = self._part(request)
        if isinstance(view, Response):
            return view
        return JSONResponse([[k, v] for k, v in view.headers], headers=NO_STORE)

    def check_json(self, request: Request) -> Response:
        view = self._part(request)
        if isinstance(view, Response):
            return view
        return JSONResponse(
            {
                "html_size": view.html_size,
                "gmail_limit": GMAIL_CLIP_BYTES,
                "errors": len(view.errors),
                "warnings": len(view.warnings),
                "notes": len(view.infos),
                "findings": [f.__dict__ for f in view.findings],
            },
            headers=NO_STORE,
        )

    def version(self, request: Request) -> Response:
        return JSONResponse({"version": self.previewer.version()}, headers=NO_STORE)


def error_page(request: Request, status: int, detail: str) -> str:
    """The preview's own 404 and error pages, in its layout, still live-reloading."""
    ws: Workspace | None = getattr(request.app.state, "workspace", None)
    title = {404: "Not found"}.get(status, "Something went wrong")
    return _pages.get_template("preview_error.html").render(
        status=status,
        title=title,
        detail=detail,
        version="",
        name=ws.config.newsletter.name if ws else "digest",
    )


def _stats_problem(message: str) -> Response:
    """The Stats page cannot be made (the database is unreachable): say why, in the layout."""
    html = _pages.get_template("preview_error.html").render(
        status=503, title="No stats right now", detail=message, version="", name="digest"
    )
    return HTMLResponse(html, 503, headers=NO_STORE)


def routes(ws: Workspace) -> list[BaseRoute]:
    pages = Pages(Previewer(ws))
    return [
        Route("/", pages.issue_list, name="preview_list"),
        Route("/_version", pages.version, name="preview_version"),
        Route("/issue/{day}", pages.issue_page, name="preview_issue"),
        Route("/issue/{day}/email.html", pages.email_html, name="preview_email"),
        Route("/issue/{day}/text.txt", pages.text_part, name="preview_text"),
        Route("/issue/{day}/source.txt", pages.raw_source, name="preview_source"),
        Route("/issue/{day}/headers.json", pages.headers_json, name="preview_headers"),
        Route("/issue/{day}/check.json", pages.check_json, name="preview_check"),
        *stats.routes(ws, _stats_problem),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def app(ws: Workspace, *, debug: bool = False, host: str | None = None) -> Starlette:
    """The preview app: these routes and error page, assembled by :mod:`digest.web.app`."""
    # Only loopback Host headers (DNS rebinding), plus the address chosen with --host.
    also = (host,) if host and not is_loopback(host) else ()
    return create_app(
        ws, routes(ws), error_page=error_page, debug=debug, loopback_only=True, also_hosts=also
    )


# -- serving -----------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket: ``port``, or the default one, or any free one if that is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port is not None else [DEFAULT_PORT, 0]
    last: OSError | None = None
    for candidate in candidates:
        # TCP named, so that asyncio turns Nagle's algorithm off (see public_server.listen)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.listen(64)
        sock.set_inheritable(True)
        return sock
    raise DigestError(
        f"cannot listen on {host}:{port if port is not None else DEFAULT_PORT} "
        f"({last.strerror if last else 'unknown error'}); pick another with --port"
    )


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def start_page(ws: Workspace, day: date | None) -> str:
    """The path to open: the named issue, else the upcoming one, else the list."""
    if day is not None:
        return f"/issue/{day.isoformat()}"

    try:
        return f"/issue/{workspace_issue(ws).slug}"
    except DigestError:
        return "/"


def serve(
    ws: Workspace,
    *,
    day: date | None = None,
    host: str | None = None,
    port: int | None = None,
    open_browser: bool = True,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> None:
    """Serve the preview until Ctrl-C; open the browser once the server listens."""
    import uvicorn  # deferred: only a running server needs it

    if day is not None and not issue_path(ws.issues_dir, day).exists():
        raise IssueError(
            f"{issue_path(ws.issues_dir, day)}: no issue dated {day}; "
            f"create it with `digest issue new --date {day}`"
        )
    address = host or "127.0.0.1"
    if host is not None and not is_loopback(host):
        warn(
            f"warning: serving the preview on {host}, not loopback: anyone who can reach "
            "this address can read your unsent issues"
        )
    sock = bind(address, port)
    url = url_of(sock) + start_page(ws, day)
    config = uvicorn.Config(
        app(ws, host=address), log_level="warning", ws="none", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        # Only once uvicorn listens with its signal handlers in place: a Ctrl-C
        # after this line always stops the server gracefully.
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            echo(f"Previewing {ws.config.newsletter.name} at {url}  (Ctrl-C to stop)")
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn stops gracefully on Ctrl-C, then raises the signal again for us.
        pass
    finally:
        sock.close()
    echo("Preview stopped.")
