"""A sender that builds each message and throws it away: for benchmarks and rehearsals."""

from __future__ import annotations

from digest.send.sender import OutgoingMessage, Result, Sender


class NullSender(Sender):
    name = "null (messages are built and discarded)"
    idempotent = True
    batch_size = 500
    parallel = 1

    def __init__(self, *, build: bool = True) -> None:
        self.build = build
        self.sent = 0
        self.bytes = 0

    async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
        if self.build:
            for message in batch:
                self.bytes += len(message.wire)
        self.sent += len(batch)
        return [Result.accepted() for _ in batch]
