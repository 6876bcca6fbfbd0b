"""`digest bounces ingest`: report messages from a file, a folder or standard input.

Made for an MTA that hands each message to a command (Postfix ``pipe(8)``, an
``.forward`` or ``/etc/aliases`` pipe) and for mail saved by hand:

* ``-``: one message (or an mbox) on standard input;
* a Maildir (a folder with ``cur/``, ``new/`` and ``tmp/``): every message in it;
* an mbox file (starting with ``From ``): every message in it;
* any other file: one message; any other folder: each file in it as one message.

Everything is read as a stream: a message over the size cap
(:data:`~digest.send.intake.reports.MAX_REPORT_BYTES`) is hashed and refused without
being held in memory. A message that cannot be read is recorded as refused and the
run goes on; only the database (busy, locked, down) stops it, with a
:class:`~digest.errors.StoreError` (the CLI exits 75, so an MTA tries again).

Nothing is moved or deleted: a report read twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from digest.errors import DigestError
from digest.send.intake.reader import IntakeReport, Reader, tokens_for
from digest.send.intake.reports import MAX_REPORT_BYTES
from digest.store import Store

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Incoming:
    """One message as read: its bytes (None when over the cap), digest and size."""

    where: str
    raw: bytes | None
    sha256: str
    size: int


def ingest(store: Store, target: str, *, delivered_to: str = "") -> IntakeReport:
    """Read every message ``target`` holds and apply the policy to what each reports."""
    reader = Reader(store, tokens_for(store), "file")
    report = IntakeReport()
    for message in messages(target):
        if message.raw is None:
            reader.refuse(
                report, message.where, message.sha256, f"{message.size} bytes, over the cap"
            )
            continue
        reader.take(report, message.where, message.raw, delivered_to=delivered_to)
    return report


def messages(target: str) -> Iterator[Incoming]:
    """Each message in ``target``; a clear error if it is unreadable."""
    if target == "-":
        yield from _stream(sys.stdin.buffer, "<stdin>")
        return
    path = Path(target)
    try:
        if path.is_dir():
            if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
                files = sorted(p for sub in ("new", "cur") for p in (path / sub).iterdir())
            else:
                files = sorted(p for p in path.iterdir())
            for item in files:
                if item.is_file() and not item.name.startswith("."):
                    with item.open("rb") as handle:
                        yield _one(handle, str(item))
            return
        with path.open("rb") as handle:
            yield from _stream(handle, str(path))
    except FileNotFoundError:
        raise DigestError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise DigestError(f"{path}: cannot read ({exc.strerror})") from None


def _stream(handle: BinaryIO, where: str) -> Iterator[Incoming]:
    """An mbox (it starts with ``From ``) message by message, or one message."""
    head = handle.read(5)
    if head == b"From ":
        yield from _mbox(_lines(head, handle), where)
    else:
        yield _one(handle, where, head)


def _one(handle: BinaryIO, where: str, head: bytes = b"") -> Incoming:
    digest = hashlib.sha256(head)
    kept = bytearray(head)
    size = len(head)
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if size <= MAX_REPORT_BYTES:
            kept += chunk
    return Incoming(
        where, bytes(kept) if size <= MAX_REPORT_BYTES else None, digest.hexdigest(), size
    )


def _lines(head: bytes, handle: BinaryIO) -> Iterator[bytes]:
    """The lines of ``head`` + the rest of ``handle``, each at most one chunk long."""
    first = head + handle.readline(_CHUNK)
    if first:
        yield first
    while line := handle.readline(_CHUNK):
        yield line


def _mbox(lines: Iterable[bytes], where: str) -> Iterator[Incoming]:
    """mbox (mboxo) messages: a ``From `` line starts each; ``>From `` is unquoted."""
    index = 0
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    started = False
    previous_blank = True
    for line in lines:
        if line.startswith(b"From ") and previous_blank:
            if started:
                index += 1
                yield _finish(where, index, kept, digest, size)
            started, digest, kept, size = True, hashlib.sha256(), bytearray(), 0
            previous_blank = False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        if line.startswith(b">From "):
            line = line[1:]
        digest.update(line)
        size += len(line)
        if size <= MAX_REPORT_BYTES:
            kept += line
    if started:
        yield _finish(where, index + 1, kept, digest, size)


def _finish(where: str, index: int, kept: bytearray, digest: object, size: int) -> Incoming:
    hexdigest = digest.hexdigest()  # type: ignore[attr-defined]
    raw = bytes(kept) if size <= MAX_REPORT_BYTES else None
    return Incoming(f"{where} message {index}", raw, hexdigest, size)
