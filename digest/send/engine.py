"""Send an issue to its whole audience, exactly once per subscriber, surviving crashes.

:func:`run_send` is the one entry point (the CLI and the scheduler call it):

1. refuse what must not go (no postal address, errors from `digest check`,
   an issue not ``ready`` unless forced);
2. take the issue's send lock on SQLite (a second process is refused) or
   rely on ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (processes split the work);
3. turn rows left ``sending`` by a dead run into ``unknown``;
4. freeze the audience into the ledger, once;
5. workers (one per connection or request in flight) claim a batch, build
   its messages lazily, send, and record each result; a streaming sender's
   connections (SMTP) instead take one message at a time from a feed that
   records the previous results and claims the next in one step, every
   connection's steps of one turn of the event loop sharing one commit; a
   token bucket paces them all, and a throttling reply holds every worker;
6. stop when nothing is left, ``limit`` is reached, the stop event is set
   (in-flight batches get ``STOP_GRACE`` seconds), or the sender reports a
   problem with the whole send; the issue becomes ``sent`` when every row is
   final.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from digest import clock
from digest.addresses import normalise
from digest.bounces import issue_summary, send_warning
from digest.errors import DigestError, IssueError, SendError
from digest.issue import Issue, save_issue, workspace_issue
from digest.people.audience import AUDIENCE_IDS, audience_count, unbound
from digest.send.configured import open_sender
from digest.send.deliveries import FINAL, Claimed, DeliveryLedger, latest_send
from digest.send.intake.refusals import record_refusals
from digest.send.keys import idempotency_key
from digest.send.pace import TokenBucket
from digest.send.sender import ACCEPTED, Done, OutgoingMessage, Result, Sender
from digest.send.signing import refuse_another_key
from digest.store import Store, open_store
from digest.workspace import Workspace

BACKOFF_SECONDS = 30.0  # first retry of a transient failure; doubles each attempt
DEFER_WAIT_MAX = (
    300.0  # a run waits for deferred rows due within this; later ones wait for a re-run
)
STOP_GRACE = 30.0  # seconds in-flight messages get after a stop
OTHERS_POLL = 0.25  # seconds between looks at other runs' messages in flight
THROTTLE_HOLD = 5.0  # a throttling reply without Retry-After holds everyone this long
INLINE_BATCH = 10  # SQLite claims and records of batches this small run in the event loop
PROGRESS_EVERY = 0.1  # seconds between progress reports (and one at the end)
# Rows a streaming send reserves at a time (they stay pending: nothing reserved is in
# doubt after a crash); each becomes "sending", its reader checked again, as it goes.
RESERVE_BLOCK = 64

T = TypeVar("T")


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class Progress:
    issue: str
    total: int
    done: int
    sent: int
    failed: int
    deferred: int
    unknown: int
    skipped: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class SendReport:
    issue: str
    sender: str
    audience: int
    counts: dict[str, int]
    this_run: dict[str, int] = field(default_factory=dict)
    recovered_unknown: int = 0
    elapsed: float = 0.0
    send_seconds: float = 0.0  # of ``elapsed``, the claiming and sending (not render, freeze)
    batch_size: int = 1
    stopped: bool = False
    fatal: str = ""
    complete: bool = False
    resume: str = ""
    reset: dict[str, int] = field(default_factory=dict)
    unbound: int = 0  # rows skipped this run: the address is not the one the consent names

    @property
    def rate(self) -> float:
        sent = self.this_run.get("sent", 0)
        return sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def unbound_warning(self) -> str:
        """The warning when this run refused rows whose address is not the consented one."""
        if not self.unbound:
            return ""
        readers = "reader" if self.unbound == 1 else "readers"
        return (
            f"warning: {self.unbound} {readers} not mailed: their address is not the one their "
            "consent names (the subscribers table was changed?); run `digest consent verify`"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "sender": self.sender,
            "audience": self.audience,
            "counts": self.counts,
            "this_run": self.this_run,
            "recovered_unknown": self.recovered_unknown,
            "elapsed_seconds": round(self.elapsed, 3),
            "rate_per_second": round(self.rate, 1),
            "stopped": self.stopped,
            "fatal": self.fatal,
            "complete": self.complete,
            "resume": self.resume,
            "reset": self.reset,
            "unbound": self.unbound,
        }


# -- refusing --------------------------------------------------------------------------


def resolve_issue(ws: Workspace, issue: Issue | date | str | None) -> Issue:
    """``issue``, or the upcoming one; when none is upcoming because the last one has
    gone, the error says when it went."""
    if isinstance(issue, Issue):
        return issue
    try:
        return workspace_issue(ws, issue)
    except IssueError:
        if issue is not None:
            raise
        last = sent_issue(ws, None) if _any_send(ws) else None
        if last is not None:
            refuse_sent(ws, last)
        raise


def _any_send(ws: Workspace) -> bool:
    with open_store(ws) as store:
        return latest_send(store) is not None


def sent_issue(ws: Workspace, issue: Issue | date | str | None) -> Issue:
    """``issue``, or without one the issue whose send started last (sending or sent),
    else the upcoming one: what `digest deliveries` and `digest retry` look at."""
    if issue is not None:
        return resolve_issue(ws, issue)
    with open_store(ws) as store:
        slug = latest_send(store)
    if slug is not None and (ws.issues_dir / f"{slug}.yaml").exists():
        return workspace_issue(ws, slug)
    return workspace_issue(ws, None)


def require_postal_address(ws: Workspace) -> None:
    if not ws.config.newsletter.postal_address.strip():
        raise SendError(
            f"{ws.config_path}: [newsletter] postal_address is empty; the law (CAN-SPAM) wants "
            "a postal address in every newsletter: set it, then send again"
        )


def refuse_sent(ws: Workspace, issue: Issue) -> None:
    """``digest send`` of an issue that has gone: say when, instead of a run that sends 0."""
    if issue.status != "sent":
        return
    with open_store(ws) as store:
        ledger = DeliveryLedger(store, issue.slug)
        _, last, audience = ledger.timing()
        sent = ledger.counts()["sent"]
    when = ""
    if last:
        local = datetime.fromisoformat(last.replace("Z", "+00:00")).astimezone(
            ws.config.schedule.zone
        )
        when = f" on {local:%a} {local.day} {local:%b %Y %H:%M} {local.tzname()}"
    raise SendError(
        f"{issue.label}: already sent{when} ({sent} of an audience of {audience}); "
        f"see `digest deliveries {issue.slug}`, or start the next one with `digest issue new`"
    )


def preflight(
    ws: Workspace, issue: Issue, *, force: bool = False, retire_sent_key: bool = False
) -> Any:
    """Refuse an issue that must not go (or a key that would break the last issue's
    links, unless ``retire_sent_key``); return its prepared rendering."""
    # deferred: rendering loads jinja2 and lxml, which `digest deliveries` never needs
    from digest.check import check_prepared
    from digest.render import prepare

    require_postal_address(ws)
    if issue.status not in ("ready", "sending", "sent") and not force:
        raise IssueError(
            f"{issue.label}: status is {issue.status}, not ready; mark it with "
            f"`digest issue ready {issue.slug}` (or send with --force)"
        )
    prepared = prepare(ws, issue)
    result = check_prepared(prepared)
    if result.errors:
        first = result.errors[0]
        raise IssueError(
            f"{issue.label}: `digest check {issue.slug}` finds {len(result.errors)} "
            f"error{'' if len(result.errors) == 1 else 's'}, "
            f"first: {first.code}: {first.message}; fix them before sending"
        )
    if not retire_sent_key:
        refuse_another_key(ws)
    return prepared


# -- the SQLite send lock ----------------------------------------------------------------


@contextlib.contextmanager
def send_lock(store: Store, issue: str) -> Iterator[bool]:
    """On SQLite, one process per issue (a file lock freed even by SIGKILL); yields exclusive."""
    if store.dialect != "sqlite":
        yield False
        return
    database = store.engine.url.database or ""
    folder = Path(database).parent if database and database != ":memory:" else Path.cwd()
    path = folder / f".send-{issue}.lock"
    handle: IO[str] = open(path, "a+")  # noqa: SIM115 - held for the whole send
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SendError(
                f"issue {issue} is already being sent by {holder}; with SQLite one process "
                "sends an issue at a time: wait for it to finish (or stop it), then run "
                "the same command to resume"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        yield True
    finally:
        handle.close()


# -- the send ----------------------------------------------------------------------------


def run_send(
    ws: Workspace,
    issue: Issue | date | str | None,
    *,
    limit: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    stop_event: StopFlag | None = None,
    force: bool = False,
    sender: Sender | None = None,
    retire_sent_key: bool = False,
    prepared: Any = None,
) -> SendReport:
    """Send ``issue`` (an Issue, a date, or None for the upcoming one); resume if begun.

    ``prepared``: the issue's rendering that :func:`preflight` returned for it (the
    command checks it before asking), so it is not rendered and checked twice.
    """
    from digest.message import MessageBuilder  # deferred, as in preflight

    target = resolve_issue(ws, issue)
    if prepared is None or prepared.issue is not target:
        prepared = preflight(ws, target, force=force, retire_sent_key=retire_sent_key)
    slug = target.slug
    builder = MessageBuilder.for_workspace(ws, prepared)
    started = time.monotonic()
    with open_store(ws) as store, send_lock(store, slug) as exclusive:
        ledger = DeliveryLedger(store, slug)
        ledger.lease_seconds = ws.config.sender.lease_seconds
        recovered = ledger.recover(exclusive=exclusive)
        if not ledger.frozen() and audience_count(store) == 0:
            # Freezing nobody would mark the issue sent and shut out later subscribers.
            raise SendError(
                f"{target.label}: nobody to send to (no confirmed, unsuppressed subscribers); "
                "the issue stays as it is: add or import subscribers, then send again"
            )
        ledger.freeze(AUDIENCE_IDS)  # copied in the database, in one statement
        # Once per run, before the first message: nobody is mailed on another's consent.
        refused = ledger.skip(unbound(store), UNBOUND_REASON)
        store.note_link_key(slug, prepared.tokens.fingerprint)  # `serve` checks its keys by it
        if target.status != "sending" and not complete_counts(ledger.counts()):
            target.status = "sending"
            save_issue(target)
        chosen = sender or open_sender(ws, slug)
        run = _Run(ws, ledger, builder, chosen, limit, on_progress, stop_event, started)
        sending = time.monotonic()
        asyncio.run(run.main())
        sending = time.monotonic() - sending
        counts = ledger.counts()  # one reading: runs sharing the send may finish meanwhile
        _, _, frozen = ledger.timing()
        complete = complete_counts(counts)
        if complete:
            ledger.finish()
            if target.status != "sent":
                target.status = "sent"
                save_issue(target)
    resume = "" if complete else resume_command(ws, slug, counts)
    return SendReport(
        issue=slug,
        sender=chosen.name,
        audience=frozen,
        counts=counts,
        this_run=run.outcomes,
        recovered_unknown=recovered,
        elapsed=time.monotonic() - started,
        send_seconds=sending,
        batch_size=chosen.batch_size,
        stopped=run.stopped,
        fatal=run.fatal,
        complete=complete,
        resume=resume,
        unbound=refused,
    )


UNBOUND_REASON = (
    "its address does not match its consent record (changed in the database?): "
    "run `digest consent verify`"
)


def complete_counts(counts: dict[str, int]) -> bool:
    """Whether a ledger's counts by state say every row is in a final state."""
    return sum(counts.values()) > 0 and all(counts[s] == 0 for s in counts if s not in FINAL)


