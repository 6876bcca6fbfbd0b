"""Re-permission: asking a group of readers to confirm again, once each, like a send.

After a migration of doubtful consent (readers imported as pending, without
evidence), ``digest subscribers reconfirm`` mails the double opt-in email of
:mod:`digest.confirmation` (its templates, its sender) to the readers chosen.
A reader who clicks the link is confirmed by the public pages as any new
subscriber is: active, with fresh evidence (time, IP, browser). A reader who
never clicks stays pending and is never mailed an issue.

Each run is a *round*: the group is frozen into the ``reconfirmations`` ledger
(one row per reader) when it starts, and the rows go ``pending`` →
``sending`` (claimed, with an owner and a lease) → ``sent`` once the sender
accepted the message, or ``deferred`` (tried again by the next run),
``failed``, ``skipped`` (confirmed, unsubscribed or suppressed since). The
result of one message and the claim of the next are one transaction, so a
crash leaves at most one row ``sending``: the next run reports it as
``unknown`` and sends it again only when asked (``--include-unknown``), or by
itself with the outbox sender, which cannot deliver twice. Running the command
again resumes an unfinished round; once finished, a reader asked in an earlier
round is not asked again unless ``--again`` starts a new round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, literal, not_, select

from digest import clock, confirmation
from digest.addresses import mask
from digest.errors import ConfigError, SendError, SubscriberError
from digest.send.owners import new_owner, owner_alive
from digest.send.sender import ACCEPTED, PERMANENT, TRANSIENT, Result
from digest.store import Store, schema, stamp

STATUSES = ("pending",)  # the groups that may be asked (an active reader has confirmed)
LEASE = timedelta(minutes=10)
OPEN = ("pending", "sending", "deferred")
SAMPLE = 10

rounds_t = schema.reconfirm_rounds
rows_t = schema.reconfirmations
subs_t = schema.subscribers
supp_t = schema.suppressions
events_t = schema.consent_events


@dataclass
class Plan:
    """Who a run would mail: a new round's group, or what is left of an unfinished one."""

    round: int
    resume: bool  # an unfinished round goes on (its group was frozen when it started)
    count: int  # readers to mail
    sample: list[str]  # some of them, masked
    scope: str  # how the group was chosen
    asked_before: int = 0  # readers of the group asked in an earlier round (see --again)
    unknown: int = 0  # rows a crash left in doubt (see --include-unknown)
    status: str = "pending"  # the choice, for the freeze of a new round
    before: str | None = None
    again: bool = False


@dataclass
class Outcome:
    round: int
    counts: dict[str, int] = field(default_factory=dict)  # the round's rows per state
    requeued: int = 0  # unknown rows sent again

    @property
    def finished(self) -> bool:
        return not any(self.counts.get(state) for state in OPEN)


def _before(day: str | None) -> str | None:
    if day is None:
        return None
    try:
        return stamp(clock.parse_instant(day))
    except ConfigError:
        raise SubscriberError(
            f"--imported-before {day!r} is not a date (write e.g. 2026-11-01)"
        ) from None


def _group(status: str, before: str | None, again_round: int | None) -> Any:
    """The condition choosing the group: the status, not suppressed, imported before a
    date, and not asked in an earlier round (unless a new round is asked for)."""
    conditions = [
        subs_t.c.status == status,
        subs_t.c.email.is_not(None),
        not_(exists().where(supp_t.c.key == subs_t.c.email_key)),
    ]
    if before is not None:
        conditions.append(
            exists().where(
                events_t.c.subject_id == subs_t.c.id,
                events_t.c.kind == "imported",
                events_t.c.occurred_at < before,
            )
        )
    asked = exists().where(rows_t.c.subscriber_id == subs_t.c.id)
    if again_round is not None:
        asked = exists().where(rows_t.c.subscriber_id == subs_t.c.id, rows_t.c.round == again_round)
    conditions.append(not_(asked))
    return and_(*conditions)


def _scope(status: str, day: str | None) -> str:
    return f"status {status}" + (f", imported before {day}" if day else "")


def _latest(conn: Connection) -> tuple[int, int, int]:
    """The latest round, how many of its rows are left to mail, and how many are in doubt."""
    latest = int(conn.execute(select(func.max(rounds_t.c.round))).scalar() or 0)
    counts = _counts(conn, latest) if latest else {}
    left = sum(counts.get(state, 0) for state in OPEN)
    return latest, left, counts.get("unknown", 0)


