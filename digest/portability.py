"""The whole list, written for another tool to import (GDPR Art. 20, portability).

``digest subscribers export --all -o FILE [--format F]``:

==========  ==================================================================
csv         our own columns (what ``digest subscribers import`` reads): id,
            email, name, status, consented_at, source, created_at, then
            policy_version, ip, confirmed_at, confirm_ip, opted_out_at, reason
            and the attributes as one JSON object; formulas neutralised
json        one JSON array of the first seven columns
mailchimp   a zip laid out as Mailchimp exports an audience, one CSV per
            status: subscribed_… (active), unsubscribed_… (unsubscribed,
            complained, blocked), cleaned_… (bounced), nonsubscribed_…
            (pending); OPTIN_TIME/OPTIN_IP and CONFIRM_TIME/CONFIRM_IP hold
            the consent, UNSUB_TIME/CLEAN_TIME the opt-out. Mailchimp imports
            one CSV at a time, with the status its name says.
listmonk    listmonk's own export columns, in up to three files, one per
            import mode of listmonk: FILE (subscribe, confirmed),
            FILE.unconfirmed.csv (subscribe, unconfirmed) and
            FILE.blocklist.csv (blocklist). listmonk keeps no consent fields,
            so the consent times and IPs go into the attributes, under
            ``consent``. Exporting again to the same name removes the
            companion files the new export has nobody for.
==========  ==================================================================

Every person exported gets one ``exported`` event naming the file, in the
same transaction that renames the files into place: no export without its
record, no record without the files (written beside their final names first,
mode 600). Erased readers are left out; the files are remembered so that an
erasure later takes its reader out of them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from sqlalchemy import Connection, select

from digest import consent
from digest.consent import Draft
from digest.errors import SubscriberError
from digest.people.rights import remember_list_export
from digest.roster import COLUMNS, Row, neutralise, rows
from digest.store import Store, schema

FORMATS = ("csv", "json", "mailchimp", "listmonk")
SUFFIXES = {"csv": ".csv", "json": ".json", "mailchimp": ".zip", "listmonk": ".csv"}
CSV_COLUMNS = (
    *COLUMNS,
    "policy_version",
    "ip",
    "confirmed_at",
    "confirm_ip",
    "opted_out_at",
    "reason",
    "attributes",
)
_PAGE = 1000
SPAM = "The emails are spam and should be reported"  # Mailchimp's own unsubscribe reason
BY_ADMIN = "N/A (Unsubscribed by an admin)"
GO_ZERO = "0001-01-01 00:00:00 +0000 UTC"  # how listmonk writes a missing time

events_t = schema.consent_events
evidence_t = schema.consent_evidence
subs_t = schema.subscribers
supp_t = schema.suppressions

_CONSENT_KINDS = (
    "signup_requested",
    "resubscribed",
    "confirmed",
    "imported",
    "admin_added",
    "unsubscribed",
    "bounced",
    "complained",
)


class Facts(NamedTuple):
    """What the ledger proves about one person's consent, as the formats write it."""

    consented_at: str = ""
    ip: str = ""
    confirmed_at: str = ""
    confirm_ip: str = ""
    policy_version: str = ""
    opted_out_at: str = ""
    reason: str = ""
    suppressed: str = ""  # the suppression's reason ("" when not suppressed)
    attributes: dict[str, Any] | None = None

    @property
    def status_word(self) -> str:
        """An opt-out as the formats name it: blocked (an operator's or a tool's block)."""
        return "blocked" if self.suppressed in ("admin", "blocked") else ""


class Person(NamedTuple):
    row: Row
    facts: Facts


def format_of(path: Path, fmt: str | None) -> str:
    """The format asked for, or the one the file's suffix names; refused when they differ."""
    suffix = path.suffix.lower()
    if fmt is None:
        fmt = {".csv": "csv", ".json": "json", ".zip": "mailchimp"}.get(suffix)
        if fmt is None:
            raise SubscriberError(
                f"{path}: the export file must end in .csv, .json or .zip (Mailchimp's); "
                "name it so, or say --format"
            )
    if fmt not in FORMATS:
        raise SubscriberError(f"--format {fmt!r}: pick one of {', '.join(FORMATS)}")
    if suffix != SUFFIXES[fmt]:
        raise SubscriberError(f"{path}: a {fmt} export is a {SUFFIXES[fmt]} file")
    return fmt