def resume_command(ws: Workspace, slug: str, counts: dict[str, int]) -> str:
    base = f"digest -C {ws.root}"
    if counts.get("pending") or counts.get("sending") or counts.get("deferred"):
        return f"{base} send {slug} --yes"
    if counts.get("unknown"):
        return f"{base} retry {slug} --include-unknown"
    return f"{base} retry {slug}"


class _Run:
    """The workers of one send run and what they share."""

    def __init__(
        self,
        ws: Workspace,
        ledger: DeliveryLedger,
        builder: Any,
        sender: Sender,
        limit: int | None,
        on_progress: Callable[[Progress], None] | None,
        stop_event: StopFlag | None,
        started: float,
    ) -> None:
        self.ws = ws
        self.ledger = ledger
        self.builder = builder
        self.sender = sender
        self.limit = limit
        self.on_progress = on_progress
        self.stop_event = stop_event
        self.started = started
        self.settings = ws.config.sender
        self.bucket = TokenBucket(self.settings.rate, burst=max(1, sender.batch_size))
        self.claimed = 0
        self.in_flight = 0
        self.halted = False
        self.stopped = False
        self.fatal = ""
        self.unknown_left = sender.idempotent
        self.outcomes: dict[str, int] = {}
        self.total = 0
        self.inline_db = ledger.dialect == "sqlite" and sender.batch_size <= INLINE_BATCH
        self.streaming = 0  # connections of a streaming sender at work
        self.steps: _Steps | None = None  # made in the event loop (main)
        self.shown = 0.0  # when progress was last reported
        self.others_until: float | None = None  # how long to wait for other runs' messages
        self.others_seen = -OTHERS_POLL  # when they were last looked at
        self.others_busy = False

    def stopping(self) -> bool:
        if self.stop_event is not None and self.stop_event.is_set():
            self.stopped = True
        return self.halted or self.stopped

    async def main(self) -> None:
        counts = self.ledger.counts()
        self.total = sum(counts.values())
        self.base = {k: counts[k] for k in ("sent", "failed", "skipped")}
        # One connection for the ledger's steps: on SQLite when they run in the event
        # loop, and on PostgreSQL for a streaming sender's (they take turns on it).
        keep = self.inline_db or self.sender.streams
        held = self.ledger.held() if keep else contextlib.nullcontext()
        self.steps = _Steps(self)
        async with self.sender:
            with held:
                try:
                    await self._work()
                    await self.steps.settle()
                finally:
                    self.ledger.unreserve()
        abandoned = self.ledger.abandon()
        if abandoned:
            self.outcomes["unknown"] = self.outcomes.get("unknown", 0) + abandoned
        if self.on_progress is not None:
            self.on_progress(self.progress())

    async def _work(self) -> None:
        worker = self.lane if self.sender.streams else self.worker
        tasks = [asyncio.create_task(worker()) for _ in range(max(1, self.sender.parallel))]
        deadline: float | None = None
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.1)
            if self.stopping() and deadline is None:
                deadline = time.monotonic() + STOP_GRACE
            if deadline is not None and time.monotonic() > deadline and pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.ledger.abandon()
                raise task.exception()  # type: ignore[misc]

    async def worker(self) -> None:
        size = max(1, self.sender.batch_size)
        done: list[tuple[Claimed, Result]] = []  # sent, not yet recorded
        try:
            while not self.stopping():
                if done and not self._may_defer(done):
                    await self._record(done)
                    done = []
                want = size
                if self.limit is not None:
                    want = min(size, self.limit - self.claimed)
                    if want <= 0:
                        return
                await self.bucket.take(want)
                if self.stopping():
                    return
                self.claimed += want  # reserved while the claim runs; the unused part given back
                claimed, skipped = await self._take(want, done)
                done = []
                self.claimed -= want - len(claimed)
                if skipped:
                    self._count("skipped", skipped)
                if not claimed:
                    if skipped:
                        continue
                    if self.in_flight:
                        await asyncio.sleep(0.05)
                        continue
                    wait = self._deferred_wait()
                    if wait is None:
                        return
                    await self._nap(min(wait, 1.0))
                    continue
                done = await self._send(claimed)
        finally:
            if done:
                await self._record(done)

    async def lane(self) -> None:
        """One connection of a streaming sender (SMTP): it takes messages from the
        feed until there are none; then wait for deferred rows, as :meth:`worker`."""
        feed = _Feed(self)
        while not self.stopping():
            self.streaming += 1
            try:
                await self.sender.stream(feed)
            except SendError as exc:
                self.fatal = str(exc)
                self.halted = True
                return
            finally:
                self.streaming -= 1
            if self.stopping() or feed.limited:
                return
            if self.streaming:  # other connections still have messages on the wire
                await asyncio.sleep(0.05)
                continue
            wait = self._deferred_wait()
            if wait is None:
                return
            await self._nap(min(wait, 1.0))

    def _may_defer(self, done: list[tuple[Claimed, Result]]) -> bool:
        """Whether these results may be recorded with the next claim, in one transaction.

        Not when the next claim may wait (a paced send, a throttling reply that
        must hold everyone first) or takes unknown groups: results are never
        held while nothing is on the wire.
        """
        return (
            self.bucket.rate <= 0
            and not self.unknown_left
            and not any(r.throttled for _, r in done)
        )

    async def _take(
        self, want: int, done: list[tuple[Claimed, Result]]
    ) -> tuple[list[Claimed], int]:
        """Record ``done`` and claim the next batch in one transaction (see _db)."""
        claimed: list[Claimed] = []
        skipped = 0
        if self.unknown_left:
            claimed, skipped = await self._db(
                functools.partial(self.ledger.take, want, unknown_groups=True)
            )
            if not claimed and not skipped:
                self.unknown_left = False
        if not claimed:
            counts, claimed, more = await self._db(
                functools.partial(
                    self.ledger.step,
                    done,
                    want,
                    max_attempts=max(1, self.settings.max_attempts),
                    backoff=BACKOFF_SECONDS,
                )
            )
            skipped += more
            if done:
                await self._recorded(done, counts)
        return claimed, skipped

    async def _db(self, call: Callable[[], T]) -> T:
        """Run a ledger call in a thread (the database works without the GIL while
        other workers build and post their batches), or here when that is cheaper:
        one-message claims and records on SQLite take microseconds, and handing
        them to a thread costs more in GIL hand-offs (stalling every socket write
        of the event loop) than it saves.
        """
        if self.inline_db:
            return call()
        return await asyncio.to_thread(call)

    async def _send(self, claimed: list[Claimed]) -> list[tuple[Claimed, Result]]:
        """Send one batch; its results, for the worker to record."""
        from digest.render import Recipient  # deferred, as in preflight

        slug = self.ledger.issue
        messages = []
        for row in claimed:
            recipient = Recipient(row.subscriber_id, row.email, row.name)
            messages.append(
                OutgoingMessage(
                    row.subscriber_id,
                    row.email,
                    idempotency_key(slug, row.subscriber_id),
                    name=row.name,
                    builder=self.builder,
                    recipient=recipient,
                )
            )
        self.in_flight += 1
        try:
            results = await self.sender.send(messages)
        except SendError as exc:
            partial: list[Result] = list(getattr(exc, "partial", []))
            if partial:
                await self._record(list(zip(claimed, partial, strict=False)))
            self.ledger.release([c.subscriber_id for c in claimed[len(partial) :]])
            self.fatal = str(exc)
            self.halted = True
            return []
        except DigestError:  # a setting or template: the whole send's problem
            raise
        except Exception as exc:  # nothing from one recipient's data may stop the send
            why = f"{type(exc).__name__}: {exc}"
            if len(claimed) == 1:
                results = [Result.permanent(why)]
            else:  # which message of the batch broke, and whether the rest went, is unknown
                results = [Result.unknown(f"the sender failed: {why}")] * len(claimed)
        finally:
            self.in_flight -= 1
        return list(zip(claimed, results, strict=True))

    async def _record(self, outcomes: list[tuple[Claimed, Result]]) -> None:
        counts = await self._db(
            functools.partial(
                self.ledger.record,
                outcomes,
                max_attempts=max(1, self.settings.max_attempts),
                backoff=BACKOFF_SECONDS,
            )
        )
        await self._recorded(outcomes, counts)

    async def _recorded(
        self, outcomes: list[tuple[Claimed, Result]], counts: dict[str, int]
    ) -> None:
        refused = self._noted(outcomes, counts)
        if refused:
            await self._refusals(refused)

    def _noted(
        self, outcomes: list[tuple[Claimed, Result]], counts: dict[str, int]
    ) -> list[tuple[str, Result]]:
        """Count recorded outcomes, slow down on throttling, report progress; the
        refusals that are bounces, for :meth:`_refusals`."""
        for state, n in counts.items():
            self._count(state, n)
        throttled = [r for _, r in outcomes if r.throttled]
        if throttled:
            self.bucket.hold(max((r.retry_after or THROTTLE_HOLD) for r in throttled))
        elif self.bucket.current < self.bucket.rate:
            self.bucket.recovered(sum(1 for _, r in outcomes if r.state == ACCEPTED))
        if self.on_progress is not None:
            now = time.monotonic()
            if now - self.shown >= PROGRESS_EVERY:
                self.shown = now
                self.on_progress(self.progress())
        return [(c.subscriber_id, r) for c, r in outcomes if r.bounce]

    async def _refusals(self, refused: list[tuple[str, Result]]) -> None:
        """A refusal that is a bounce goes through the bounce policy."""
        await asyncio.to_thread(
            functools.partial(
                record_refusals,
                self.ledger.store,
                self.ledger.issue,
                refused,
                source=self.sender.bounce_source,
            )
        )

    def _count(self, state: str, n: int) -> None:
        self.outcomes[state] = self.outcomes.get(state, 0) + n

    def progress(self) -> Progress:
        o = self.outcomes
        done = sum(self.base.values()) + o.get("sent", 0) + o.get("failed", 0) + o.get("skipped", 0)
        return Progress(
            issue=self.ledger.issue,
            total=self.total,
            done=done,
            sent=o.get("sent", 0),
            failed=o.get("failed", 0),
            deferred=o.get("deferred", 0),
            unknown=o.get("unknown", 0),
            skipped=o.get("skipped", 0),
            elapsed=time.monotonic() - self.started,
        )

    def _deferred_wait(self) -> float | None:
        """Seconds until the next deferred row is due, if it is due soon enough to wait;
        while another run has messages of this issue on the wire, a short nap."""
        due = self.ledger.next_retry()
        if due is not None:
            wait = (due - clock.now()).total_seconds()
            if wait <= DEFER_WAIT_MAX:
                return max(0.0, wait)
        return OTHERS_POLL if self._others_in_flight() else None

    def _others_in_flight(self) -> bool:
        """Whether other runs sharing this send (PostgreSQL) still have messages on the
        wire. Waited for at most a lease, by the monotonic clock: a run that stalls
        longer has its rows turned unknown by the next run (and a clock fixed with
        ``--now`` never lets a lease run out)."""
        if self.ledger.exclusive:
            return False
        now = time.monotonic()
        if self.others_until is None:
            self.others_until = now + self.ledger.lease_seconds
        if now > self.others_until:
            return False
        if now - self.others_seen >= OTHERS_POLL:  # the workers share one look
            self.others_seen = now
            self.others_busy = self.ledger.others_in_flight()
        return self.others_busy

    async def _nap(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stopping():
            await asyncio.sleep(min(0.1, end - time.monotonic()))


class _Steps:
    """Every connection's record-and-claim requests of one turn of the event loop, in
    one transaction (a group commit): each connection still records its results and
    claims its next message before that message goes, for a fraction of a commit.

    On SQLite the transaction runs right here, in the event loop, once the turn's
    callbacks have run; on PostgreSQL in a thread, while the next turn's requests
    gather for the following one.
    """

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.loop = asyncio.get_running_loop()
        self.queue: list[tuple[list[tuple[Claimed, Result]], int, asyncio.Future[Any]]] = []
        self.scheduled = False
        self.busy = False  # a transaction is running in a thread
        self.failure: BaseException | None = None
        self.refusals: set[asyncio.Task[None]] = set()

    def request(
        self, done: list[tuple[Claimed, Result]], want: int
    ) -> asyncio.Future[tuple[list[Claimed], int]]:
        """Record ``done`` and claim up to ``want`` rows: (rows, skipped in that step)."""
        if self.failure is not None:
            raise self.failure
        future: asyncio.Future[tuple[list[Claimed], int]] = self.loop.create_future()
        self.queue.append((done, want, future))
        if not self.scheduled and not self.busy:
            self.scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _call(self, batch: list[Any]) -> Callable[[], Any]:
        run = self.run
        return functools.partial(
            run.ledger.steps,
            [(done, want) for done, want, _ in batch],
            max_attempts=max(1, run.settings.max_attempts),
            backoff=BACKOFF_SECONDS,
            reserve=RESERVE_BLOCK,
        )

    def _flush(self) -> None:
        self.scheduled = False
        if not self.queue or self.busy:
            return
        batch, self.queue = self.queue, []
        if self.run.inline_db:
            try:
                result = self._call(batch)()
            except Exception as exc:
                self._fail(batch, exc)
                return
            self._finish(batch, result)
            return
        self.busy = True
        running = self.loop.run_in_executor(None, self._call(batch))
        running.add_done_callback(lambda done: self._threaded(batch, done))

    def _threaded(self, batch: list[Any], done: asyncio.Future[Any]) -> None:
        self.busy = False
        if done.cancelled():
            self._fail(batch, asyncio.CancelledError())
        elif done.exception() is not None:
            self._fail(batch, done.exception())  # type: ignore[arg-type]
        else:
            self._finish(batch, done.result())
        if self.queue and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)

    def _fail(self, batch: list[Any], exc: BaseException) -> None:
        for _, _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _finish(self, batch: list[Any], result: Any) -> None:
        counts, shares, skipped = result
        run = self.run
        for (_, _, future), share in zip(batch, shares, strict=True):
            if not future.done():
                future.set_result((share, skipped))
        if skipped:
            run._count("skipped", skipped)
        outcomes = [outcome for done, _, _ in batch for outcome in done]
        if outcomes:
            refused = run._noted(outcomes, counts)
            if refused:  # the bounce policy, in a thread, beside the send
                task = self.loop.create_task(self._refusals(refused))
                self.refusals.add(task)
                task.add_done_callback(self.refusals.discard)

    async def _refusals(self, refused: list[tuple[str, Result]]) -> None:
        try:
            await self.run._refusals(refused)
        except Exception as exc:  # the bounce policy failed: stop the send
            self.failure = exc
            self.run.halted = True

    async def settle(self) -> None:
        """Wait for the bounce policy's work still running."""
        while self.refusals:
            await asyncio.gather(*self.refusals)
        if self.failure is not None:
            raise self.failure


