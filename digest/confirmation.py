"""The double opt-in email: "confirm your subscription", sent through the configured sender.

It is built from two small templates (``confirm_email.html`` and
``confirm_email.txt``; a workspace may override either) and handed to the
same :class:`~digest.send.sender.Sender` a send uses, so an outbox workspace
writes it to ``outbox/confirmations/`` and an SMTP or API workspace mails it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from digest import clock, render
from digest.addresses import mask
from digest.errors import SendError, TemplateError
from digest.send.configured import open_sender as configured_sender
from digest.send.sender import OutgoingMessage, Result, Sender
from digest.workspace import Workspace

log = logging.getLogger("digest.confirmation")

OUTBOX_FOLDER = "confirmations"


@dataclass
class ConfirmationParts:
    """The message as an HTTP mail API wants it (see ``send.sender.PartsLike``)."""

    subject: str
    from_: str
    to: str
    reply_to: str
    html: str
    text: str
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)


def confirm_url(ws: Workspace, token: str) -> str:
    return render.confirm_url(ws.config, token)


def build(ws: Workspace, email: str, name: str, url: str) -> ConfirmationParts:
    """The confirmation message for one address; ``url`` is its confirm link."""
    config = ws.config
    context = {
        "newsletter": config.newsletter,
        "email": email,
        "name": name,
        "confirm_url": url,
        "expiry_days": config.web.confirm_expiry_days,
        "statement": config.privacy.consent_statement,
        "policy_url": config.privacy.policy_url,
    }
    # The render module's environment: workspace overrides first, then the built-ins.
    env = render.environment(ws.templates_dir)
    html = render._render(env, "confirm_email.html", context)
    text = render._render(env, "confirm_email.txt", context)
    return ConfirmationParts(
        subject=f"Confirm your subscription to {config.newsletter.name}",
        from_=config.newsletter.from_,
        to=formataddr((name, email)) if name else email,
        reply_to=config.newsletter.reply_to,
        html=html,
        text=text,
        message_id=make_msgid("confirm", domain=config.newsletter.domain),
        headers={"Auto-Submitted": "auto-generated"},
    )


def to_mime(parts: ConfirmationParts) -> EmailMessage:
    """The RFC 5322 message: text first, HTML last."""
    message = EmailMessage()
    message["Subject"] = parts.subject
    message["From"] = parts.from_
    message["To"] = parts.to
    if parts.reply_to:
        message["Reply-To"] = parts.reply_to
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = parts.message_id
    for name, value in parts.headers.items():
        message[name] = value
    message.set_content(parts.text)
    message.add_alternative(parts.html, subtype="html")
    return message


def outgoing(subscriber_id: str, email: str, parts: ConfirmationParts) -> OutgoingMessage:
    return OutgoingMessage(
        subscriber_id,
        email,
        f"confirm-{subscriber_id}",
        wire=lambda: to_mime(parts).as_bytes(),
        parts=parts,
    )


def open_sender(ws: Workspace) -> Sender:
    """The workspace's configured sender; the outbox writes to ``outbox/confirmations/``."""
    return configured_sender(ws, OUTBOX_FOLDER)


async def send_confirmation(
    ws: Workspace, subscriber_id: str, email: str, name: str, url: str
) -> Result:
    """Build and send one confirmation email; a whole-send problem raises SendError."""
    parts = build(ws, email, name, url)
    message = outgoing(subscriber_id, email, parts)
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
    "ConfirmationParts",
    "build",
    "confirm_url",
    "outgoing",
    "send_confirmation",
    "send_quietly",
    "to_mime",
]
