"""`digest bounces fetch`: reports waiting in an IMAP mailbox (``[bounces.imap]``).

Every message in the folder is read (``BODY.PEEK[]``, so nothing is marked
read before it is processed), the policy applied to what it reports, and
then it is moved to ``move_to`` (created when missing) or deleted, as
``after`` says; a message whose processing failed stays where it was. The
mailbox should be digest's own (the return path's, or the unsubscribe
address's): everything in the folder is taken.
"""

from __future__ import annotations

import imaplib
import re
import ssl

from digest.config import Imap
from digest.errors import ConfigError, DigestError, SendError
from digest.send.intake.reader import IntakeReport, Reader, tokens_for
from digest.store import Store


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
        for uid in uids:
            status, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
            if status != "OK" or raw is None:
                report.problems.append(f"{where}: message {uid.decode()} could not be read")
                continue
            try:
                report.add(reader.process(raw))
            except DigestError as exc:
                report.problems.append(f"{where}: message {uid.decode()}: {exc}")
                continue
            done.append(uid)
        if done:
            _finish(client, settings, done, where)
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
    message_set = b",".join(uids).decode()
    if settings.after == "move":
        client.create(_quote(settings.move_to))  # "already exists" is fine
        capabilities = {c.upper() for c in client.capabilities}
        if "MOVE" in capabilities:
            _ok(client.uid("MOVE", message_set, _quote(settings.move_to)), where, "move")
            return
        _ok(client.uid("COPY", message_set, _quote(settings.move_to)), where, "copy")
    _ok(client.uid("STORE", message_set, "+FLAGS", r"(\Deleted)"), where, "delete")
    client.expunge()


def _ok(answer: tuple[str, object], where: str, what: str) -> None:
    if answer[0] != "OK":
        raise SendError(f"{where}: the IMAP server would not {what} ({answer[1]!r})")


def _quote(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