class _Feed:
    """A streaming sender's source of messages (:class:`digest.send.sender.Feed`):
    the ledger, through the run's group-committed steps."""

    def __init__(self, run: _Run) -> None:
        from digest.render import Recipient  # deferred, as in preflight

        self.run = run
        self.rows: dict[int, Claimed] = {}  # id(message) -> its row, until its result
        self.limited = False
        self.recipient = Recipient

    def _rows(self, done: Done) -> list[tuple[Claimed, Result]]:
        return [(self.rows.pop(id(message)), result) for message, result in done]

    async def next(self, done: Done) -> OutgoingMessage | None:
        run = self.run
        rows = self._rows(done)
        if rows and not run._may_defer(rows):
            await run._record(rows)
            rows = []
        while True:
            if run.limit is not None and run.claimed >= run.limit:
                self.limited = True
            if run.stopping() or self.limited:
                if rows:
                    await run._record(rows)
                return None
            if run.bucket.rate > 0 or run.bucket.not_before > time.monotonic():
                await run.bucket.take(1)
            run.claimed += 1  # reserved while the claim runs; given back if none came
            assert run.steps is not None
            taken, skipped = await run.steps.request(rows, 1)
            rows = []
            if taken:
                return self._message(taken[0])
            run.claimed -= 1
            if not skipped:
                return None

    def _message(self, row: Claimed) -> OutgoingMessage:
        message = OutgoingMessage(
            row.subscriber_id,
            row.email,
            idempotency_key(self.run.ledger.issue, row.subscriber_id),
            name=row.name,
            builder=self.run.builder,
            recipient=self.recipient(row.subscriber_id, row.email, row.name),
        )
        self.rows[id(message)] = row
        return message

    async def record(self, done: Done) -> None:
        rows = self._rows(done)
        if rows:
            await self.run._record(rows)

    def release(self, messages: list[OutgoingMessage]) -> None:
        ids = [self.rows.pop(id(m)).subscriber_id for m in messages if id(m) in self.rows]
        self.run.ledger.release(ids)


