"""`digest bounces fetch`: reports waiting in an IMAP mailbox (``[bounces.imap]``).

Every message in the folder is read (``BODY.PEEK[]``, so nothing is marked
read before it is processed), the policy applied to what it reports, and
then it is moved to ``move_to`` (created when missing) or deleted, as
``after`` says. A message over the size cap (its RFC822.SIZE, checked before it
is fetched), too deeply nested, or that breaks the reader is recorded as refused
and moved to ``digest-rejected``, so it never stops a later run. When the
database fails half way, what was read is still moved, and the rest waits for
the next run. The mailbox should be digest's own (the return path's, or the
unsubscribe address's): everything in the folder is taken.
"""

from __future__ import annotations

import hashlib
import imaplib
import re
import ssl

from digest.config import Imap
from digest.errors import ConfigError, SendError
from digest.send.intake.reader import IntakeReport, Reader, tokens_for
from digest.send.intake.reports import MAX_REPORT_BYTES
from digest.store import Store

REJECTED_FOLDER = "digest-rejected"


def fetch(store: Store, *, ssl_context: ssl.SSLContext | None = None) -> IntakeReport:
    settings = store.workspace.config.bounces.imap
    if not settings.host:
        raise ConfigError(
            f"{store.workspace.config_path}: [bounces.imap] host is empty; set the mailbox "
            "that receives bounce reports (see docs/bounces.md)"
        )
    config = store.workspace.config
    user = config.secret(settings.username_env, "the bounce mailbox's user name")
    password = config.secret(settings.password_env, "the bounce mailbox's password")
    reader = Reader(store, tokens_for(store), "mailbox")
    report = IntakeReport()
    where = f"{settings.host}:{settings.port}"
    client = _connect(settings, where, ssl_context)
    try:
        _ok(client.login(user, password), where, "log in")
        status, data = client.select(_quote(settings.folder))
        if status != "OK":
            raise SendError(f"{where}: no folder {settings.folder!r}; check [bounces.imap] folder")
        _, found = client.uid("SEARCH", "ALL")
        uids = found[0].split() if found and found[0] else []
        done: list[bytes] = []
        rejected: list[bytes] = []
        try:
            for uid in uids:
                size = _size(client, uid)
                if size is not None and size > MAX_REPORT_BYTES:
                    # Never fetched: only its size is known, so its digest is the message's
                    # place in this mailbox.
                    digest = hashlib.sha256(f"{where}/{settings.folder}/{uid!r}".encode())
                    reader.refuse(
                        report, f"message {uid.decode()}", digest.hexdigest(), f"{size} bytes"
                    )
                    rejected.append(uid)
                    continue
                status, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
                if status != "OK" or raw is None:
                    report.problems.append(f"{where}: message {uid.decode()} could not be read")
                    continue
                if reader.take(report, f"message {uid.decode()}", raw):
                    done.append(uid)
                else:
                    rejected.append(uid)
        finally:
            # What was read is moved even when the database stops the run half way.
            if done:
                _finish(client, settings, done, where)
            if rejected:
                _move(client, rejected, REJECTED_FOLDER, where)
        client.close()
        client.logout()
    except imaplib.IMAP4.error as exc:
        raise SendError(f"{where}: the IMAP server refused ({exc}); check [bounces.imap]") from None
    except OSError as exc:
        raise SendError(f"{where}: IMAP connection failed ({exc})") from None
    finally:
        try:
            client.shutdown()
        except OSError:
            pass
    return report


def _connect(settings: Imap, where: str, context: ssl.SSLContext | None) -> imaplib.IMAP4:
    try:
        if settings.security == "tls":
            return imaplib.IMAP4_SSL(
                settings.host, settings.port, ssl_context=context, timeout=settings.timeout
            )
        client = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
        if settings.security == "starttls":
            client.starttls(ssl_context=context)
        elif settings.host not in ("127.0.0.1", "localhost", "::1"):
            client.shutdown()
            raise ConfigError(
                f'[bounces.imap] security = "none" is allowed only for a loopback host, not '
                f"{settings.host!r}; use tls or starttls"
            )
        return client
    except (OSError, imaplib.IMAP4.error) as exc:
        raise SendError(
            f"{where}: cannot connect to the IMAP server ({exc}); check [bounces.imap] host, "
            "port and security"
        ) from None


def _finish(client: imaplib.IMAP4, settings: Imap, uids: list[bytes], where: str) -> None:
    """Move (or delete) the processed messages."""
    if settings.after == "move":
        _move(client, uids, settings.move_to, where)
        return
    message_set = b",".join(uids).decode()
    _ok(client.uid("STORE", message_set, "+FLAGS", r"(\Deleted)"), where, "delete")
    client.expunge()


def _move(client: imaplib.IMAP4, uids: list[bytes], folder: str, where: str) -> None:
    message_set = b",".join(uids).decode()
    client.create(_quote(folder))  # "already exists" is fine
    capabilities = {c.upper() for c in client.capabilities}
    if "MOVE" in capabilities:
        _ok(client.uid("MOVE", message_set, _quote(folder)), where, "move")
        return
    _ok(client.uid("COPY", message_set, _quote(folder)), where, "copy")
    _ok(client.uid("STORE", message_set, "+FLAGS", r"(\Deleted)"), where, "delete")
    client.expunge()


def _size(client: imaplib.IMAP4, uid: bytes) -> int | None:
    """The message's size as the server gives it (RFC822.SIZE), before fetching it."""
    status, data = client.uid("FETCH", uid.decode(), "(RFC822.SIZE)")
    if status != "OK":
        return None
    for item in data:
        text = item.decode("ascii", "replace") if isinstance(item, bytes) else ""
        found = re.search(r"RFC822\.SIZE (\d+)", text)
        if found:
            return int(found.group(1))
    return None


def _ok(answer: tuple[str, object], where: str, what: str) -> None:
    if answer[0] != "OK":
        raise SendError(f"{where}: the IMAP server would not {what} ({answer[1]!r})")


def _quote(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
