"""The double opt-in email: "confirm your subscription", sent through the configured sender.

It is built from two small templates (``confirm_email.html`` and
``confirm_email.txt``; a workspace may override either) into the
:class:`~digest.message.MessageParts` every message of digest is, and handed to the
same :class:`~digest.send.sender.Sender` a send uses, so an outbox workspace
writes it to ``outbox/confirmations/`` and an SMTP or API workspace mails it.
It is DKIM-signed as an issue is, when ``[dkim]`` is set.

:func:`build` renders and inlines the whole message for one address: the
reference. :class:`Template` inlines the CSS once per process and fills in
each sign-up's address, name and link (checked against :func:`build` first),
so a sign-up costs no premailer run: the public form mails from a worker
whose cost other requests must not feel.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from email.utils import make_msgid
from typing import Any

from digest import render
from digest.addresses import clean_name, mask
from digest.errors import SendError, TemplateError
from digest.languages import language
from digest.message import MessageParts, dkim_signer, encode_address, message_id, parts_to_mime
from digest.send.configured import open_sender as configured_sender
from digest.send.sender import OutgoingMessage, Result, Sender
from digest.translations import N_
from digest.workspace import Workspace

log = logging.getLogger("digest.confirmation")

OUTBOX_FOLDER = "confirmations"
SUBJECT = N_("Confirm your subscription to %(name)s")
HTML_TEMPLATE = "confirm_email.html"
TEXT_TEMPLATE = "confirm_email.txt"
# A made-up sign-up whose every value needs escaping, to prove the fast fill right.
_PROBE = ("o'brien+news@example.com", 'Zoë & "Q" <Ünï> 😀', "https://x.example/c/a&b=<1>?q='2'")


def confirm_url(ws: Workspace, token: str) -> str:
    return render.confirm_url(ws.config, token)


def _subject(ws: Workspace) -> str:
    return ws.config.words(SUBJECT, name=ws.config.newsletter.name)


def _context(ws: Workspace, email: str, name: str, url: str) -> dict[str, Any]:
    config = ws.config
    return {
        "newsletter": render.newsletter_context(config, config.words),
        "language": language(config.words.spoken),
        "subject": _subject(ws),
        "email": email,
        "name": name,
        "confirm_url": url,
        "expiry_days": config.web.confirm_expiry_days,
        "statement": config.consent_statement,
        "policy_url": config.privacy.policy_url,
    }


def _render(ws: Workspace, name: str, context: dict[str, Any]) -> str:
    """A template in the newsletter's language; workspace overrides first, then the built-ins."""
    config = ws.config
    return render.render_template(
        ws.templates_dir, name, context, config.words, config.schedule.zone
    )


def _parts(
    ws: Workspace, email: str, name: str, html: str, text: str, subscriber_id: str
) -> MessageParts:
    """With the reader's ``subscriber_id``, the Message-ID is the keyed one digest gives
    every message (``<confirm.ID.MAC@domain>``), so a bounce of it names the reader."""
    config = ws.config
    return MessageParts(
        subject=_subject(ws),
        from_=config.newsletter.from_,
        to=_to(name, email),
        reply_to=config.newsletter.reply_to,
        html=html,
        text=text,
        message_id=(
            message_id(config, ws.tokens(), "confirm", subscriber_id)
            if subscriber_id
            else make_msgid("confirm", domain=config.newsletter.domain)
        ),
        headers={"Auto-Submitted": "auto-generated"},
    )


def build(ws: Workspace, email: str, name: str, url: str, subscriber_id: str = "") -> MessageParts:
    """The confirmation message for one address; ``url`` is its confirm link.

    The name is cleaned by the one rule of digest (a form may send CR, LF or
    NUL in it); the To field holds RFC 2047 words for a non-ASCII name. The
    whole message is rendered and inlined (one premailer run): the reference
    that :class:`Template` fills in faster.
    """
    name = clean_name(name)
    context = _context(ws, email, name, url)
    # The shell and style, inlined like an issue.
    html = render.inline_css(_render(ws, HTML_TEMPLATE, context))
    text = _render(ws, TEXT_TEMPLATE, context)
    return _parts(ws, email, name, html, text, subscriber_id)


