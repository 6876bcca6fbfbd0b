"""Synchronous bounces: a refusal during the send is a report too.

An SMTP server that answers 5xx to RCPT TO (or to DATA for the message's one
recipient), or an HTTP API that refuses one message because the recipient is
invalid or suppressed at the provider, has told digest at once what a bounce
report would tell it later. The sender classifies the reply
(:attr:`Result.bounce`, see :func:`digest.bounces.classify`); the engine
hands those results here after recording them, and each goes through the
policy, keyed by (issue, subscriber, reply) so a retry of the same refusal
counts once.
"""

from __future__ import annotations

from collections.abc import Sequence

from digest import bounces
from digest.bounces import Outcome, Report
from digest.send.sender import Result
from digest.store import Store


def record_refusals(
    store: Store, issue: str, refused: Sequence[tuple[str, Result]], *, source: str = "smtp"
) -> list[Outcome]:
    """Apply the policy to each (subscriber id, refusal) of one issue's send."""
    outcomes = []
    for subscriber_id, result in refused:
        if not result.bounce:
            continue
        found = bounces.classify(text=result.reason)
        raw = f"{source}\0{issue}\0{subscriber_id}\0{result.reason}".encode()
        outcomes.append(
            bounces.apply(
                store,
                Report(
                    source=source,
                    kind=result.bounce,
                    raw=raw,
                    subscriber_id=subscriber_id,
                    issue=issue,
                    status=found.status or (str(found.code) if found.code else ""),
                    diagnostic=result.reason,
                    proven=True,
                    method="smtp_reply" if source == "smtp" else "provider_reply",
                ),
            )
        )
    return outcomes
