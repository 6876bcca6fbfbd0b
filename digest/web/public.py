"""The public side of the web app: subscribe, confirm, unsubscribe, archive.

Every step that changes a subscriber is a POST and one consent event with
its evidence; a GET only ever shows a page (mail scanners fetch links).
Pages are built from ``public_*.html`` templates in the newsletter's look,
and every absolute link is built from ``[newsletter] base_url``.

Decisions worth knowing:

* The reply to ``POST /subscribe`` is the same page whatever the address's
  state (new, pending, active, unsubscribed, suppressed) and the email goes
  out after the reply, so neither the page nor its timing tells them apart.
* A confirmation email goes to an address at most once per 24 hours: a
  repeated request within that time records nothing and sends nothing.
* Unsubscribing is never rate limited or refused for a valid link: the
  signed token is the proof, and mailbox providers post one-click requests
  from a few shared addresses.
* Resubscribing from the unsubscribe page needs the form (its CSRF token
  and this browser's cookie) with the consent box ticked, and then a fresh
  confirmation email, like a first sign-up: an unsubscribe link can be
  forwarded, so it never puts a reader back by itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
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
from digest.people import changes, record, rights
from digest.send.intake.webhooks.common import MAX_BODY as WEBHOOK_MAX_BODY
from digest.store import Store, open_store, stamp
from digest.tokens import Tokens
from digest.web import webhooks
from digest.web.app import create_app
from digest.web.public_guard import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_MAX_AGE,
    HONEYPOT_FIELD,
    RateLimiter,
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
RESUBSCRIBE_PATH = "resubscribe form, then a confirmation email"
MAX_BODY = 64 * 1024
# path prefix -> bytes, for routes that take more than 64 KiB: providers post event batches
BODY_LIMITS: dict[str, int] = {"/webhooks/": WEBHOOK_MAX_BODY}
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

HEADINGS = {
    400: "That did not work",
    403: "That form has expired",
    404: "Page not found",
    405: "Not allowed",
    408: "That took too long",
    413: "Too much data",
    429: "Too many attempts",
    503: "Please try again later",
    500: "Something went wrong on our side",
}


def _environment(templates_dir: Path) -> jinja2.Environment:
    """Workspace templates first (``public_*.html`` may be overridden), then the built-ins."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir.is_dir():
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(HERE / "templates")))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _urls(ws: Workspace) -> SimpleNamespace:
    base = ws.config.newsletter.base_url.rstrip("/")
    return SimpleNamespace(
        base=base, home=f"{base}/", subscribe=f"{base}/subscribe", archive=f"{base}/archive"
    )


