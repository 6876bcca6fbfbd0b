"""Provider webhooks: each provider's signed events turned into bounce reports.

:func:`handle` is the entry point. One module per provider (``postmark``,
``sendgrid``, ``mailgun``, ``resend``, ``ses``) has three functions:
``secrets(config)`` reads its secret from the environment; ``verify(config,
headers, body, now)`` checks the request the way the provider documents it
and returns a *nonce* (what a replay would repeat), or raises ``Refused``;
``events(body)`` reads the events it carries. :func:`handle` does the rest for
all of them: refuses a replayed nonce, finds the reader each event is about,
and applies the policy (:func:`digest.bounces.apply`).

An event counts only for a message digest sent to the address the event names: the
provider's message id the ledger recorded for that reader, or the keyed Message-ID
digest gave the message, naming that reader. Custom arguments are never proof. A
provider account shared with another application therefore changes nobody here.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any

from sqlalchemy import delete, select

from digest import bounces, clock
from digest.bounces import Report
from digest.config import Config
from digest.errors import DigestError
from digest.message import read_message_id
from digest.people.record import find_by_email
from digest.send.intake.webhooks.common import Event, Refused
from digest.store import Store, schema, stamp

PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend", "ses")

nonces_t = schema.webhook_nonces


def module(provider: str) -> ModuleType:
    if provider not in PROVIDERS:
        raise ValueError(provider)
    return importlib.import_module(f"digest.send.intake.webhooks.{provider}")


def configured(config: Config) -> list[str]:
    """The providers whose webhook is set up in ``[webhooks.*]``."""
    return [name for name in PROVIDERS if getattr(config.webhooks, name).configured]


def check_secrets(config: Config) -> None:
    """Refuse to start without a configured webhook's secret (one clear line)."""
    for name in configured(config):
        module(name).secrets(config)


@dataclass
class Handled:
    events: int
    outcomes: Counter[str]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "events": self.events, "outcomes": dict(self.outcomes)}


def handle(
    store: Store,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> Handled:
    """Verify one webhook request and apply the policy to its events."""
    config = store.workspace.config
    source = module(provider)
    moment = clock.now().timestamp() if now is None else now
    nonce = source.verify(config, headers, body, moment)
    if nonce:
        _claim_nonce(store, provider, nonce, config.webhooks.tolerance_seconds)
    outcomes: Counter[str] = Counter()
    try:
        # Reading the events may act too (SES confirms a subscription): if it fails, the
        # provider's retry of this request must get through.
        try:
            events: list[Event] = source.events(body)
        except (ValueError, KeyError, TypeError, AttributeError):
            events = []  # a well-signed request we cannot read is answered, and ignored
        for event in events:
            report = _report(store, provider, event)
            outcomes[bounces.apply(store, report).outcome] += 1
    except Exception:
        if nonce:  # not processed: drop the replay marker
            with store.begin() as conn:
                conn.execute(
                    delete(nonces_t).where(
                        nonces_t.c.provider == provider, nonces_t.c.nonce == nonce[:128]
                    )
                )
        raise
    return Handled(len(events), outcomes)


def _claim_nonce(store: Store, provider: str, nonce: str, tolerance: int) -> None:
    """Remember a request's nonce; the same one again is a replay."""
    now = clock.now()
    with store.begin() as conn:
        conn.execute(
            delete(nonces_t).where(
                nonces_t.c.seen_at < stamp(now - timedelta(seconds=2 * tolerance + 60))
            )
        )
        seen = conn.execute(
            select(nonces_t.c.nonce).where(
                nonces_t.c.provider == provider, nonces_t.c.nonce == nonce[:128]
            )
        ).first()
        if seen is not None:
            raise Refused(403, f"{provider}: this request was already received (a replay)")
        conn.execute(
            nonces_t.insert().values(provider=provider, nonce=nonce[:128], seen_at=stamp(now))
        )


def _report(store: Store, provider: str, event: Event) -> Report:
    issue, subscriber_id, proven = _ours(store, event)
    return Report(
        source=provider,
        kind=event.kind,
        raw=event.raw,
        subscriber_id=subscriber_id,
        address=event.address,
        issue=issue,
        status=event.status,
        diagnostic=event.diagnostic,
        proven=proven,
        part=event.event_id,
        method="provider_webhook",
    )


def _ours(store: Store, event: Event) -> tuple[str, str, bool]:
    """(issue, subscriber id, proven): the reader with the address the event names, and
    whether digest sent them the message the event is about (the issue, when known).

    Proof is the keyed Message-ID digest gave the message, or the provider's message id
    the deliveries ledger recorded, each for the reader whose address the event names.
    Custom arguments (``digest_key``) are not proof: another application on a shared
    account can set them, and subscriber ids are public.
    """
    if not event.address:
        return "", "", False
    try:
        sub = find_by_email(store, event.address)
    except DigestError:
        return "", "", False
    if sub is None:
        return "", "", False
    config = store.workspace.config
    named = read_message_id(config, store.workspace.tokens(), event.message_id)
    if named is not None and named[1] == sub.id:
        return ("" if named[0] == "confirm" else named[0]), sub.id, True
    if not event.provider_id:
        return "", sub.id, False
    deliveries = schema.deliveries
    recent = (
        select(schema.issue_sends.c.issue)
        .order_by(schema.issue_sends.c.issue.desc())
        .limit(60)
        .scalar_subquery()
    )
    with store.read() as conn:
        for issue, provider_id in conn.execute(
            select(deliveries.c.issue, deliveries.c.provider_id).where(
                deliveries.c.issue.in_(recent), deliveries.c.subscriber_id == sub.id
            )
        ):
            if provider_id and _same_message(provider_id, event.provider_id):
                return str(issue), sub.id, True
    return "", sub.id, False


def _same_message(recorded: str, reported: str) -> bool:
    """The send's provider id and the event's name one message (brackets, suffixes aside)."""
    a, b = recorded.strip().strip("<>"), reported.strip().strip("<>")
    return bool(a) and (a == b or b.startswith(a + "."))
