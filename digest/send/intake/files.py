"""`digest bounces ingest`: report messages from a file, a folder or standard input.

Made for an MTA that hands each message to a command (Postfix ``pipe(8)``, an
``.forward`` or ``/etc/aliases`` pipe) and for mail saved by hand:

* ``-``: one message (or an mbox) on standard input;
* a Maildir (a folder with ``cur/``, ``new/`` and ``tmp/``): every message in it;
* an mbox file (starting with ``From ``): every message in it;
* any other file: one message; any other folder: each file in it as one message.

Nothing is moved or deleted: a report read twice changes nothing the second time.
"""

from __future__ import annotations

import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path

from digest.errors import DigestError
from digest.send.intake.reader import IntakeReport, Reader, tokens_for
from digest.store import Store


def ingest(store: Store, target: str, *, delivered_to: str = "") -> IntakeReport:
    """Read every message ``target`` holds and apply the policy to what each reports."""
    reader = Reader(store, tokens_for(store), "file")
    report = IntakeReport()
    for where, raw in messages(target):
        try:
            report.add(reader.process(raw, delivered_to=delivered_to))
        except DigestError as exc:
            report.problems.append(f"{where}: {exc}")
    return report


def messages(target: str) -> Iterator[tuple[str, bytes]]:
    """(where, raw bytes) of each message in ``target``; a clear error if it is unreadable."""
    if target == "-":
        data = sys.stdin.buffer.read()
        if data.startswith(b"From "):
            yield from _mbox_bytes(data)
        else:
            yield "<stdin>", data
        return
    path = Path(target)
    try:
        if path.is_dir():
            if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
                box = mailbox.Maildir(path, factory=None, create=False)
                for key in sorted(box.keys()):
                    yield f"{path}/{key}", box.get_bytes(key)
                return
            for item in sorted(p for p in path.iterdir() if p.is_file()):
                yield str(item), item.read_bytes()
            return
        with path.open("rb") as handle:
            head = handle.read(5)
        if head == b"From ":
            box_file = mailbox.mbox(path, create=False)
            try:
                for index, key in enumerate(box_file.keys(), 1):
                    yield f"{path} message {index}", box_file.get_bytes(key)
            finally:
                box_file.close()
            return
        yield str(path), path.read_bytes()
    except FileNotFoundError:
        raise DigestError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise DigestError(f"{path}: cannot read ({exc.strerror})") from None


def _mbox_bytes(data: bytes) -> Iterator[tuple[str, bytes]]:
    chunks = data.split(b"\nFrom ")
    for index, chunk in enumerate(chunks, 1):
        text = chunk if index == 1 else b"From " + chunk
        _, _, body = text.partition(b"\n")  # drop the mbox "From " line
        yield f"<stdin> message {index}", body.replace(b"\n>From ", b"\nFrom ")