def people(store: Store, status: str | None) -> Iterator[Person]:
    """Every subscriber (or those with ``status``) not erased, with their consent facts."""
    page: list[Row] = []
    texts = {t.id: t.version for t in consent.texts(store).values()}
    for row in rows(store, status):
        if row.email is None:
            continue  # erased: nothing left to export
        page.append(row)
        if len(page) >= _PAGE:
            yield from _with_facts(store, page, texts)
            page = []
    yield from _with_facts(store, page, texts)


def _with_facts(store: Store, page: list[Row], texts: dict[int, str]) -> Iterator[Person]:
    if not page:
        return
    ids = [row.id for row in page]
    found: dict[str, dict[str, Any]] = {i: {} for i in ids}
    with store.read() as conn:
        for subject, attributes, reason, since in conn.execute(
            select(subs_t.c.id, subs_t.c.attributes, supp_t.c.reason, supp_t.c.created_at)
            .select_from(subs_t.outerjoin(supp_t, supp_t.c.key == subs_t.c.email_key))
            .where(subs_t.c.id.in_(ids))
        ):
            facts = found[subject]
            facts["attributes"] = json.loads(attributes) if attributes != "{}" else {}
            if reason:
                facts["suppressed"], facts["suppressed_at"] = reason, since
        for subject, kind, at, policy, body in conn.execute(
            select(
                events_t.c.subject_id,
                events_t.c.kind,
                events_t.c.occurred_at,
                events_t.c.policy_id,
                evidence_t.c.body,
            )
            .select_from(events_t.outerjoin(evidence_t, evidence_t.c.seq == events_t.c.seq))
            .where(events_t.c.subject_id.in_(ids), events_t.c.kind.in_(_CONSENT_KINDS))
            .order_by(events_t.c.seq)
        ):
            _read_event(found[subject], kind, at, texts.get(policy, ""), body)
    for row in page:
        facts = found[row.id]
        since = facts.pop("suppressed_at", "")
        untimed = facts.pop("untimed", False)  # the old tool gave no time: none is made up
        if since and not facts.get("opted_out_at") and not untimed:
            facts["opted_out_at"] = since  # suppressed without an event saying when: the list's
        if row.status == "pending":  # asked, never given: no consent time to pass on
            facts["consented_at"] = facts["confirmed_at"] = ""
        yield Person(row, Facts(**facts))


def _read_event(facts: dict[str, Any], kind: str, at: str, policy: str, body: str | None) -> None:
    """What one event says about the consent, over what earlier ones said."""
    evidence = json.loads(body) if body else {}
    if kind == "imported":
        facts.update(
            consented_at=str(evidence.get("consented_at") or ""),
            ip=str(evidence.get("optin_ip") or evidence.get("ip") or ""),
            confirmed_at=str(evidence.get("confirmed_at") or ""),
            confirm_ip=str(evidence.get("confirm_ip") or ""),
            policy_version=policy,
        )
        if evidence.get("status") not in (None, "active", "pending"):
            facts["opted_out_at"] = str(evidence.get("opted_out_at") or "")
            facts["untimed"] = not facts["opted_out_at"]
            facts["reason"] = str(evidence.get("reason") or "")
    elif kind in ("signup_requested", "resubscribed"):
        facts.update(
            consented_at=at,
            ip=str(evidence.get("ip") or ""),
            confirmed_at="",
            confirm_ip="",
            policy_version=policy,
        )
    elif kind == "confirmed":
        facts.update(confirmed_at=at, confirm_ip=str(evidence.get("ip") or ""))
        if not facts.get("consented_at"):  # imported pending, or added unconfirmed
            facts["consented_at"] = at
        facts["policy_version"] = policy
    elif kind == "admin_added":
        facts.update(consented_at=at if evidence.get("confirmed") else "", policy_version=policy)
    else:  # an opt-out: here, or at the old tool (a newer export's, with its time if any)
        if "opted_out_at" in evidence:
            facts["opted_out_at"] = str(evidence["opted_out_at"] or "")
        else:
            facts["opted_out_at"] = at
        facts["untimed"] = not facts["opted_out_at"]
        facts["reason"] = str(evidence.get("reason") or kind)


