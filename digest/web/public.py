"""The public side of the web app: subscribe, confirm, unsubscribe, archive.

Every step that changes a subscriber is a POST and one consent event with
its evidence; a GET only ever shows a page (mail scanners fetch links).
Pages are built from ``public_*.html`` templates in the newsletter's look,
and every absolute link is built from ``[newsletter] base_url``.

Decisions worth knowing:

* The reply to ``POST /subscribe`` is the same page whatever the address's
  state (new, pending, active, unsubscribed, bounced, suppressed), it leaves
  after the same minimum time, and the email is built and sent by a worker
  thread off the event loop (:mod:`digest.web.confirm_mailer`), so neither
  the page, nor its timing, nor the time other requests take tells them apart.
* A confirmation email goes to an address at most once per 24 hours: a
  repeated request within that time records nothing, sends nothing and
  spends none of the hourly cap, which counts the emails sent.
* Unsubscribing is never rate limited or refused for a valid link: the
  signed token is the proof, and mailbox providers post one-click requests
  from a few shared addresses.
* An unsubscribe by link records the issue the link named (``source`` and
  evidence of the ``unsubscribed`` event), for ``digest stats``.
* After an unsubscribe from the page, an optional "why are you leaving?"
  form (``POST /leaving``) stores a reason and a short text with nothing of
  the reader (:mod:`digest.store.reasons`). Its one-time answer token makes
  one answer per page: sending it again replaces the first answer. It has the
  form's guards (CSRF cookie and token, the rate limit, the body limit).
* Resubscribing from the unsubscribe page needs the form (its CSRF token
  and this browser's cookie) with the consent box ticked, and then a fresh
  confirmation email, like a first sign-up: an unsubscribe link can be
  forwarded, so it never puts a reader back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from digest import clock, confirmation, render
from digest.addresses import normalise
from digest.errors import IssueError, SubscriberError, TokenError
from digest.issue import Issue, list_issue_paths, load_issue, parse_date
from digest.languages import language
from digest.people import changes, record, rights
from digest.send.intake.webhooks.common import MAX_BODY as WEBHOOK_MAX_BODY
from digest.store import Store, open_store, reasons, stamp
from digest.store.stats import unsubscribe_source
from digest.tokens import Tokens
from digest.translations import N_, Catalog, install
from digest.web import webhooks
from digest.web.app import create_app
from digest.web.confirm_mailer import ConfirmationMailer, Job
from digest.web.public_guard import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_MAX_AGE,
    HONEYPOT_FIELD,
    RateLimiter,
    came_over_https,
    check_form_token,
    client_ip,
    form_token,
    new_form_nonce,
    parse_proxies,
    rate_key,
)
from digest.workspace import Workspace

log = logging.getLogger("digest.web.public")

HERE = Path(__file__).parent
ARCHIVED = ("sending", "sent")  # a recipient mid-send may already click "View in browser"
RESEND_AFTER = timedelta(hours=24)
CLIENT_SHARE = 10  # one client may cause this fraction (1/N) of the hour's confirmation emails
RESUBSCRIBE_PATH = "resubscribe form, then a confirmation email"
ANSWER_MAX_AGE = 24 * 3600  # seconds to answer "why are you leaving?" after unsubscribing
MAX_BODY = 64 * 1024
# path prefix -> bytes, for routes that take more than 64 KiB: providers post event batches
BODY_LIMITS: dict[str, int] = {"/webhooks/": WEBHOOK_MAX_BODY}
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# What a reader reads, in English: each is translated where it is shown (Catalog).
HEADINGS = {
    400: N_("That did not work"),
    403: N_("That form has expired"),
    404: N_("Page not found"),
    405: N_("Not allowed"),
    408: N_("That took too long"),
    413: N_("Too much data"),
    429: N_("Too many attempts"),
    503: N_("Please try again later"),
    500: N_("Something went wrong on our side"),
}
# An error page's text when the code that failed gave none a reader can read (a guard,
# the router, an unexpected failure): one per status.
DETAILS = {
    400: N_("The request could not be read. Please go back and try again."),
    403: N_("The form has expired. Please go back, reload the page and send it again."),
    404: N_("There is nothing at this address."),
    405: N_("This address does not take that kind of request."),
    408: N_("The request took too long to arrive. Please try again."),
    413: N_("The request is larger than any form here sends."),
    429: N_("You sent this form too often in the last minute."),
    503: N_("We are receiving too many sign-ups right now; please try again later."),
    500: N_("Please try again in a few minutes."),
}
NO_ISSUE_HERE = N_("There is no issue at this address.")
NO_ISSUE_SENT = N_("No issue of %(date)s has been sent.")
ISSUE_BROKEN = N_("The issue of %(date)s cannot be shown right now; please try again later.")
FORM_EXPIRED = N_("The form had expired. Please check it and send it again.")
RESUBSCRIBE_EXPIRED = N_("The form had expired. Please tick the box and send it again.")
BAD_ADDRESS = N_("Please enter a valid email address, like name@example.com.")
NO_CONSENT = N_("Please tick the box to say you want to receive the newsletter.")
NO_CONSENT_AGAIN = N_("Please tick the box to say you want to receive the newsletter again.")
LINK_PROBLEM = N_("This link does not work")
CONFIRM_EXPIRED = N_("This confirmation link has expired.")
CONFIRM_INVALID = N_(
    "This confirmation link is not valid: it was changed or cut short, or it belongs to "
    "another page."
)
CONFIRM_USED = N_("This confirmation link is no longer valid.")
UNSUBSCRIBE_INVALID = N_(
    "This unsubscribe link is not valid: it was changed or cut short, or it belongs to "
    "another page."
)
UNSUBSCRIBE_PERSONAL = N_(
    "The unsubscribe link in each email is personal; this copy of the issue has none."
)
UNSUBSCRIBE_HEADING = N_("Unsubscribe")
RESUBSCRIBE_REFUSED = N_(
    "This address cannot be subscribed again from here; write to us if you want to receive "
    "the newsletter."
)


def _environment(templates_dir: Path, words: Catalog, ws: Workspace) -> jinja2.Environment:
    """Workspace templates first (``public_*.html`` may be overridden), then the built-ins."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir.is_dir():
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(HERE / "templates")))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install(env, words, ws.config.schedule.zone)
    return env


