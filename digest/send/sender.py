"""The one small interface every sender implements, shaped like an httpx transport.

A :class:`Sender` takes a batch of :class:`OutgoingMessage` and answers one
:class:`Result` per message, in order: accepted (with the provider's message
id), transient (worth retrying, maybe after ``retry_after`` seconds),
permanent (never retried for that recipient) or unknown (the message may or
may not have gone; only an operator re-sends it). A problem that concerns the
whole send rather than a message (bad credentials, a TLS failure, a server
that cannot be reached) raises :class:`~digest.errors.SendError` naming
host:port, and the engine stops at once. A problem with one message's data
(an address the server cannot take, a value that breaks its encoding) is
that message's permanent result, never an exception: nothing from one
recipient may stop a send.

Messages are lazy: an SMTP sender reads ``wire`` (the complete RFC 5322
bytes) and never builds the parts; an HTTP API reads ``parts`` and never
builds the bytes. A message made from the issue's ``builder`` and a
``recipient`` carries both, so an HTTP API can splice its request body from
pieces encoded once per issue (digest.send.splice) instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from digest.addresses import mask, mask_all

if TYPE_CHECKING:
    from digest.message import MessageBuilder, MessageParts
    from digest.render import Recipient

ACCEPTED = "accepted"
TRANSIENT = "transient"
PERMANENT = "permanent"
UNKNOWN = "unknown"


class OutgoingMessage:
    """One message to one recipient; its bytes and parts are built only when read.

    Either ``wire``/``parts`` (values, or functions making them) or a
    ``builder`` and a ``recipient`` (the issue's MessageBuilder builds them).
    """

    __slots__ = (
        "subscriber_id",
        "email",
        "name",
        "key",
        "builder",
        "recipient",
        "test",
        "_wire",
        "_parts",
        "_readdress",
    )

    def __init__(
        self,
        subscriber_id: object,
        email: str,
        key: str,
        *,
        wire: bytes | Callable[[], bytes] | None = None,
        parts: MessageParts | Callable[[], MessageParts] | None = None,
        name: str = "",
        builder: MessageBuilder | None = None,
        recipient: Recipient | None = None,
        test: bool = False,
        readdress: Callable[[str], OutgoingMessage] | None = None,
    ) -> None:
        self.subscriber_id = subscriber_id
        self.email = email
        self.name = name
        self.key = key
        self.builder = builder if recipient is not None else None
        self.recipient = recipient
        self.test = test
        self._wire = wire
        self._parts = parts
        self._readdress = readdress

    @property
    def wire(self) -> bytes:
        value = self._wire
        if value is None:
            if self.builder is None or self.recipient is None:
                raise TypeError("this message was made without wire bytes")
            value = self._wire = self.builder.build(self.recipient, test=self.test)
        elif not isinstance(value, bytes):
            value = self._wire = value()
        return value

    def readdressed(self, address: str) -> OutgoingMessage:
        """This message with the recipient's address written as ``address`` (its IDNA
        form, for a server or API without SMTPUTF8); itself for the same address."""
        if address == self.email:
            return self
        if self._readdress is not None:
            return self._readdress(address)
        if self.builder is None or self.recipient is None:
            raise TypeError("this message cannot be rewritten for another address form")
        return OutgoingMessage(
            self.subscriber_id,
            address,
            self.key,
            name=self.name,
            builder=self.builder,
            recipient=dataclasses.replace(self.recipient, email=address),
            test=self.test,
        )

    @property
    def parts(self) -> MessageParts:
        value = self._parts
        if value is None:
            if self.builder is None or self.recipient is None:
                raise TypeError("this message was made without parts")
            value = self._parts = self.builder.parts(self.recipient, test=self.test)
        elif callable(value):
            value = self._parts = value()
        return value

    def __repr__(self) -> str:
        return f"<OutgoingMessage subscriber={self.subscriber_id} to={mask(self.email)}>"


@dataclass(frozen=True, slots=True)
class Result:
    state: str
    provider_id: str = ""
    reason: str = ""
    retry_after: float | None = None
    throttled: bool = False
    bounce: str = ""  # hard | soft: the refusal is a bounce (digest.bounces.classify)

    @classmethod
    def accepted(cls, provider_id: str = "") -> Result:
        return cls(ACCEPTED, provider_id=provider_id)

    @classmethod
    def transient(
        cls, reason: str, retry_after: float | None = None, *, throttled: bool = False
    ) -> Result:
        return cls(TRANSIENT, reason=mask_all(reason), retry_after=retry_after, throttled=throttled)

    @classmethod
    def permanent(cls, reason: str, *, bounce: str = "") -> Result:
        return cls(PERMANENT, reason=mask_all(reason), bounce=bounce)

    @classmethod
    def unknown(cls, reason: str) -> Result:
        return cls(UNKNOWN, reason=mask_all(reason))

    @property
    def ok(self) -> bool:
        return self.state == ACCEPTED


Done = list[tuple["OutgoingMessage", Result]]


class Feed(Protocol):
    """Where a streaming sender gets its messages and hands back their results.

    ``next(done)`` records ``done`` (results not yet recorded) and claims the
    next message, in one step, or says there is none (None): the engine's ledger
    then knows, before a message goes on the wire, every earlier result of that
    connection but those still on it. ``record`` records without claiming;
    ``release`` gives back messages that were claimed but never went out.
    """

    async def next(self, done: Done) -> OutgoingMessage | None: ...

    async def record(self, done: Done) -> None: ...

    def release(self, messages: list[OutgoingMessage]) -> None: ...


class Sender:
    """Base class: ``send`` a batch, ``aclose`` at the end; an async context manager.

    ``batch_size`` is how many messages one ``send`` call should carry (an API's
    batch endpoint, a few messages per SMTP connection turn); ``parallel`` is
    how many ``send`` calls the engine keeps in flight; ``idempotent`` says that
    sending the same messages again cannot deliver them twice (a file per
    subscriber, an API that honours an Idempotency-Key), so messages left
    unknown by a crash may be re-sent automatically.

    A sender that ``streams`` (SMTP) also offers :meth:`stream`: one connection's
    worth of messages taken one at a time from a :class:`Feed`, so the next
    message can follow the previous one on the wire before its reply is in
    (RFC 2920 pipelining) while the ledger still records each result.
    """

    name: str = "sender"
    bounce_source: str = "send"  # names the source of a refusal's bounce report
    batch_size: int = 1
    parallel: int = 1
    idempotent: bool = False
    streams: bool = False

    async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
        raise NotImplementedError

    async def stream(self, feed: Feed) -> None:
        """Send what ``feed`` gives on one connection until it gives nothing."""
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()