def _requeues(store: Store, include_unknown: bool) -> bool:
    """Whether rows in doubt go again: when asked, or with the outbox (it cannot mail twice)."""
    return include_unknown or store.workspace.config.sender.kind == "outbox"


def plan(
    store: Store,
    *,
    status: str = "pending",
    imported_before: str | None = None,
    again: bool = False,
    include_unknown: bool = False,
) -> Plan:
    """Who the next run mails. An unfinished round is resumed first, whatever the filters."""
    if status not in STATUSES:
        raise SubscriberError(f"--status {status!r}: only pending readers are asked to confirm")
    before = _before(imported_before)
    with store.read() as conn:
        latest, left, unknown = _latest(conn)
        requeue = bool(unknown) and _requeues(store, include_unknown)
        if left or requeue:
            states = [*OPEN, "unknown"] if requeue else list(OPEN)
            remaining = (
                select(subs_t.c.email)
                .join(rows_t, rows_t.c.subscriber_id == subs_t.c.id)
                .where(rows_t.c.round == latest, rows_t.c.state.in_(states))
            )
            scope = conn.execute(
                select(rounds_t.c.scope).where(rounds_t.c.round == latest)
            ).scalar_one()
            return Plan(
                latest,
                True,
                _count(conn, remaining),
                _sample(conn, remaining),
                scope,
                unknown=0 if requeue else unknown,
                status=status,
                before=before,
                again=again,
            )
        group = select(subs_t.c.email).where(_group(status, before, latest + 1 if again else None))
        everyone = select(subs_t.c.email).where(_group(status, before, latest + 1))
        count = _count(conn, group)
        return Plan(
            latest + 1,
            False,
            count,
            _sample(conn, group),
            _scope(status, imported_before),
            asked_before=_count(conn, everyone) - count,
            unknown=unknown,
            status=status,
            before=before,
            again=again,
        )


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _sample(conn: Connection, query: Any) -> list[str]:
    return [mask(email) for (email,) in conn.execute(query.order_by(subs_t.c.id).limit(SAMPLE))]


def run(
    store: Store,
    chosen: Plan,
    *,
    include_unknown: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Freeze the round (a new one) or resume it, and mail every reader left in it once."""
    ws = store.workspace
    tokens = ws.tokens()  # refuses now, before anything is frozen, without a signing key
    owner = new_owner()
    now = stamp(clock.now())
    with store.begin() as conn:
        latest, left, unknown = _latest(conn)
        if not chosen.resume:
            if left or latest + 1 != chosen.round:
                raise SubscriberError(
                    "another reconfirmation round started meanwhile; run the command again"
                )
            again = chosen.round if chosen.again else None
            _freeze(conn, chosen.round, _group(chosen.status, chosen.before, again))
            conn.execute(
                rounds_t.insert().values(
                    round=chosen.round,
                    started_at=now,
                    scope=chosen.scope,
                    size=_size(conn, chosen.round),
                    finished_at=None,
                )
            )
        _settle(conn, chosen.round, now)
        requeued = 0
        if _requeues(store, include_unknown):
            requeued = conn.execute(
                rows_t.update()
                .where(rows_t.c.round == chosen.round, rows_t.c.state == "unknown")
                .values(state="pending", updated_at=now)
            ).rowcount
    outcome = Outcome(chosen.round, requeued=requeued)
    asyncio.run(_send(store, chosen.round, owner, tokens, progress))
    with store.begin() as conn:
        outcome.counts = _counts(conn, chosen.round)
        if outcome.finished:
            conn.execute(
                rounds_t.update()
                .where(rounds_t.c.round == chosen.round, rounds_t.c.finished_at.is_(None))
                .values(finished_at=stamp(clock.now()))
            )
    return outcome


def _freeze(conn: Connection, round_: int, condition: Any) -> None:
    """The round's group, copied into the ledger by the database in one statement."""
    now = stamp(clock.now())
    chosen = select(literal(round_), subs_t.c.id, literal("pending"), literal(now)).where(condition)
    conn.execute(
        rows_t.insert().from_select(["round", "subscriber_id", "state", "updated_at"], chosen)
    )


def _size(conn: Connection, round_: int) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(rows_t).where(rows_t.c.round == round_)
        ).scalar_one()
    )


