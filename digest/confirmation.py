"""The double opt-in email: "confirm your subscription", sent through the configured sender.

It is built from two small templates (``confirm_email.html`` and
``confirm_email.txt``; a workspace may override either) into the
:class:`~digest.message.MessageParts` every message of digest is, and handed to the
same :class:`~digest.send.sender.Sender` a send uses, so an outbox workspace
writes it to ``outbox/confirmations/`` and an SMTP or API workspace mails it.
"""

from __future__ import annotations

import dataclasses
import logging
from email.utils import make_msgid

from digest import render
from digest.addresses import clean_name, mask
from digest.errors import SendError, TemplateError
from digest.languages import language
from digest.message import MessageParts, encode_address, message_id, parts_to_mime
from digest.send.configured import open_sender as configured_sender
from digest.send.sender import OutgoingMessage, Result, Sender
from digest.workspace import Workspace

log = logging.getLogger("digest.confirmation")

OUTBOX_FOLDER = "confirmations"


def confirm_url(ws: Workspace, token: str) -> str:
    return render.confirm_url(ws.config, token)


def build(ws: Workspace, email: str, name: str, url: str, subscriber_id: str = "") -> MessageParts:
    """The confirmation message for one address; ``url`` is its confirm link.

    With the reader's ``subscriber_id``, the Message-ID is the keyed one digest gives
    every message (``<confirm.ID.MAC@domain>``), so a bounce of it names the reader.

    The name is cleaned by the one rule of digest (a form may send CR, LF or
    NUL in it); the To field holds RFC 2047 words for a non-ASCII name.
    """
    config = ws.config
    name = clean_name(name)
    context = {
        "newsletter": render.newsletter_context(config),
        "language": language(config.newsletter.language),
        "email": email,
        "name": name,
        "confirm_url": url,
        "expiry_days": config.web.confirm_expiry_days,
        "statement": config.privacy.consent_statement,
        "policy_url": config.privacy.policy_url,
    }
    # Workspace overrides first, then the built-ins, as for an issue; the shell
    # and style, inlined like an issue (one premailer run per sign-up).
    html = render.inline_css(
        render.render_template(ws.templates_dir, "confirm_email.html", context)
    )
    text = render.render_template(ws.templates_dir, "confirm_email.txt", context)
    return MessageParts(
        subject=f"Confirm your subscription to {config.newsletter.name}",
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


def _to(name: str, address: str) -> str:
    return encode_address(name, address).replace("\r\n", "")


def outgoing(
    subscriber_id: str, email: str, parts: MessageParts, name: str = ""
) -> OutgoingMessage:
    """The message to ``email``: RFC 6532 UTF-8 headers only for a non-ASCII address
    (which goes with SMTPUTF8); rewritten for its IDNA form where a server needs it."""
    return OutgoingMessage(
        subscriber_id,
        email,
        f"confirm-{subscriber_id}",
        wire=lambda: parts_to_mime(parts, utf8=not email.isascii()),
        parts=parts,
        name=name,
        readdress=lambda address: outgoing(
            subscriber_id, address, dataclasses.replace(parts, to=_to(name, address)), name
        ),
    )


def open_sender(ws: Workspace) -> Sender:
    """The workspace's configured sender; the outbox writes to ``outbox/confirmations/``."""
    return configured_sender(ws, OUTBOX_FOLDER)


async def send_confirmation(
    ws: Workspace, subscriber_id: str, email: str, name: str, url: str
) -> Result:
    """Build and send one confirmation email; a whole-send problem raises SendError."""
    parts = build(ws, email, name, url, subscriber_id)
    message = outgoing(subscriber_id, email, parts, clean_name(name))
    async with open_sender(ws) as sender:
        [result] = await sender.send([message])
    if result.ok:
        log.info("confirmation sent to %s", mask(email))
    else:
        log.warning("confirmation to %s not sent: %s %s", mask(email), result.state, result.reason)
    return result


async def send_quietly(ws: Workspace, subscriber_id: str, email: str, name: str, url: str) -> None:
    """For the web form's background task: log a failure (masked), never raise."""
    try:
        await send_confirmation(ws, subscriber_id, email, name, url)
    except (SendError, TemplateError) as exc:
        log.error("confirmation to %s failed: %s", mask(email), exc)


__all__ = [
    "build",
    "confirm_url",
    "outgoing",
    "send_confirmation",
    "send_quietly",
]