class Template:
    """The confirmation email inlined once, filled in for each sign-up.

    The HTML template is rendered with a placeholder for the address, the name
    and the link, inlined once (with a name and without), and cut at the
    placeholders, as an issue is (:mod:`digest.render`); the text part, which
    no premailer run touches, is rendered for each sign-up. The first use checks
    the fill against :func:`build` for a made-up sign-up whose values all need
    escaping; a template that changes a value (a filter on ``name``) gets
    :func:`build` for every message instead, and a warning in the log.
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._skeletons: dict[bool, render.Skeleton] | None = None
        self.fast = True

    def prepare(self) -> None:
        """Inline and check now (else on the first :meth:`parts`); about 4 premailer runs."""
        with self._lock:
            if self._skeletons is not None:
                return
            skeletons = {has_name: self._cut(has_name) for has_name in (True, False)}
            self._skeletons = skeletons
            for has_name in (True, False):
                email, name, url = _PROBE
                name = name if has_name else ""
                whole = build(self.ws, email, name, url)
                if self._fill(email, name, url) != (whole.html, whole.text):
                    self.fast = False
                    log.warning(
                        "%s changes a value it prints (a filter on name, email or "
                        "confirm_url?): each confirmation email is rendered whole",
                        HTML_TEMPLATE,
                    )
                    return

    def _cut(self, has_name: bool) -> render.Skeleton:
        marks = render.PLACEHOLDERS
        context = _context(
            self.ws, marks["email"], marks["name"] if has_name else "", marks["confirm_url"]
        )
        source = _render(self.ws, HTML_TEMPLATE, context)
        inlined = render.inline_css(source)
        if any(source.count(mark) != inlined.count(mark) for mark in marks.values()):
            raise TemplateError(
                f"{HTML_TEMPLATE}: inlining the CSS changed or dropped a value "
                "(name, email, confirm_url); put them in text or attribute values"
            )
        return render.cut_html(inlined)

    def _fill(self, email: str, name: str, url: str) -> tuple[str, str]:
        """The HTML filled in; the text part rendered whole (Jinja alone is cheap, and
        its paragraphs are wrapped around the values, so no placeholder can stand in)."""
        assert self._skeletons is not None
        html = self._skeletons[bool(name)]
        values = {"email": email, "name": name, "confirm_url": url}
        text = _render(self.ws, TEXT_TEMPLATE, _context(self.ws, email, name, url))
        return html.fill(render.escaped_values(values, html.keys)), text

    def parts(self, email: str, name: str, url: str, subscriber_id: str = "") -> MessageParts:
        """The confirmation message for one address, as :func:`build` makes it."""
        self.prepare()
        if not self.fast:
            return build(self.ws, email, name, url, subscriber_id)
        name = clean_name(name)
        html, text = self._fill(email, name, url)
        return _parts(self.ws, email, name, html, text, subscriber_id)


def _to(name: str, address: str) -> str:
    return encode_address(name, address).replace("\r\n", "")


def outgoing(
    subscriber_id: str,
    email: str,
    parts: MessageParts,
    name: str = "",
    sign: Callable[[bytes], bytes] | None = None,
) -> OutgoingMessage:
    """The message to ``email``: RFC 6532 UTF-8 headers only for a non-ASCII address
    (which goes with SMTPUTF8); rewritten for its IDNA form where a server needs it.
    ``sign`` (see :func:`~digest.message.dkim_signer`) DKIM-signs the bytes that go."""

    def wire() -> bytes:
        data = parts_to_mime(parts, utf8=not email.isascii())
        return sign(data) if sign is not None else data

    return OutgoingMessage(
        subscriber_id,
        email,
        f"confirm-{subscriber_id}",
        wire=wire,
        parts=parts,
        name=name,
        readdress=lambda address: outgoing(
            subscriber_id, address, dataclasses.replace(parts, to=_to(name, address)), name, sign
        ),
    )


def open_sender(ws: Workspace) -> Sender:
    """The workspace's configured sender; the outbox writes to ``outbox/confirmations/``."""
    return configured_sender(ws, OUTBOX_FOLDER)


async def send_confirmation(
    ws: Workspace,
    subscriber_id: str,
    email: str,
    name: str,
    url: str,
    *,
    template: Template | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> Result:
    """Build and send one confirmation email; a whole-send problem raises SendError.

    ``template`` (kept by a server) saves the premailer run; ``sign`` the
    loading of the DKIM key (by default both are made for this one message).
    """
    if template is not None:
        parts = template.parts(email, name, url, subscriber_id)
    else:
        parts = build(ws, email, name, url, subscriber_id)
    if sign is None:
        sign = dkim_signer(ws)
    message = outgoing(subscriber_id, email, parts, clean_name(name), sign)
    async with open_sender(ws) as sender:
        [result] = await sender.send([message])
    if result.ok:
        log.info("confirmation sent to %s", mask(email))
    else:
        log.warning("confirmation to %s not sent: %s %s", mask(email), result.state, result.reason)
    return result


async def send_quietly(
    ws: Workspace,
    subscriber_id: str,
    email: str,
    name: str,
    url: str,
    *,
    template: Template | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> bool:
    """For the web form's worker: log a failure (masked), never raise; whether it went."""
    try:
        result = await send_confirmation(
            ws, subscriber_id, email, name, url, template=template, sign=sign
        )
    except (SendError, TemplateError) as exc:
        log.error("confirmation to %s failed: %s", mask(email), exc)
        return False
    return result.ok


__all__ = [
    "Template",
    "build",
    "confirm_url",
    "outgoing",
    "send_confirmation",
    "send_quietly",
]