def _urls(ws: Workspace) -> SimpleNamespace:
    base = ws.config.newsletter.base_url.rstrip("/")
    return SimpleNamespace(
        base=base, home=f"{base}/", subscribe=f"{base}/subscribe", archive=f"{base}/archive"
    )


async def _until(deadline: float) -> None:
    """Return at ``deadline`` (``time.monotonic``), to within the threads' wake-up.

    The event loop wakes on a millisecond grid counted from when it went idle, so a
    reply held by ``asyncio.sleep`` alone left a little later or sooner by how long
    the work before took, modulo a millisecond: enough, over many posts, to tell a
    suppressed address from a subscribed one. The last milliseconds are slept in a
    thread, whose wake-up does not depend on it.
    """
    rough = deadline - time.monotonic() - 0.005
    if rough > 0:
        await asyncio.sleep(rough)
    await run_in_threadpool(_sleep_until, deadline)


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def page(ws: Workspace, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    """A public page in the newsletter's language (``lang`` and ``dir`` on its <html>)."""
    config = ws.config
    words = config.words
    env = _environment(ws.templates_dir, words, ws)
    html = env.get_template(name).render(
        newsletter=config.newsletter,
        language=language(words.spoken),  # digest's words: the page is in their language
        privacy=SimpleNamespace(
            policy_url=config.privacy.policy_url,
            policy_version=config.privacy.policy_version,
            consent_statement=config.consent_statement,
        ),
        urls=_urls(ws),
        weekday=config.schedule.weekday.capitalize(),  # in English, for older overrides
        when=words.every(config.schedule.weekday_index),
        **context,
    )
    return HTMLResponse(html, code)


def fail(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTTPException:
    """An HTTPException whose page says ``message`` (a marked message) in the reader's words."""
    request.scope["digest.detail"] = (message, values)
    return HTTPException(status, message % values if values else message, headers)


def error_page(request: Request, status: int, detail: str) -> str:
    """The error page, in the newsletter's language.

    It says what :func:`fail` asked for; an error raised elsewhere (a guard,
    the router, a crash) gets its status's own text, since its detail is
    written for logs and API clients.
    """
    ws: Workspace = request.app.state.workspace
    words = ws.config.words
    heading = words(HEADINGS.get(status, HEADINGS[400]))
    message, values = request.scope.get("digest.detail") or (
        DETAILS.get(status, DETAILS[400]),
        {},
    )
    retry_after = (request.scope.get("digest.retry_after") or 0) if status == 429 else 0
    response = page(
        ws,
        "public_error.html",
        status,
        status=status,
        heading=heading,
        detail=words(message, **values),
        retry_after=retry_after,
    )
    return bytes(response.body).decode("utf-8")


def _evidence(request: Request, ip: str, ws: Workspace, **extra: Any) -> dict[str, Any]:
    return {
        "time": stamp(clock.now()),
        "ip": ip,
        "user_agent": request.headers.get("user-agent", "")[:512],
        "url": f"{_urls(ws).base}{request.url.path}",
        **extra,
    }


async def _form(request: Request) -> FormData:
    """The posted fields, from a form (urlencoded or multipart) or a bare urlencoded body."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise fail(request, 413, DETAILS[413])
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise fail(request, 413, DETAILS[413])
    pairs = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return FormData([(key, value) for key, values in pairs.items() for value in values])


def _field(form: FormData, name: str, limit: int = 320) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


class PublicSite:
    """The public pages of one workspace, with their tokens, store and rate limiter."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.config = ws.config
        self.tokens = Tokens(ws.signing_key(env_only=True), previous=ws.previous_secrets())
        self.proxies = parse_proxies(ws.config.web.trusted_proxies)
        self.limiter = RateLimiter(ws.config.web.rate_limit_per_minute)
        # A backstop whatever the addresses: the form must never become a mailer.
        cap = ws.config.web.confirmations_per_hour
        self.confirmations = RateLimiter(cap, max_keys=1, window=timedelta(hours=1))
        # And no one client spends it alone (closing the form to everyone for the hour).
        share = max(1, cap // CLIENT_SHARE) if cap > 0 else 0
        self.client_confirmations = RateLimiter(share, window=timedelta(hours=1))
        self.mailer = ConfirmationMailer(
            ws,
            self.confirmations,
            lambda sid: confirmation.confirm_url(ws, self.tokens.confirm(sid)),
        )
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._signup_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    @property
    def store(self) -> Store:
        """Opened (and migrated) on first use, so /healthz needs no database."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = open_store(self.ws)
        return self._store

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Under a server: inline the confirmation email before the first request (so no
        sign-up pays for it), and send what is waiting before stopping."""
        await run_in_threadpool(self.mailer.template.prepare)
        try:
            yield
        finally:
            await run_in_threadpool(self.mailer.close)
            if self._store is not None:
                self._store.close()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/static/public.css", self.stylesheet, methods=["GET"]),
            Route("/subscribe", self.subscribe_form, methods=["GET"]),
            Route("/subscribe", self.subscribe, methods=["POST"]),
            Route("/confirm/{token}", self.confirm_page, methods=["GET"]),
            Route("/confirm/{token}", self.confirm, methods=["POST"]),
            Route("/unsubscribe", self.unsubscribe_help, methods=["GET"]),
            Route("/unsubscribe/{token}", self.unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe/{token}", self.unsubscribe, methods=["POST"]),
            Route("/resubscribe/{token}", self.resubscribe, methods=["POST"]),
            Route("/leaving", self.leaving, methods=["POST"]),
            Route("/archive", self.archive, methods=["GET"]),
            Route("/archive/{day}", self.archived_issue, methods=["GET"]),
            Route("/{path:path}/", self.without_slash, methods=["GET", "HEAD"]),
        ]

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return page(self.ws, name, status, **context)

    def _limit(self, request: Request, ip: str) -> None:
        wait = self.limiter.retry_after(rate_key(ip, self.config.web.ipv6_prefix))
        if wait:
            request.scope["digest.retry_after"] = wait
            raise fail(request, 429, DETAILS[429], {"Retry-After": str(wait)})

    def _problem(
        self,
        message: str,
        *,
        restart: bool = False,
        unsubscribe: bool = False,
        heading: str = LINK_PROBLEM,
        status: int = 400,
    ) -> HTMLResponse:
        """A page about a link that does not work: ``message`` and ``heading`` are marked
        messages, shown in the reader's words."""
        words = self.config.words
        return self.page(
            "public_link_problem.html",
            status,
            heading=words(heading),
            message=words(message),
            restart=restart,
            unsubscribe_help=unsubscribe,
        )

    def _token_problem(self, exc: TokenError, *, confirm: bool, restart: bool) -> HTMLResponse:
        if confirm:
            message = CONFIRM_EXPIRED if exc.expired else CONFIRM_INVALID
        else:
            message = UNSUBSCRIBE_INVALID
        return self._problem(message, restart=restart, unsubscribe=not confirm and not restart)

    def _limit_confirmations(self, request: Request, client: str) -> None:
        """429 for a client whose sign-ups had their share of this hour's confirmation
        emails sent (``confirmations_per_hour`` / CLIENT_SHARE); posts that mail nothing
        (an address asked for lately) spend none of it."""
        wait = self.client_confirmations.wait(client)
        if wait:
            request.scope["digest.retry_after"] = wait
            raise fail(request, 429, DETAILS[429], {"Retry-After": str(wait)})

    def _cap_confirmations(self, request: Request) -> None:
        """503 for everyone once this hour's confirmation emails went out
        (``confirmations_per_hour``); the worker counts them as it sends."""
        wait = self.confirmations.wait("all")
        if wait:
            log.warning(
                "sign-ups refused: %s confirmation emails this hour", self.confirmations.per_minute
            )
            raise fail(request, 503, DETAILS[503], {"Retry-After": str(wait)})

    # -- pages ------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse(_urls(self.ws).subscribe, 303)

    async def without_slash(self, request: Request) -> Response:
        """``/archive/D/`` -> ``/archive/D`` on base_url (never the request's Host)."""
        return RedirectResponse(f"{_urls(self.ws).base}/{request.path_params['path']}", 308)

    async def stylesheet(self, request: Request) -> Response:
        return FileResponse(
            HERE / "static" / "public.css",
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    def _with_form_token(
        self, request: Request, path: str | Sequence[str], render: Callable[[str], HTMLResponse]
    ) -> HTMLResponse:
        """A page holding a CSRF form token, bound to this browser's cookie for ``path``
        (or each of several paths: one page, two forms)."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        nonce = cookie if _NONCE.fullmatch(cookie) else new_form_nonce()
        response = render(form_token(self.tokens, nonce))
        if nonce != cookie:
            for each in (path,) if isinstance(path, str) else path:
                response.set_cookie(
                    CSRF_COOKIE,
                    nonce,
                    max_age=CSRF_MAX_AGE,
                    path=each,
                    # Secure only over https: a form on http://127.0.0.1 (a local trial) works
                    secure=came_over_https(request, self.proxies),
                    httponly=True,
                    samesite="lax",
                )
        response.headers["Cache-Control"] = "no-store"
        return response

    def _form_page(
        self,
        request: Request,
        status: int = 200,
        errors: tuple[str, ...] = (),
        values: dict[str, str] | None = None,
    ) -> Response:
        return self._with_form_token(
            request,
            "/subscribe",
            lambda token: self.page(
                "public_subscribe.html",
                status,
                errors=errors,
                values=values or {"email": "", "name": ""},
                form_token=token,
            ),
        )

    def _unsubscribed_page(
        self,
        request: Request,
        token: str | None,
        status: int = 200,
        errors: tuple[str, ...] = (),
        leaving: SimpleNamespace | None = None,
    ) -> Response:
        """The "you are unsubscribed" page; with ``token``, its resubscribe form; with
        ``leaving`` (see public_leaving.html), the "why are you leaving?" form or its reply."""
        paths = ["/resubscribe"] if token is not None else []
        if leaving is not None and leaving.state == "ask":
            paths.append("/leaving")
        if not paths:
            return self.page(
                "public_unsubscribed.html",
                status,
                errors=errors,
                resubscribe_action=None,
                leaving=leaving,
            )
        return self._with_form_token(
            request,
            paths,
            lambda form: self.page(
                "public_unsubscribed.html",
                status,
                errors=errors,
                resubscribe_action=f"/resubscribe/{token}" if token is not None else None,
                form_token=form,
                leaving=leaving,
            ),
        )

    async def subscribe_form(self, request: Request) -> Response:
        return self._form_page(request)

    async def subscribe(self, request: Request) -> Response:
        """The form's POST; whatever happened, the reply leaves after the same minimum time.

        Suppressed, active, pending and new addresses do different amounts of
        work; holding every reply until ``[web] subscribe_reply_seconds`` after
        the request came in hides that difference from a stopwatch.
        """
        started = time.monotonic()
        response = await self._subscribe(request)
        await _until(started + self.config.web.subscribe_reply_seconds)
        return response

    async def _subscribe(self, request: Request) -> Response:
        ip = client_ip(request, self.proxies)
        self._limit(request, ip)
        client = rate_key(ip, self.config.web.ipv6_prefix)
        self._limit_confirmations(request, client)
        form = await _form(request)
        email, name = _field(form, "email"), _field(form, "name", 200)
        values = {"email": email, "name": name}
        if not check_form_token(
            self.tokens, _field(form, CSRF_FIELD, 400), request.cookies.get(CSRF_COOKIE)
        ):
            return self._form_page(request, 403, (self.config.words(FORM_EXPIRED),), values)
        done = self.page("public_check_inbox.html", expiry_days=self.config.web.confirm_expiry_days)
        if _field(form, HONEYPOT_FIELD):
            log.info("a subscribe form was dropped: the hidden field was filled in")
            return done
        errors = []
        words = self.config.words
        try:
            email = normalise(email)
        except SubscriberError:
            errors.append(words(BAD_ADDRESS))
        if _field(form, "consent") != "yes":
            errors.append(words(NO_CONSENT))
        if errors:
            return self._form_page(request, 400, tuple(errors), values)
        self._cap_confirmations(request)
        evidence = _evidence(
            request,
            ip,
            self.ws,
            form={"email": email, "name": name, "consent": True},
            language=self.config.newsletter.language,
            consent_statement=self.config.consent_statement,
            policy_version=self.config.privacy.policy_version,
            policy_url=self.config.privacy.policy_url,
        )
        pending = await run_in_threadpool(self._request_signup, email, name, evidence)
        if pending is not None:  # an email to send: this client's share of the hour's
            self.client_confirmations.retry_after(client)
        # The same step for every outcome: the worker mails, or does nothing.
        self.mailer.submit(Job(pending.id, email, name) if pending is not None else None)
        return done

    def _request_signup(
        self, email: str, name: str, evidence: dict[str, Any]
    ) -> record.Subscriber | None:
        """Record the request; the pending subscriber to mail, or None to send nothing.

        An address asked for within the day (pending, mailed lately) costs one
        read and nothing more: no event, no email, none of the hourly cap.
        Otherwise the sign-up's own transaction decides, and refuses an
        address suppressed for good itself.
        """
        store = self.store
        with self._signup_lock:
            known = record.find_by_email(store, email)
            asked = self._asked_lately(known) if known is not None else False
            if known is not None and known.status == "pending" and asked:
                return None
            try:
                sub = changes.request_signup(
                    store,
                    email,
                    name or None,
                    method="web_form",
                    source=_urls(self.ws).subscribe,
                    evidence=evidence,
                )
            except SubscriberError as exc:
                log.info("sign-up not recorded: %s", exc)
                return None
        return sub if sub.status == "pending" else None

    def _asked_lately(self, sub: record.Subscriber) -> bool:
        since = stamp(clock.now() - RESEND_AFTER)
        return any(
            event.kind in ("signup_requested", "resubscribed") and event.occurred_at > since
            for event in rights.history(self.store, sub)
        )

    # -- confirm ----------------------------------------------------------------

    def _read_confirm(self, token: str) -> str:
        return self.tokens.read_confirm(token, self.config.web.confirm_expiry_days * 86400)

    async def confirm_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            subscriber_id = self._read_confirm(token)
        except TokenError as exc:
            return self._token_problem(exc, confirm=True, restart=True)
        sub = await run_in_threadpool(record.get_subscriber, self.store, subscriber_id)
        if sub is None or sub.status not in ("pending", "active"):
            return self._problem(CONFIRM_USED, restart=True)
        if sub.status == "active":
            return self.page("public_welcome.html", again=False)
        return self.page("public_confirm.html", action=f"/confirm/{token}")

    async def confirm(self, request: Request) -> Response:
        ip = client_ip(request, self.proxies)
        self._limit(request, ip)
        try:
            subscriber_id = self._read_confirm(request.path_params["token"])
        except TokenError as exc:
            return self._token_problem(exc, confirm=True, restart=True)
        evidence = _evidence(request, ip, self.ws)
        try:
            await run_in_threadpool(
                changes.confirm,
                self.store,
                subscriber_id,
                method="link",
                source=f"{_urls(self.ws).base}/confirm",
                evidence=evidence,
            )
        except SubscriberError:
            return self._problem(CONFIRM_USED, restart=True)
        return self.page("public_welcome.html", again=False)

    # -- unsubscribe --------------------------------------------------------------

    async def unsubscribe_help(self, request: Request) -> Response:
        return self._problem(
            UNSUBSCRIBE_PERSONAL, heading=UNSUBSCRIBE_HEADING, unsubscribe=True, status=200
        )

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            self.tokens.read_unsubscribe(token)
        except TokenError as exc:
            return self._token_problem(exc, confirm=False, restart=False)
        return self.page("public_unsubscribe.html", action=f"/unsubscribe/{token}")

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's button.

        The event records the issue the link named. After the page's button (a
        person, not a mail provider's one-click POST), the reply asks, optionally,
        why, when this request is what unsubscribed them.
        """
        token = request.path_params["token"]
        try:
            subscriber_id, issue = self.tokens.read_unsubscribe_link(token)
        except TokenError as exc:
            return self._token_problem(exc, confirm=False, restart=False)
        form = await _form(request)
        one_click = _field(form, "List-Unsubscribe") == "One-Click"
        method = "one_click" if one_click else "link"
        ip = client_ip(request, self.proxies)
        evidence = _evidence(request, ip, self.ws, **({"issue": issue} if issue else {}))
        try:
            left = await run_in_threadpool(
                self._unsubscribe, subscriber_id, method, issue, evidence
            )
        except SubscriberError:
            left = False  # erased or unknown: nothing left to unsubscribe
        if one_click:
            return self._unsubscribed_page(request, None)
        ask = None
        if left:
            answer = self.tokens.answer(new_form_nonce(), issue)
            ask = self._leaving("ask", answer_token=answer)
        return self._unsubscribed_page(request, token, leaving=ask)

    def _unsubscribe(
        self, subscriber_id: str, method: str, issue: str, evidence: dict[str, Any]
    ) -> bool:
        """Unsubscribe; True when this call is what took the reader off the list."""
        before = record.get_subscriber(self.store, subscriber_id)
        after = changes.unsubscribe(
            self.store,
            subscriber_id,
            method=method,
            source=unsubscribe_source(f"{_urls(self.ws).base}/unsubscribe", issue),
            evidence=evidence,
        )
        return (
            before is not None
            and before.status in ("pending", "active")
            and after.status == "unsubscribed"
        )

    # -- why are you leaving? ---------------------------------------------------------

    def _record_answer(self, nonce: str, given: reasons.Answer) -> None:
        with self.store.begin() as conn:
            reasons.record(conn, nonce, given)

    def _leaving(
        self,
        state: str,
        *,
        answer_token: str = "",
        error: str = "",
        values: dict[str, str] | None = None,
    ) -> SimpleNamespace:
        return SimpleNamespace(
            state=state,
            answer_token=answer_token,
            error=error,
            values=values or {"reason": "", "text": ""},
            max_text=reasons.MAX_TEXT,
        )

    async def leaving(self, request: Request) -> Response:
        """The optional answer to "why are you leaving?": stored with nothing of the reader.

        Never required, and it changes nothing about the unsubscribe: a bad or
        expired form is said so, an empty one stores nothing. The answer token
        (from the page, signed, one day) names the page: the same page sending
        again replaces its answer.
        """
        ip = client_ip(request, self.proxies)
        self._limit(request, ip)
        form = await _form(request)
        answer_token = _field(form, "answer_token", 400)
        try:
            nonce, issue = self.tokens.read_answer(answer_token, ANSWER_MAX_AGE)
        except TokenError:
            return self._unsubscribed_page(request, None, 403, leaving=self._leaving("expired"))
        raw = form.get("text")
        text = raw.replace("\r\n", "\n") if isinstance(raw, str) else ""
        values = {"reason": _field(form, "reason", 40), "text": text[: 4 * reasons.MAX_TEXT]}
        if not check_form_token(
            self.tokens, _field(form, CSRF_FIELD, 400), request.cookies.get(CSRF_COOKIE)
        ):
            ask = self._leaving("ask", answer_token=answer_token, error="expired", values=values)
            return self._unsubscribed_page(request, None, 403, leaving=ask)
        if len(text.strip()) > reasons.MAX_TEXT:
            ask = self._leaving("ask", answer_token=answer_token, error="too_long", values=values)
            return self._unsubscribed_page(request, None, 400, leaving=ask)
        given = reasons.answer(issue, values["reason"], text)
        if given.empty:
            return self._unsubscribed_page(request, None)
        await run_in_threadpool(self._record_answer, nonce, given)
        return self._unsubscribed_page(request, None, leaving=self._leaving("thanks"))

    async def resubscribe(self, request: Request) -> Response:
        """A fresh consent from the unsubscribe page: pending again, and a new confirmation.

        The token in the path comes from an email that may have been forwarded,
        so it proves nothing about who posts: the form needs its CSRF token
        (this browser's cookie) and the reader is back only after confirming
        from their mailbox, as on first sign-up.
        """
        ip = client_ip(request, self.proxies)
        self._limit(request, ip)
        token = request.path_params["token"]
        try:
            subscriber_id = self.tokens.read_unsubscribe(token)
        except TokenError as exc:
            return self._token_problem(exc, confirm=False, restart=True)
        form = await _form(request)
        words = self.config.words
        if not check_form_token(
            self.tokens, _field(form, CSRF_FIELD, 400), request.cookies.get(CSRF_COOKIE)
        ):
            return self._unsubscribed_page(request, token, 403, (words(RESUBSCRIBE_EXPIRED),))
        if _field(form, "consent") != "yes":
            return self._unsubscribed_page(request, token, 400, (words(NO_CONSENT_AGAIN),))
        self._cap_confirmations(request)
        evidence = _evidence(
            request,
            ip,
            self.ws,
            form={"consent": True},
            path=RESUBSCRIBE_PATH,
            language=self.config.newsletter.language,
            consent_statement=self.config.consent_statement,
            policy_version=self.config.privacy.policy_version,
            policy_url=self.config.privacy.policy_url,
        )
        try:
            pending = await run_in_threadpool(self._resubscribe, subscriber_id, evidence)
        except SubscriberError:
            return self._problem(RESUBSCRIBE_REFUSED)
        done = self.page("public_check_inbox.html", expiry_days=self.config.web.confirm_expiry_days)
        job = None
        if pending is not None and pending.email:
            job = Job(pending.id, pending.email, pending.name or "")
        self.mailer.submit(job)
        return done

    def _resubscribe(
        self, subscriber_id: str, evidence: dict[str, Any]
    ) -> record.Subscriber | None:
        """Back to pending; the subscriber to send a confirmation to, or None."""
        store = self.store
        with self._signup_lock:
            before = record.get_subscriber(store, subscriber_id)
            if before is None:
                raise SubscriberError(f"no subscriber {subscriber_id}")
            if before.status == "pending" and self._asked_lately(before):
                return None
            sub = changes.resubscribe(
                store,
                subscriber_id,
                method="web_form",
                source=f"{_urls(self.ws).base}/resubscribe",
                evidence=evidence,
            )
        return sub if sub.status == "pending" else None

    # -- archive ------------------------------------------------------------------

    def _sent_issues(self) -> list[Issue]:
        found = []
        for path in list_issue_paths(self.ws.issues_dir):
            try:
                issue = load_issue(path)
            except IssueError as exc:
                log.warning("archive skips %s", exc)
                continue
            if issue.status in ARCHIVED:
                found.append(issue)
        return sorted(found, key=lambda i: i.date, reverse=True)

    async def archive(self, request: Request) -> Response:
        issues = await run_in_threadpool(self._sent_issues)
        words = self.config.words
        listed = [
            SimpleNamespace(
                subject=issue.subject,
                date=issue.date,
                date_label=words.format_date(issue.date),
                articles=len(issue.articles),
                url=render.archive_url(self.config, issue.date),
            )
            for issue in issues
        ]
        return self.page("public_archive.html", issues=listed)

    async def archived_issue(self, request: Request) -> Response:
        text = request.path_params["day"]
        if not _DATE.fullmatch(text):
            raise fail(request, 404, NO_ISSUE_HERE)
        try:
            day = parse_date(text)
        except IssueError:
            raise fail(request, 404, NO_ISSUE_HERE) from None
        shown = self.config.words.format_date(day, "long")
        try:
            html = await run_in_threadpool(self._public_html, day)
        except IssueError as exc:  # the file was edited after it went out, and broke
            log.error("archive cannot show %s: %s", day.isoformat(), exc)
            raise fail(request, 500, ISSUE_BROKEN, date=shown) from None
        if html is None:
            raise fail(request, 404, NO_ISSUE_SENT, date=shown)
        return HTMLResponse(html, headers={"Cache-Control": "public, max-age=300"})

    def _public_html(self, day: Any) -> str | None:
        path = self.ws.issues_dir / f"{day.isoformat()}.yaml"
        if not path.is_file():
            return None
        issue = load_issue(path)
        if issue.status not in ARCHIVED:
            return None
        return render.prepare(self.ws, issue, tokens=self.tokens).html_public()


def app(ws: Workspace, *, debug: bool = False) -> Starlette:
    """The public app; ConfigError when the signing key is missing from the environment.

    Starlette's slash redirect is off: it would build its Location from the
    request's Host header; :meth:`PublicSite.without_slash` redirects from base_url.
    """
    site = PublicSite(ws)
    return create_app(
        ws,
        [*site.routes(), *webhooks.routes(ws)],
        error_page=error_page,
        debug=debug,
        body_limits=BODY_LIMITS,
        redirect_slashes=False,
        lifespan=site.lifespan,
    )
