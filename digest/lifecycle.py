"""The subscriber lifecycle: one table of which event moves a subscriber from which state.

Every change of a subscriber's status goes through :func:`plan` with the
name of a transition below; the lifecycle's changes (:mod:`digest.people.changes`)
then write the consent event and the new status in one transaction::

    transition   event          from                                 to
    confirm      confirmed      pending                              active
    unsubscribe  unsubscribed   pending, active                      unsubscribed
    resubscribe  resubscribed   unsubscribed                         pending
    suppress     unsubscribed   pending, active, unsubscribed, ...   unsubscribed
    bounce       bounced        pending, active, unsubscribed, ...   bounced
    complaint    complained     pending, active, unsubscribed, ...   complained

From a state listed as *settled* a transition is a harmless no-op (confirming
an active subscriber, unsubscribing twice); from any other state it is
refused. A transition into a mailable state (pending, active) is refused for
an address on the suppression list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from digest.errors import SubscriberError

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained", "erased")
MAILABLE = ("pending", "active")
_LIVE = frozenset({"pending", "active", "unsubscribed", "bounced", "complained"})


@dataclass(frozen=True)
class Transition:
    """One row of the table: ``event`` moves a subscriber from ``sources`` to ``target``."""

    name: str
    event: str  # the consent event recorded
    sources: frozenset[str]
    target: str
    settled: frozenset[str] = frozenset()  # states in which it changes nothing
    refusal: str = "subscriber {id} is {status}; it cannot {name}"


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition(
            "confirm",
            "confirmed",
            frozenset({"pending"}),
            "active",
            settled=frozenset({"active"}),
            refusal="subscriber {id} is {status}, not pending: nothing to confirm",
        ),
        Transition(
            "unsubscribe",
            "unsubscribed",
            frozenset({"pending", "active"}),
            "unsubscribed",
            settled=frozenset(STATUSES) - {"pending", "active"},
        ),
        Transition(
            "resubscribe",
            "resubscribed",
            frozenset({"unsubscribed"}),
            "pending",
            settled=frozenset({"pending", "active"}),
        ),
        # An operator's suppression is recorded as an unsubscription.
        Transition("suppress", "unsubscribed", _LIVE, "unsubscribed"),
        Transition("bounce", "bounced", _LIVE, "bounced"),
        Transition("complaint", "complained", _LIVE, "complained"),
    )
}


def plan(
    name: str, status: str, subscriber_id: str, *, suppressed: Callable[[], bool]
) -> Transition | None:
    """The transition ``name`` from ``status``: None when it changes nothing.

    Raises :class:`SubscriberError` when the transition is not allowed from
    ``status``, or leads into a mailable state for a suppressed address
    (``suppressed`` is asked only then).
    """
    transition = TRANSITIONS[name]
    if status in transition.settled:
        return None
    if status not in transition.sources or (transition.target in MAILABLE and suppressed()):
        raise SubscriberError(transition.refusal.format(id=subscriber_id, status=status, name=name))
    return transition
