"""The configured sender: ``[sender] kind`` of digest.toml made into a :class:`Sender`.

=========  ===========================================================
outbox     one .eml file per message in outbox/ISSUE/ (the default)
smtp       aiosmtplib, ``[sender] connections`` persistent connections
http       an HTTP mail API: postmark, sendgrid, mailgun, resend, generic
null       builds every message and discards it (benchmarks, rehearsals)
=========  ===========================================================

Each sender module is imported only when it is the configured one (aiosmtplib
and httpx are not loaded for an outbox workspace).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from digest.send.sender import OutgoingMessage, Sender
    from digest.workspace import Workspace


def return_path_for(ws: Workspace, issue: str) -> Callable[[OutgoingMessage], str] | None:
    """The VERP envelope sender per message, when ``[bounces] return_path`` is set."""
    template = ws.config.bounces.return_path
    if not template:
        return None
    tokens = ws.tokens()

    def address(message: OutgoingMessage) -> str:
        return template.replace("{token}", tokens.return_path(issue, str(message.subscriber_id)))

    return address


def open_sender(
    ws: Workspace,
    issue: str,
    *,
    test: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> Sender:
    """The configured sender for issue ``issue`` (a date slug); secrets from the environment."""
    config = ws.config
    kind = config.sender.kind
    if kind == "outbox":
        # deferred: each sender loads its own libraries (aiosmtplib, httpx) only when chosen
        from digest.send.outbox import OutboxSender

        folder = ws.outbox_dir / issue
        return OutboxSender(folder / "test" if test else folder)
    if kind == "null":
        from digest.send.null import NullSender  # deferred, as above

        return NullSender()
    if kind == "smtp":
        from digest.send.smtp import SmtpSender  # deferred, as above

        smtp = config.sender.smtp
        username = (
            config.secret(smtp.username_env, "the SMTP user name") if smtp.username_env else None
        )
        password = (
            config.secret(smtp.password_env, "the SMTP password") if smtp.password_env else None
        )
        return SmtpSender(
            smtp,
            config.newsletter.from_address,
            connections=config.sender.connections,
            username=username,
            password=password,
            tls_context=tls_context,
            return_path=return_path_for(ws, issue),
        )
    from digest.send.http import HttpSender  # deferred, as above
    from digest.send.providers import provider_for

    http = config.sender.http
    options: dict[str, Any] = {}
    if http.provider == "generic":
        token = ""
        if http.token_env:
            token = os.environ.get(http.token_env, "")
        template = http.body_template
        if template and "\n" not in template and (ws.templates_dir / template).is_file():
            options["template_text"] = (ws.templates_dir / template).read_text(encoding="utf-8")
    else:
        token = config.secret(http.token_env, f"the {http.provider} API token")
    if http.provider == "mailgun":
        options["domain"] = config.newsletter.domain
    provider = provider_for(http, token, **options)
    return HttpSender(provider, http, parallel=config.sender.connections, transport=transport)