def export_list(
    store: Store, path: Path, *, fmt: str | None, status: str | None, operator: str
) -> tuple[int, list[Path]]:
    """Write every subscriber (or those with ``status``) in ``fmt``, record an ``exported``
    event for each, and return how many and the files written."""
    fmt = format_of(path, fmt)
    if not path.parent.is_dir():
        raise SubscriberError(f"{path.parent}: no such folder; create it or pick another -o")
    scope = f"status {status}" if status else "all subscribers"
    writer = _WRITERS[fmt](path, store)
    count = 0
    try:
        evidence = {"file": path.name, "format": fmt, "scope": scope, "operator": operator}
        with store.begin() as conn:
            consent.lock_head(conn, store.dialect)  # as every ledger writer does, first
            ids: list[str] = []
            for person in people(store, status):
                writer.write(person)
                count += 1
                ids.append(person.row.id)
                if len(ids) >= _PAGE:
                    _record(conn, store, ids, operator, evidence)
                    ids = []
            _record(conn, store, ids, operator, evidence)
            written = writer.finish()
            for temporary, final in written:
                os.replace(temporary, final)
            for old in writer.stale():  # or the tool would import them with the new ones
                old.unlink(missing_ok=True)
            for _, final in written:
                remember_list_export(store, final)
    finally:
        writer.discard()
    return count, [final for _, final in written]


def _record(
    conn: Connection, store: Store, ids: list[str], operator: str, evidence: dict[str, str]
) -> None:
    """One ``exported`` event per subscriber, under the pseudonym their events carry."""
    if not ids:
        return
    found = conn.execute(select(subs_t.c.id, subs_t.c.email_key).where(subs_t.c.id.in_(ids)))
    keys = {str(i): str(k) for i, k in found}
    drafts = [Draft("exported", i, keys[i], "admin", operator, evidence) for i in ids]
    consent.append(conn, store, drafts)


# -- the files --------------------------------------------------------------------


class _Files:
    """Files written beside their final names, renamed into place by :func:`export_list`."""

    def __init__(self) -> None:
        self.open: list[tuple[Path, Path, TextIO]] = []

    def create(self, final: Path) -> TextIO:
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        handle = open(fd, "w", encoding="utf-8", newline="")  # closed by close() or discard()
        self.open.append((temporary, final, handle))
        return handle

    def close(self) -> list[tuple[Path, Path]]:
        done = []
        for temporary, final, handle in self.open:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            done.append((temporary, final))
        return done

    def discard(self) -> None:
        for temporary, _, handle in self.open:
            if not handle.closed:
                handle.close()
            temporary.unlink(missing_ok=True)


class _Format:
    def __init__(self, path: Path, store: Store) -> None:
        self.path = path
        self.files = _Files()

    def write(self, person: Person) -> None:
        raise NotImplementedError

    def finish(self) -> list[tuple[Path, Path]]:
        return self.files.close()

    def stale(self) -> list[Path]:
        """Files of an earlier export to the same name that this one does not write."""
        return []

    def discard(self) -> None:
        self.files.discard()


class _Csv(_Format):
    """Our own columns, formulas neutralised (a person opens it in a spreadsheet)."""

    def __init__(self, path: Path, store: Store) -> None:
        super().__init__(path, store)
        self.csv = csv.writer(self.files.create(path))
        self.csv.writerow(CSV_COLUMNS)

    def write(self, person: Person) -> None:
        row, facts = person.row, person.facts
        status = facts.status_word or row.status
        cells = [
            row.id,
            row.email,
            row.name,
            status,
            row.consented_at if row.status != "pending" else "",
            row.source,
            row.created_at,
            facts.policy_version,
            facts.ip,
            facts.confirmed_at,
            facts.confirm_ip,
            facts.opted_out_at,
            facts.reason,
            consent.canonical(facts.attributes) if facts.attributes else "",
        ]
        self.csv.writerow([neutralise(str(v or "")) for v in cells])


