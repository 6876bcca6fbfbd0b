"""What digest holds about one person, and their rights over it.

:func:`show` is the operator's view of a subscriber and their consent
history; :func:`export` gives the person all of it (GDPR Art. 15/20) and
:func:`erase` deletes it (Art. 17), including the files digest wrote for
them: the outbox copies, the export files on record (the exports record,
``exports_record`` of the workspace) and their row in whole-list exports.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from digest import clock, consent
from digest.atomic import write_text
from digest.errors import SubscriberError
from digest.people.record import (
    Subscriber,
    append_event,
    is_suppressed,
    key_suppressed,
    lookup,
    require,
    suppress_key,
    write_transaction,
)
from digest.store import Store, schema, stamp
from digest.workspace import outbox_file_name

subs_t = schema.subscribers


def history(store: Store, subscriber: Subscriber) -> list[consent.Event]:
    with store.read() as conn:
        return consent.history(conn, subscriber.id)


def show(store: Store, email_or_id: str) -> dict[str, Any]:
    """A subscriber and their whole consent history, for the operator who asked."""
    sub = lookup(store, email_or_id)
    texts = consent.texts(store)
    return {
        "subscriber": _profile(sub),
        "suppressed": is_suppressed(store, sub.id),
        "events": [_event_dict(event, texts) for event in history(store, sub)],
    }


def _profile(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "created_at": sub.created_at,
        "attributes": sub.attributes,
    }


def _event_dict(event: consent.Event, texts: dict[int, consent.Text]) -> dict[str, Any]:
    statement, policy = texts[event.statement_id], texts[event.policy_id]
    return {
        "seq": event.seq,
        "at": event.occurred_at,
        "event": event.kind,
        "method": event.method,
        "source": event.source,
        "statement": {
            "version": statement.version,
            "text": statement.body,
            "sha256": statement.sha256,
        },
        "policy": {"version": policy.version, "url": policy.url, "sha256": policy.sha256},
        "evidence": event.evidence,
        "evidence_sha256": event.evidence_sha256,
        "hash": event.hash,
    }


RETENTION = {
    "consent events": "kept for as long as we must prove consent (GDPR Art. 7(1)); they name you "
    "only by a random id and a keyed pseudonym of your address",
    "evidence": "kept with the events to prove consent; deleted when you ask for erasure",
    "profile": "kept while you are subscribed, to send the newsletter; deleted on erasure",
    "suppression entry": "after an unsubscribe by bounce or complaint, or an erasure, a keyed hash "
    "of your address is kept so that it is never mailed again by accident",
}


def export(store: Store, email_or_id: str, *, source: str) -> dict[str, Any]:
    """Everything held about one subscriber (GDPR Art. 15/20); records ``exported``."""
    sub = lookup(store, email_or_id)
    with write_transaction(store) as conn:
        append_event(conn, store, sub, "exported", method="admin", source=source, evidence={})
    data = show(store, sub.id)
    return {
        "exported_at": stamp(clock.now()),
        "newsletter": store.workspace.config.newsletter.name,
        "profile": data["subscriber"],
        "suppressed": data["suppressed"],
        "consent_events": data["events"],
        "deliveries": [],  # filled by the deliveries ledger once sending exists
        "retention": RETENTION,
    }


def export_to_file(store: Store, email_or_id: str, path: Path, *, source: str) -> Path:
    """:func:`export` written to ``path`` (mode 600), remembered so that erasure deletes it."""
    data = export(store, email_or_id, source=source)
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=0o600)
    record = store.workspace.exports_record
    written = _exports(record)
    paths = written.setdefault(data["profile"]["id"], [])
    if str(path.resolve()) not in paths:
        paths.append(str(path.resolve()))
    write_text(record, json.dumps(written, indent=1) + "\n", mode=0o600)
    return path


LIST_EXPORTS = "*"  # the key of the exports record under which whole-list exports are kept


def remember_list_export(store: Store, path: Path) -> None:
    """Note a whole-list export, so that erasing anyone in it rewrites it without them."""
    record = store.workspace.exports_record
    written = _exports(record)
    paths = written.setdefault(LIST_EXPORTS, [])
    if str(path.resolve()) not in paths:
        paths.append(str(path.resolve()))
    write_text(record, json.dumps(written, indent=1) + "\n", mode=0o600)


def _without(path: Path, subscriber_id: str) -> bool:
    """Rewrite a whole-list export (CSV with an ``id`` column, or a JSON array of
    objects with ``id``) without one subscriber's row; whether the row was there."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        rows = json.loads(text)
        kept = [row for row in rows if row.get("id") != subscriber_id]
        if len(kept) == len(rows):
            return False
        body = (
            "[" + ",\n".join("\n" + json.dumps(row) for row in kept) + ("\n]\n" if kept else "]\n")
        )
    else:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        kept = [row for row in rows if not row or row[0].lstrip("'") != subscriber_id]
        if len(kept) == len(rows):
            return False
        out = io.StringIO(newline="")
        csv.writer(out).writerows(kept)
        body = out.getvalue()
    write_text(path, body, mode=0o600)
    return True


