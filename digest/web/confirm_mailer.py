"""The public form's confirmation emails leave from one worker thread, never the event loop.

``POST /subscribe`` (and ``/resubscribe``) hands every outcome to
:meth:`ConfirmationMailer.submit`, a sign-up to mail or ``None``, the same
step whatever happened, and answers at once. The worker builds the email from
a template inlined once per process (:class:`digest.confirmation.Template`:
no premailer run per sign-up), DKIM-signs it and sends it through the
configured sender on an event loop of its own. So what an email costs is
paid off the server's loop, and a request on another connection takes as
long whether or not a sign-up is being mailed.

The hourly cap (``[web] confirmations_per_hour``) counts the emails the
worker hands to the sender, not the posts: the form refuses everyone (503)
only once that many emails went out in the last hour, and an email that
would pass the cap meanwhile is dropped and logged.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from digest import confirmation
from digest.addresses import mask
from digest.message import dkim_signer
from digest.web.public_guard import RateLimiter
from digest.workspace import Workspace

log = logging.getLogger("digest.web.confirmations")

MAX_WAITING = 1000  # sign-ups waiting for the worker; past that they are dropped and logged
_STOP = object()


@dataclass(frozen=True)
class Job:
    """One confirmation email to send."""

    subscriber_id: str
    email: str
    name: str


class ConfirmationMailer:
    """One worker thread, started on the first sign-up, mailing confirmations in order.

    ``confirm_url`` makes a subscriber's confirmation link; ``cap`` is the
    hourly cap of the whole form (key ``"all"``).
    """

    def __init__(self, ws: Workspace, cap: RateLimiter, confirm_url: Callable[[str], str]) -> None:
        self.ws = ws
        self.cap = cap
        self.confirm_url = confirm_url
        self.template = confirmation.Template(ws)
        self.sign = dkim_signer(ws)  # a bad [dkim] key stops the server now, not a sign-up later
        self._jobs: queue.Queue[object] = queue.Queue(MAX_WAITING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Job | None) -> None:
        """Hand one sign-up's outcome to the worker: a :class:`Job`, or None (nothing to send)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="digest-confirmations", daemon=True
                )
                self._thread.start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            if job is not None:
                log.warning(
                    "confirmation to %s dropped: %s sign-ups are waiting already",
                    mask(job.email),
                    MAX_WAITING,
                )

    def drain(self) -> None:
        """Wait until every sign-up handed over so far has been dealt with."""
        if self._thread is not None:
            self._jobs.join()

    def close(self, timeout: float = 30.0) -> None:
        """Send what is waiting, then stop the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join(timeout)

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while True:
                job = self._jobs.get()
                try:
                    if job is _STOP:
                        return
                    self._handle(loop, job)
                except Exception:  # one bad sign-up never stops the others
                    log.exception("the confirmation worker failed on one sign-up")
                finally:
                    _settle(loop)
                    self._jobs.task_done()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            _settle(loop)
            loop.close()

    def _handle(self, loop: asyncio.AbstractEventLoop, job: object) -> None:
        # Whatever the outcome, the first one pays for inlining the template.
        self.template.prepare()
        if not isinstance(job, Job):
            return
        if self.cap.retry_after("all"):
            log.warning(
                "confirmation to %s not sent: %s confirmation emails went out this hour",
                mask(job.email),
                self.cap.per_minute,
            )
            return
        loop.run_until_complete(
            confirmation.send_quietly(
                self.ws,
                job.subscriber_id,
                job.email,
                job.name,
                self.confirm_url(job.subscriber_id),
                template=self.template,
                sign=self.sign,
            )
        )


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """Run what a finished send left scheduled on the worker's loop.

    This loop runs only while a sign-up is being mailed. A connection closed
    at the end of a send (on any path, an error's included) releases its
    socket on the loop's next turn; without these turns an idle worker would
    hold a half-closed socket until the next sign-up, or for ever.
    """
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