def _settle(conn: Connection, round_: int, now: str) -> None:
    """Rows a dead run left ``sending`` become ``unknown``; deferred ones are due again."""
    for subscriber_id, owner, lease in conn.execute(
        select(rows_t.c.subscriber_id, rows_t.c.owner, rows_t.c.lease_until).where(
            rows_t.c.round == round_, rows_t.c.state == "sending"
        )
    ).all():
        if lease < now or owner_alive(owner) is False:
            conn.execute(
                rows_t.update()
                .where(rows_t.c.round == round_, rows_t.c.subscriber_id == subscriber_id)
                .values(
                    state="unknown",
                    reason="the run stopped while this message was going out",
                    updated_at=now,
                )
            )
    conn.execute(
        rows_t.update()
        .where(rows_t.c.round == round_, rows_t.c.state == "deferred")
        .values(state="pending", updated_at=now)
    )


def _counts(conn: Connection, round_: int) -> dict[str, int]:
    rows = conn.execute(
        select(rows_t.c.state, func.count())
        .where(rows_t.c.round == round_)
        .group_by(rows_t.c.state)
    )
    return {state: int(n) for state, n in rows}


async def _send(
    store: Store,
    round_: int,
    owner: str,
    tokens: Any,
    progress: Callable[[int], None] | None,
) -> None:
    ws = store.workspace
    async with confirmation.open_sender(ws) as sender:
        previous: tuple[str, Result] | None = None
        done = 0
        while True:
            with store.begin() as conn:
                if previous is not None:
                    _record(conn, round_, owner, *previous)
                claimed = _claim(conn, store.dialect, round_, owner)
            if claimed is None:
                return
            subscriber_id, email, name = claimed
            url = confirmation.confirm_url(ws, tokens.confirm(subscriber_id))
            message = confirmation.outgoing(
                subscriber_id, email, confirmation.build(ws, email, name or "", url), name or ""
            )
            try:
                [result] = await sender.send([message])
            except SendError:
                with store.begin() as conn:  # it did not go: back in the queue for the next run
                    conn.execute(
                        rows_t.update()
                        .where(rows_t.c.round == round_, rows_t.c.subscriber_id == subscriber_id)
                        .values(state="pending", owner="", lease_until="")
                    )
                raise
            previous = (subscriber_id, result)
            done += 1
            if progress is not None:
                progress(done)


def _claim(conn: Connection, dialect: str, round_: int, owner: str) -> tuple[str, str, str] | None:
    """The next reader of the round to mail, claimed; readers no longer pending are skipped."""
    now = clock.now()
    while True:
        query = (
            select(rows_t.c.subscriber_id)
            .where(rows_t.c.round == round_, rows_t.c.state == "pending")
            .order_by(rows_t.c.subscriber_id)
            .limit(1)
        )
        if dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        subscriber_id = conn.execute(query).scalar()
        if subscriber_id is None:
            return None
        who = conn.execute(
            select(
                subs_t.c.email,
                subs_t.c.name,
                subs_t.c.status,
                exists().where(supp_t.c.key == subs_t.c.email_key).label("suppressed"),
            ).where(subs_t.c.id == subscriber_id)
        ).first()
        where = and_(rows_t.c.round == round_, rows_t.c.subscriber_id == subscriber_id)
        if who is None or who.email is None or who.suppressed or who.status != "pending":
            why = (
                "erased"
                if who is None or who.email is None
                else "suppressed"
                if who.suppressed
                else f"{who.status} now"
            )
            conn.execute(
                rows_t.update()
                .where(where)
                .values(state="skipped", reason=why, updated_at=stamp(now))
            )
            continue
        conn.execute(
            rows_t.update()
            .where(where)
            .values(
                state="sending",
                owner=owner,
                lease_until=stamp(now + LEASE),
                attempts=rows_t.c.attempts + 1,
                updated_at=stamp(now),
            )
        )
        return str(subscriber_id), str(who.email), str(who.name or "")


def _record(conn: Connection, round_: int, owner: str, subscriber_id: str, result: Result) -> None:
    now = stamp(clock.now())
    values: dict[str, Any] = {"owner": "", "lease_until": "", "updated_at": now}
    if result.state == ACCEPTED:
        values.update(state="sent", provider_id=result.provider_id, sent_at=now, reason="")
    elif result.state == TRANSIENT:
        values.update(state="deferred", reason=result.reason)
    elif result.state == PERMANENT:
        values.update(state="failed", reason=result.reason)
    else:
        values.update(state="unknown", reason=result.reason)
    conn.execute(
        rows_t.update()
        .where(
            rows_t.c.round == round_,
            rows_t.c.subscriber_id == subscriber_id,
            rows_t.c.owner == owner,
        )
        .values(**values)
    )


__all__ = ["Outcome", "Plan", "plan", "run"]