class _Json(_Format):
    def __init__(self, path: Path, store: Store) -> None:
        super().__init__(path, store)
        self.handle = self.files.create(path)
        self.handle.write("[")
        self.first = True

    def write(self, person: Person) -> None:
        self.handle.write(("\n" if self.first else ",\n") + json.dumps(person.row.as_dict()))
        self.first = False

    def finish(self) -> list[tuple[Path, Path]]:
        self.handle.write("\n]\n" if not self.first else "]\n")
        return super().finish()


def _mailchimp_time(stamp: str) -> str:
    return f"{stamp[:10]} {stamp[11:19]}" if stamp else ""


def _split(name: str | None) -> tuple[str, str]:
    first, _, last = (name or "").partition(" ")
    return first, last


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_MAILCHIMP_OWN = {
    "email_address",
    "first_name",
    "last_name",
    "email_type",
    "member_rating",
    "optin_time",
    "optin_ip",
    "confirm_time",
    "confirm_ip",
    "tags",
    "notes",
}


class _Mailchimp(_Format):
    """A zip of one CSV per status, as Mailchimp's own audience export."""

    def __init__(self, path: Path, store: Store) -> None:
        super().__init__(path, store)
        self.tag = path.stem
        self.merge = sorted(
            name
            for name in _attribute_names(store)
            if name.lower().replace(" ", "_") not in _MAILCHIMP_OWN
        )
        head = ["Email Address", "First Name", "Last Name", *self.merge]
        tail = ["OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP"]
        self.headers = {
            "subscribed": [*head, *tail, "TAGS", "NOTES"],
            "nonsubscribed": [*head, *tail, "TAGS", "NOTES"],
            "unsubscribed": [
                *head,
                *tail,
                "UNSUB_TIME",
                "UNSUB_CAMPAIGN_TITLE",
                "UNSUB_CAMPAIGN_ID",
                "UNSUB_REASON",
                "UNSUB_REASON_OTHER",
                "TAGS",
                "NOTES",
            ],
            "cleaned": [
                *head,
                *tail,
                "CLEAN_TIME",
                "CLEAN_CAMPAIGN_TITLE",
                "CLEAN_CAMPAIGN_ID",
                "TAGS",
                "NOTES",
            ],
        }
        self.parts = {name: io.StringIO(newline="") for name in self.headers}
        self.writers = {name: csv.writer(buffer) for name, buffer in self.parts.items()}
        for name, writer in self.writers.items():
            writer.writerow(self.headers[name])
        self.spill: dict[str, Path] = {}
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def write(self, person: Person) -> None:
        row, facts = person.row, person.facts
        attributes = facts.attributes or {}
        first, last = _split(row.name)
        cells = [
            row.email,
            first,
            last,
            *[_cell(attributes.get(n, "")) for n in self.merge],
            _mailchimp_time(facts.consented_at),
            facts.ip,
            _mailchimp_time(facts.confirmed_at),
            facts.confirm_ip,
        ]
        tags, notes = _cell(attributes.get("tags", "")), _cell(attributes.get("notes", ""))
        if facts.suppressed or row.status in ("unsubscribed", "bounced", "complained"):
            if row.status == "bounced":
                part = "cleaned"
                cells += [_mailchimp_time(facts.opted_out_at), facts.reason, ""]
            else:
                part = "unsubscribed"
                if row.status == "complained":
                    why, other = SPAM, ""
                elif facts.status_word == "blocked":
                    why, other = BY_ADMIN, facts.reason
                else:
                    why, other = ("Other", facts.reason) if facts.reason else ("N/A", "")
                cells += [_mailchimp_time(facts.opted_out_at), "", "", why, other]
        else:
            part = "subscribed" if row.status == "active" else "nonsubscribed"
        self.writers[part].writerow([*cells, tags, notes])
        buffer = self.parts[part]
        if buffer.tell() > 1 << 20:  # keep memory flat: spill to a temporary file
            self._spill(part)

    def _spill(self, part: str) -> None:
        spill = self.spill.get(part)
        if spill is None:
            spill = self.spill[part] = self.path.with_name(
                f".{self.path.name}.{part}.{os.getpid()}.tmp"
            )
        with spill.open("a", encoding="utf-8", newline="") as handle:
            handle.write(self.parts[part].getvalue())
        self.parts[part].seek(0)
        self.parts[part].truncate()

    def finish(self) -> list[tuple[Path, Path]]:
        temporary = self.temporary
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for part, buffer in self.parts.items():
                member = f"{part}_members_export_{self.tag}.csv"
                with archive.open(member, "w") as out:
                    spill = self.spill.get(part)
                    if spill is not None:
                        with spill.open("rb") as handle:
                            while chunk := handle.read(1 << 20):
                                out.write(chunk)
                    out.write(buffer.getvalue().encode("utf-8"))
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        self._unspill()
        return [(temporary, self.path)]

    def _unspill(self) -> None:
        for spill in self.spill.values():
            spill.unlink(missing_ok=True)
        self.spill.clear()

    def discard(self) -> None:
        self._unspill()
        self.temporary.unlink(missing_ok=True)