def _exports(record: Path) -> dict[str, list[str]]:
    try:
        loaded = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SubscriberError(
            f"{record}: cannot read the record of export files ({exc}); "
            "fix or delete it (it lists files `subscribers export -o` wrote)"
        ) from None
    return loaded if isinstance(loaded, dict) else {}


def _erase_files(store: Store, subscriber_id: str) -> tuple[list[str], list[str]]:
    """Delete what digest wrote for one subscriber under the workspace.

    The outbox copies (every issue's folder and ``outbox/confirmations``,
    named by id), the export files on record, and their row in whole-list
    exports. Returns the deleted paths
    (relative to the workspace) and the exports outside it, left for the
    operator to delete.
    """
    ws = store.workspace
    root = ws.root.resolve()
    deleted: list[str] = []
    outside: list[str] = []
    candidates: list[Path] = []
    if ws.outbox_dir.is_dir():
        name = outbox_file_name(subscriber_id)
        candidates += [
            folder / name for folder in sorted(ws.outbox_dir.iterdir()) if folder.is_dir()
        ]
    record = ws.exports_record
    written = _exports(record)
    for text in written.pop(subscriber_id, []):
        path = Path(text)
        if path.is_relative_to(root):
            candidates.append(path)
        elif path.exists():
            outside.append(text)
    for path in candidates:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(path.resolve().relative_to(root).as_posix())
    for text in written.get(LIST_EXPORTS, []):
        path = Path(text)
        if not path.exists():
            continue
        if not path.is_relative_to(root):
            outside.append(text)
        elif _without(path, subscriber_id):
            deleted.append(f"{path.relative_to(root).as_posix()} (their row)")
    if record.exists():
        write_text(record, json.dumps(written, indent=1) + "\n", mode=0o600)
    return deleted, outside


def erase(store: Store, email_or_id: str, *, source: str) -> dict[str, Any]:
    """Erase a subscriber (GDPR Art. 17) and return a receipt of what went and what stayed.

    Deleted: address, name, attributes and every piece of evidence. Kept: the
    pseudonymous consent events (the chain still verifies) and a suppression
    entry holding only the keyed hash, so the address is never re-added.
    On SQLite the file is then checkpointed and truncated so no old copy of
    the address survives in the WAL; ``secure_delete`` zeroes freed space.
    """
    sub = lookup(store, email_or_id)
    if sub.status == "erased":
        raise SubscriberError(f"subscriber {sub.id} is already erased")
    with write_transaction(store) as conn:
        row = require(conn, sub.id)
        key = row.email_key
        append_event(conn, store, row, "erased", method="admin", source=source, evidence={})
        seqs = select(consent.events_t.c.seq).where(consent.events_t.c.subject_id == sub.id)
        deleted = conn.execute(
            consent.evidence_t.delete().where(consent.evidence_t.c.seq.in_(seqs))
        )
        events = len(conn.execute(seqs).all())
        # Bounce reports keep counting, but no longer say whose domain or reply they were.
        reports_t = schema.bounce_reports
        conn.execute(
            reports_t.update()
            .where(reports_t.c.subscriber_id == sub.id)
            .values(reason="", domain="")
        )
        if key is not None and not key_suppressed(conn, key):
            suppress_key(conn, key, "erased")
        conn.execute(
            subs_t.update()
            .where(subs_t.c.id == sub.id)
            .values(
                email=None,
                email_key=None,
                name=None,
                attributes="{}",
                status="erased",
                updated_at=stamp(clock.now()),
            )
        )
    _scrub(store)
    files, outside = _erase_files(store, sub.id)
    return {
        "subscriber": sub.id,
        "erased_at": stamp(clock.now()),
        "deleted": {
            "address": True,
            "name": sub.name is not None,
            "attributes": len(sub.attributes),
            "evidence records": deleted.rowcount,
            "files": files,
        },
        "kept": {
            "files outside the workspace": outside,
            "consent events": f"{events} pseudonymous events (random id and keyed hash only), "
            "so the ledger still verifies",
            "suppression entry": "a keyed hash of the address: never mailed or imported again",
        },
    }


def _scrub(store: Store) -> None:
    """Leave no old copy of erased data in the database files."""
    if store.dialect == "sqlite":
        raw = store.engine.raw_connection()  # outside any transaction
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    else:
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM subscribers, consent_evidence")