def page(ws: Workspace, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    env = _environment(ws.templates_dir)
    html = env.get_template(name).render(
        newsletter=ws.config.newsletter,
        privacy=ws.config.privacy,
        urls=_urls(ws),
        weekday=ws.config.schedule.weekday.capitalize(),
        **context,
    )
    return HTMLResponse(html, code)


def error_page(request: Request, status: int, detail: str) -> str:
    ws: Workspace = request.app.state.workspace
    heading = HEADINGS.get(status, "That did not work")
    retry_after = (request.scope.get("digest.retry_after") or 0) if status == 429 else 0
    response = page(
        ws,
        "public_error.html",
        status,
        status=status,
        heading=heading,
        detail=detail,
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
        raise HTTPException(413, "The request is larger than any form here sends.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "The request is larger than any form here sends.")
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
        self.confirmations = RateLimiter(
            ws.config.web.confirmations_per_hour, max_keys=1, window=timedelta(hours=1)
        )
        self.secure_cookie = ws.config.newsletter.base_url.startswith("https://")
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
            raise HTTPException(
                429, "You sent this form too often in the last minute.", {"Retry-After": str(wait)}
            )

    def _problem(
        self,
        message: str,
        *,
        restart: bool = False,
        unsubscribe: bool = False,
        heading: str = "This link does not work",
        status: int = 400,
    ) -> HTMLResponse:
        return self.page(
            "public_link_problem.html",
            status,
            heading=heading,
            message=message[:1].upper() + message[1:],
            restart=restart,
            unsubscribe_help=unsubscribe,
        )

    def _cap_confirmations(self) -> None:
        """503 once this hour's confirmation emails are used up (``confirmations_per_hour``)."""
        wait = self.confirmations.retry_after("all")
        if wait:
            log.warning(
                "sign-ups refused: %s confirmation emails this hour", self.confirmations.per_minute
            )
            raise HTTPException(
                503,
                "We are receiving too many sign-ups right now; please try again later.",
                {"Retry-After": str(wait)},
            )

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
        self, request: Request, path: str, render: Callable[[str], HTMLResponse]
    ) -> HTMLResponse:
        """A page holding a CSRF form token, bound to this browser's cookie for ``path``."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        nonce = cookie if _NONCE.fullmatch(cookie) else new_form_nonce()
        response = render(form_token(self.tokens, nonce))
        if nonce != cookie:
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                max_age=CSRF_MAX_AGE,
                path=path,
                secure=self.secure_cookie,
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
    ) -> Response:
        """The "you are unsubscribed" page; with ``token``, its resubscribe form."""
        if token is None:
            return self.page(
                "public_unsubscribed.html", status, errors=errors, resubscribe_action=None
            )
        return self._with_form_token(
            request,
            "/resubscribe",
            lambda form: self.page(
                "public_unsubscribed.html",
                status,
                errors=errors,
                resubscribe_action=f"/resubscribe/{token}",
                form_token=form,
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
        await asyncio.sleep(self.config.web.subscribe_reply_seconds - (time.monotonic() - started))
        return response

    async def _subscribe(self, request: Request) -> Response:
        ip = client_ip(request, self.proxies)
        self._limit(request, ip)
        form = await _form(request)
        email, name = _field(form, "email"), _field(form, "name", 200)
        values = {"email": email, "name": name}
        if not check_form_token(
            self.tokens, _field(form, CSRF_FIELD, 400), request.cookies.get(CSRF_COOKIE)
        ):
            return self._form_page(
                request,
                403,
                ("The form had expired. Please check it and send it again.",),
                values,
            )
        done = self.page("public_check_inbox.html", expiry_days=self.config.web.confirm_expiry_days)
        if _field(form, HONEYPOT_FIELD):
            log.info("a subscribe form was dropped: the hidden field was filled in")
            return done
        errors = []
        try:
            email = normalise(email)
        except SubscriberError:
            errors.append("Please enter a valid email address, like name@example.com.")
        if _field(form, "consent") != "yes":
            errors.append("Please tick the box to say you want to receive the newsletter.")
        if errors:
            return self._form_page(request, 400, tuple(errors), values)
        self._cap_confirmations()
        evidence = _evidence(
            request,
            ip,
            self.ws,
            form={"email": email, "name": name, "consent": True},
            consent_statement=self.config.privacy.consent_statement,
            policy_version=self.config.privacy.policy_version,
            policy_url=self.config.privacy.policy_url,
        )
        pending = await run_in_threadpool(self._request_signup, email, name, evidence)
        # The same queue step for every outcome: a background task that mails or does nothing.
        done.background = BackgroundTask(self._confirm_by_email, pending, email, name)
        return done

    async def _confirm_by_email(
        self, pending: record.Subscriber | None, email: str, name: str
    ) -> None:
        if pending is None:
            return
        url = confirmation.confirm_url(self.ws, self.tokens.confirm(pending.id))
        await confirmation.send_quietly(self.ws, pending.id, email, name, url)

    def _request_signup(
        self, email: str, name: str, evidence: dict[str, Any]
    ) -> record.Subscriber | None:
        """Record the request; the pending subscriber to mail, or None to send nothing.

        Every outcome runs the same reads (suppression, the subscriber, their
        history) and then the sign-up's own transaction, which refuses a
        suppressed address itself: no early return after the first query.
        """
        store = self.store
        with self._signup_lock:
            suppressed = record.is_suppressed(store, email)
            known = record.find_by_email(store, email)
            asked = self._asked_lately(known) if known is not None else False
            if known is not None and known.status == "pending" and asked and not suppressed:
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
            return self._problem(str(exc), restart=True)
        sub = await run_in_threadpool(record.get_subscriber, self.store, subscriber_id)
        if sub is None or sub.status not in ("pending", "active"):
            return self._problem("this confirmation link is no longer valid.", restart=True)
        if sub.status == "active":
            return self.page("public_welcome.html", again=False)
        return self.page("public_confirm.html", action=f"/confirm/{token}")

    async def confirm(self, request: Request) -> Response:
        ip = client_ip(request, self.proxies)
        self._limit(request, ip)
        try:
            subscriber_id = self._read_confirm(request.path_params["token"])
        except TokenError as exc:
            return self._problem(str(exc), restart=True)
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
            return self._problem("this confirmation link is no longer valid.", restart=True)
        return self.page("public_welcome.html", again=False)

    # -- unsubscribe --------------------------------------------------------------

    async def unsubscribe_help(self, request: Request) -> Response:
        return self._problem(
            "the unsubscribe link in each email is personal; this copy of the issue has none.",
            heading="Unsubscribe",
            unsubscribe=True,
            status=200,
        )

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            self.tokens.read_unsubscribe(token)
        except TokenError as exc:
            return self._problem(str(exc), unsubscribe=True)
        return self.page("public_unsubscribe.html", action=f"/unsubscribe/{token}")

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's button."""
        token = request.path_params["token"]
        try:
            subscriber_id = self.tokens.read_unsubscribe(token)
        except TokenError as exc:
            return self._problem(str(exc), unsubscribe=True)
        form = await _form(request)
        one_click = _field(form, "List-Unsubscribe") == "One-Click"
        method = "one_click" if one_click else "link"
        ip = client_ip(request, self.proxies)
        evidence = _evidence(request, ip, self.ws)
        try:
            await run_in_threadpool(
                changes.unsubscribe,
                self.store,
                subscriber_id,
                method=method,
                source=f"{_urls(self.ws).base}/unsubscribe",
                evidence=evidence,
            )
        except SubscriberError:
            pass  # erased or unknown: nothing left to unsubscribe
        return self._unsubscribed_page(request, None if one_click else token)

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
            return self._problem(str(exc), restart=True)
        form = await _form(request)
        if not check_form_token(
            self.tokens, _field(form, CSRF_FIELD, 400), request.cookies.get(CSRF_COOKIE)
        ):
            return self._unsubscribed_page(
                request,
                token,
                403,
                ("The form had expired. Please tick the box and send it again.",),
            )
        if _field(form, "consent") != "yes":
            return self._unsubscribed_page(
                request,
                token,
                400,
                ("Please tick the box to say you want to receive the newsletter again.",),
            )
        self._cap_confirmations()
        evidence = _evidence(
            request,
            ip,
            self.ws,
            form={"consent": True},
            path=RESUBSCRIBE_PATH,
            consent_statement=self.config.privacy.consent_statement,
            policy_version=self.config.privacy.policy_version,
            policy_url=self.config.privacy.policy_url,
        )
        try:
            pending = await run_in_threadpool(self._resubscribe, subscriber_id, evidence)
        except SubscriberError:
            return self._problem(
                "this address cannot be subscribed again from here; "
                "write to us if you want to receive the newsletter.",
            )
        done = self.page("public_check_inbox.html", expiry_days=self.config.web.confirm_expiry_days)
        if pending is not None and pending.email:
            url = confirmation.confirm_url(self.ws, self.tokens.confirm(pending.id))
            done.background = BackgroundTask(
                confirmation.send_quietly,
                self.ws,
                pending.id,
                pending.email,
                pending.name or "",
                url,
            )
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
        listed = [
            SimpleNamespace(
                subject=issue.subject,
                date_label=render.date_label(issue.date),
                url=render.archive_url(self.config, issue.date),
            )
            for issue in issues
        ]
        return self.page("public_archive.html", issues=listed)

    async def archived_issue(self, request: Request) -> Response:
        text = request.path_params["day"]
        if not _DATE.fullmatch(text):
            raise HTTPException(404, "There is no issue at this address.")
        try:
            day = parse_date(text)
        except IssueError:
            raise HTTPException(404, "There is no issue at this address.") from None
        try:
            html = await run_in_threadpool(self._public_html, day)
        except IssueError as exc:  # the file was edited after it went out, and broke
            log.error("archive cannot show %s: %s", day.isoformat(), exc)
            raise HTTPException(
                500, f"The issue of {day.isoformat()} cannot be shown right now; please try later."
            ) from None
        if html is None:
            raise HTTPException(404, f"No issue of {day.isoformat()} has been sent.")
        return HTMLResponse(html, headers={"Cache-Control": "public, max-age=300"})

    def _public_html(self, day: Any) -> str | None:
        path = self.ws.issues_dir / f"{day.isoformat()}.yaml"
        if not path.is_file():
            return None
        issue = load_issue(path)
        if issue.status not in ARCHIVED:
            return None
        return render.prepare(self.ws, issue, tokens=self.tokens).html_public()


def routes(ws: Workspace) -> list[BaseRoute]:
    """The public routes; refuses (ConfigError) without a signing key in the environment."""
    return PublicSite(ws).routes()


def app(ws: Workspace, *, debug: bool = False) -> Starlette:
    """The public app; ConfigError when the signing key is missing from the environment.

    Starlette's slash redirect is off: it would build its Location from the
    request's Host header; :meth:`PublicSite.without_slash` redirects from base_url.
    """
    return create_app(
        ws,
        [*routes(ws), *webhooks.routes(ws)],
        error_page=error_page,
        debug=debug,
        body_limits=BODY_LIMITS,
        redirect_slashes=False,
    )