# -- test copies, statistics, retries ------------------------------------------------------


@dataclass
class TestResult:
    address: str
    state: str
    detail: str


def send_test(
    ws: Workspace, issue: Issue | date | str | None, addresses: list[str]
) -> list[TestResult]:
    """A ``[TEST]`` copy to each address, subscriber or not; nothing goes in the ledger."""
    from digest.message import MessageBuilder  # deferred, as in preflight
    from digest.render import Recipient, prepare

    target = resolve_issue(ws, issue)
    builder = MessageBuilder.for_workspace(ws, prepare(ws, target))
    messages = []
    for raw in addresses:
        address = normalise(raw)
        # An id of its own for every copy, so each has a Message-ID never used before:
        # a mailbox drops a message whose Message-ID it has seen (an earlier proof).
        copy = f"test-{secrets.token_hex(8)}"
        recipient = Recipient(copy, address, "")
        messages.append(
            OutgoingMessage(
                copy,
                address,
                f"digest-{target.slug}-{copy}",
                builder=builder,
                recipient=recipient,
                test=True,
            )
        )

    async def go() -> list[Result]:
        async with open_sender(ws, target.slug, test=True) as sender:
            size = max(1, sender.batch_size)
            chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
            lanes = asyncio.Semaphore(max(1, sender.parallel))

            async def one(chunk: list[OutgoingMessage]) -> list[Result]:
                async with lanes:
                    return await sender.send(chunk)

            results = await asyncio.gather(*(one(c) for c in chunks))
            return [r for chunk in results for r in chunk]

    results = asyncio.run(go())
    return [
        TestResult(m.email, r.state, r.provider_id if r.state == ACCEPTED else r.reason)
        for m, r in zip(messages, results, strict=True)
    ]