def _go_time(stamp: str) -> str:
    return f"{stamp[:10]} {stamp[11:26]} +0000 UTC" if stamp else GO_ZERO


class _Listmonk(_Format):
    """listmonk's export columns, one file per import mode of listmonk."""

    HEADER = ("uuid", "email", "name", "attributes", "status", "created_at", "updated_at")

    def __init__(self, path: Path, store: Store) -> None:
        super().__init__(path, store)
        stem = path.name[: -len(path.suffix)]
        self.paths = {
            "confirmed": path,
            "unconfirmed": path.with_name(f"{stem}.unconfirmed.csv"),
            "blocklist": path.with_name(f"{stem}.blocklist.csv"),
        }
        self.writers: dict[str, Any] = {}
        self._open("confirmed")

    def stale(self) -> list[Path]:
        return [p for mode, p in self.paths.items() if mode not in self.writers and p.exists()]

    def _open(self, mode: str) -> Any:
        writer = self.writers.get(mode)
        if writer is None:
            writer = self.writers[mode] = csv.writer(self.files.create(self.paths[mode]))
            writer.writerow(self.HEADER)
        return writer

    def write(self, person: Person) -> None:
        row, facts = person.row, person.facts
        proof = {
            "consented_at": facts.consented_at,
            "ip": facts.ip,
            "confirmed_at": facts.confirmed_at,
            "confirm_ip": facts.confirm_ip,
            "policy_version": facts.policy_version,
            "opted_out_at": facts.opted_out_at,
            "reason": facts.reason,
            "status": row.status if row.status in ("bounced", "complained") else "",
        }
        attributes = {**(facts.attributes or {}), "consent": {k: v for k, v in proof.items() if v}}
        opted_out = bool(facts.suppressed) or row.status not in ("active", "pending")
        mode = "confirmed" if row.status == "active" else "unconfirmed"
        if opted_out:
            mode = "blocklist"
        self._open(mode).writerow(
            [
                row.id,
                row.email,
                row.name or "",
                consent.canonical(attributes),
                "blocklisted" if opted_out else "enabled",
                _go_time(facts.consented_at),
                _go_time(facts.opted_out_at or facts.consented_at),
            ]
        )


_WRITERS: dict[str, type[_Format]] = {
    "csv": _Csv,
    "json": _Json,
    "mailchimp": _Mailchimp,
    "listmonk": _Listmonk,
}


def _attribute_names(store: Store) -> list[str]:
    """Every attribute name any subscriber has: the columns a fixed-header format needs."""
    names: set[str] = set()
    with store.read() as conn:
        for (attributes,) in conn.execute(
            select(subs_t.c.attributes).where(subs_t.c.attributes != "{}")
        ):
            names.update(json.loads(attributes))
    return sorted(names)


__all__ = ["CSV_COLUMNS", "FORMATS", "Facts", "Person", "export_list", "people"]
