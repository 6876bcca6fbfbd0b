"""The default sender: one .eml file per message in ``outbox/ISSUE/``.

Nothing leaves the machine. A file is named after the subscriber id (never
the address, which may be erased later) and written atomically, so writing
it twice leaves one file: the outbox is idempotent, and a message left
unknown by a crash is simply written again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from digest.atomic import write_bytes
from digest.send.sender import OutgoingMessage, Result, Sender
from digest.workspace import outbox_file_name

file_name = outbox_file_name  # erasure finds the files by the same rule


class OutboxSender(Sender):
    idempotent = True
    batch_size = 100
    parallel = 1

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"outbox {folder}"

    async def send(self, batch: list[OutgoingMessage]) -> list[Result]:
        return await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[OutgoingMessage]) -> list[Result]:
        self.folder.mkdir(parents=True, exist_ok=True)
        results = []
        for message in batch:
            path = self.folder / file_name(message.subscriber_id)
            write_bytes(path, message.wire, mode=0o600)
            results.append(Result.accepted(path.name))
        return results