def delivery_stats(ws: Workspace, issue: Issue | date | str | None) -> dict[str, Any]:
    """Counts per state, the rate of the sends so far, failures grouped by reason;
    without an issue, those of the last send (see :func:`sent_issue`)."""
    target = sent_issue(ws, issue)
    with open_store(ws) as store:
        ledger = DeliveryLedger(store, target.slug)
        counts = ledger.counts()
        first, last, audience = ledger.timing()
        problems = ledger.failures()
        bounced = issue_summary(store, target.slug)
    rate = 0.0
    if first and last and first != last:
        span = (
            datetime.fromisoformat(last.replace("Z", "+00:00"))
            - datetime.fromisoformat(first.replace("Z", "+00:00"))
        ).total_seconds()
        rate = counts["sent"] / span if span > 0 else 0.0
    return {
        "issue": target.slug,
        "status": target.status,
        "audience": audience,
        "counts": counts,
        "first_sent_at": first,
        "last_sent_at": last,
        "rate_per_second": round(rate, 1),
        "problems": [{"state": s, "reason": r, "count": n} for s, r, n in problems],
        "bounces": {k: bounced[k] for k in ("hard", "soft", "complaints", "mailbox_unsubscribes")},
    }


def retry(
    ws: Workspace,
    issue: Issue | date | str | None,
    include_unknown: bool = False,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    stop_event: StopFlag | None = None,
) -> SendReport:
    """Put deferred rows and transient failures (and unknown rows, when asked) back in
    line, then send them; ``report.reset`` says how many of each went back. Without an
    issue, the one whose send started last (see :func:`sent_issue`)."""
    target = sent_issue(ws, issue)
    with open_store(ws) as store, send_lock(store, target.slug) as exclusive:
        ledger = DeliveryLedger(store, target.slug)
        if not ledger.frozen():
            raise SendError(
                f"issue {target.slug} has not been sent yet: nothing to retry; "
                f"send it with `digest send {target.slug}`"
            )
        # Rows a killed run left in flight are unknown first, so --include-unknown takes them.
        recovered = ledger.recover(exclusive=exclusive)
        reset = ledger.retry(include_unknown=include_unknown)
    if any(reset.values()) and target.status == "sent":
        target.status = "sending"
        save_issue(target)
    report = run_send(ws, target, on_progress=on_progress, stop_event=stop_event)
    report.reset = reset
    report.recovered_unknown += recovered
    return report


def bounce_warning(ws: Workspace, issue: Issue) -> str:
    """A warning when the issue sent before this one bounced or drew complaints too often."""
    with open_store(ws) as store:
        return send_warning(store, issue.slug)


def audience_size(ws: Workspace, issue: Issue) -> tuple[int, bool]:
    """The audience to mail: the frozen count once frozen (True), else today's count."""
    with open_store(ws) as store:
        ledger = DeliveryLedger(store, issue.slug)
        if ledger.frozen():
            return ledger.timing()[2], True
        return audience_count(store), False
