"""The consent ledger: versioned consent texts and an append-only hash chain.

Every change in a subscriber's consent is one event. An event names its
subject by a random id and a keyed pseudonym of the address (never the
address), the method and source, the consent statement and privacy-policy
versions in force, and the SHA-256 of its evidence. The evidence itself (IP,
user agent, submitted fields, import row) sits in ``consent_evidence``, which
erasure deletes: the chain hashes only the evidence digest, so it still
verifies afterwards.

Each event's hash covers its fields and the previous event's hash, so an
edited, deleted, inserted or reordered event breaks the chain from there on;
:func:`verify` finds the first such sequence number and returns the head hash
to publish or keep elsewhere (a forger who rewrites the whole tail changes it).

Appends are serialised: ``SELECT … FOR UPDATE`` on the one ``chain_head`` row
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite; the chain never forks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from digest import clock
from digest.config import Config
from digest.errors import ConfigError, ConsentError
from digest.store import Store, schema, stamp, stream_rows
from digest.store.migrations import GENESIS_HASH

EVENT_KINDS = (
    "signup_requested",
    "confirmed",
    "unsubscribed",
    "resubscribed",
    "bounced",
    "complained",
    "imported",
    "admin_added",
    "exported",
    "erased",
)
# The events by which a reader gives consent, each under the statement they were shown
# (our form's, or an import's). Every other event of theirs (an unsubscribe, a bounce,
# an export) names the statement of their latest consent: it is no new agreement.
CONSENTING = ("signup_requested", "confirmed", "resubscribed", "imported", "admin_added")
METHODS = (
    "web_form",
    "one_click",
    "link",
    "import",
    "admin",
    "provider_webhook",
    "smtp_reply",  # a server refused the message during the send
    "provider_reply",  # an HTTP mail API refused the message during the send
    "bounce_report",  # a delivery report or complaint read from a mailbox or a file
    "mailto",  # a message to the reader's own List-Unsubscribe mailto: address
)

events_t = schema.consent_events
evidence_t = schema.consent_evidence
texts_t = schema.consent_texts
head_t = schema.chain_head

EVENT_COLUMNS = (
    "seq",
    "occurred_at",
    "kind",
    "subject_id",
    "pseudonym",
    "method",
    "source",
    "statement_id",
    "policy_id",
    "evidence_sha256",
    "prev_hash",
    "hash",
)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(data: Any) -> str:
    """The one JSON spelling hashed and stored for evidence."""
    return _CANONICAL.encode(data)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_hash(fields: Sequence[Any]) -> str:
    """The hash of an event: its first eleven columns (all but ``hash``) in order.

    The values are joined by NUL, which none of them can hold (:func:`append`
    removes it from the one free-text field, ``source``): unambiguous and
    cheap, for a million imported events hashed in one go.
    """
    return hashlib.sha256("\x00".join(map(str, fields)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Draft:
    """An event to append; the ledger fills in sequence, time, texts and hashes."""

    kind: str
    subject_id: str
    pseudonym: str
    method: str
    source: str
    evidence: dict[str, Any] = field(default_factory=dict)
    policy_version: str | None = None  # None: the version in force now


@dataclass(frozen=True)
class Event:
    seq: int
    occurred_at: str
    kind: str
    subject_id: str
    pseudonym: str
    method: str
    source: str
    statement_id: int
    policy_id: int
    evidence_sha256: str
    prev_hash: str
    hash: str
    evidence: dict[str, Any] | None = None  # None: erased (or never held)


# consent texts ----------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    id: int
    kind: str
    version: str
    body: str
    url: str
    sha256: str
    created_at: str
    language: str = ""  # a statement's BCP 47 tag; "" for a policy or an older statement


def _policy_sha(version: str, url: str, body: str = "") -> str:
    """A policy's digest: its version and URL, and its body (the date it was published,
    for a policy registered by hand) when it has one."""
    return sha256(f"{version}\n{url}" + (f"\n{body}" if body else ""))


def statement_id(conn: Connection, body: str, language: str) -> tuple[int, str]:
    """The id and version of the consent statement with this exact text in ``language``,
    recording it as the next version the first time. Call it with the chain head locked."""
    digest = statement_sha(language, body)
    found = conn.execute(
        select(texts_t.c.id, texts_t.c.version).where(
            texts_t.c.kind == "statement", texts_t.c.sha256 == digest
        )
    ).first()
    if found is not None:
        return int(found.id), str(found.version)
    count = len(conn.execute(select(texts_t.c.id).where(texts_t.c.kind == "statement")).all())
    version = str(count + 1)
    now = stamp(clock.now())
    return _insert_text(conn, "statement", version, body, "", digest, now, language), version


def statement_sha(language: str, body: str) -> str:
    """What a statement's row is known by: its text and the language it was shown in.

    Statements recorded before digest knew the language (``""``) hash their text alone.
    """
    return sha256(f"{language}\x00{body}") if language else sha256(body)


def texts_in_force(conn: Connection, config: Config) -> tuple[int, int]:
    """The ids of the statement and policy in ``config``, recording new versions once.

    A statement is its text in the newsletter's language: a changed text, or
    the same text in another language, is a new row with the next version
    number; an old row is never edited. Call it with the chain head locked
    (as :func:`append` does), so two processes cannot record one text twice.
    """
    statement_id_, _ = statement_id(conn, config.consent_statement, config.newsletter.language)
    now = stamp(clock.now())
    version, url = config.privacy.policy_version, config.privacy.policy_url
    policy_id = _text_id(conn, "policy", _policy_sha(version, url))
    if policy_id is None:
        policy_id = _insert_text(conn, "policy", version, "", url, _policy_sha(version, url), now)
    return statement_id_, policy_id


def _text_id(conn: Connection, kind: str, digest: str) -> int | None:
    return conn.execute(
        select(texts_t.c.id).where(texts_t.c.kind == kind, texts_t.c.sha256 == digest)
    ).scalar()


def _insert_text(
    conn: Connection,
    kind: str,
    version: str,
    body: str,
    url: str,
    digest: str,
    now: str,
    language: str = "",
) -> int:
    result = conn.execute(
        texts_t.insert().values(
            kind=kind,
            version=version,
            body=body,
            url=url,
            sha256=digest,
            created_at=now,
            language=language,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def policy_ids(conn: Connection) -> dict[str, int]:
    """Every known policy version -> the id of its latest recorded text."""
    rows = conn.execute(
        select(texts_t.c.version, texts_t.c.id)
        .where(texts_t.c.kind == "policy")
        .order_by(texts_t.c.id)
    )
    return {version: text_id for version, text_id in rows}


def texts(store: Store) -> dict[int, Text]:
    with store.read() as conn:
        return {row.id: Text(**row._mapping) for row in conn.execute(select(texts_t))}


def statements(store: Store) -> list[tuple[Text, int]]:
    """Every consent statement on record, oldest first, with how many events name it."""
    with store.read() as conn:
        counts: dict[int, int] = dict(
            conn.execute(
                select(events_t.c.statement_id, func.count()).group_by(events_t.c.statement_id)
            ).all()
        )
        rows = conn.execute(
            select(texts_t).where(texts_t.c.kind == "statement").order_by(texts_t.c.id)
        )
        return [(Text(**row._mapping), int(counts.get(row.id, 0))) for row in rows]


def policies(store: Store) -> list[Text]:
    """Every privacy-policy version on record, oldest first."""
    with store.read() as conn:
        rows = conn.execute(
            select(texts_t).where(texts_t.c.kind == "policy").order_by(texts_t.c.id)
        )
        return [Text(**row._mapping) for row in rows]


_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def add_policy(store: Store, version: str, url: str, published: str) -> Text:
    """Register an older privacy policy (one in force before digest kept the list), so that
    imports may name it (``--policy-version``). Its body is the date it was published.

    A version names one text: registering it again with the same URL and date changes
    nothing; with another, it is refused.
    """
    version, url, published = version.strip(), url.strip(), published.strip()
    if not version or len(version) > 64:
        raise ConsentError("a policy version is 1 to 64 characters, e.g. 2023-01 or listmonk-2023")
    if not re.match(r"https?://\S+$", url):
        raise ConsentError(f"--url {url!r} is not an http(s) URL: where the policy was published")
    if not _DATE.fullmatch(published):
        raise ConsentError(f"--published {published!r} is not a date (write e.g. 2023-01-15)")
    try:
        day = clock.parse_instant(published)
    except ConfigError:
        raise ConsentError(
            f"--published {published!r} is not a date (write e.g. 2023-01-15)"
        ) from None
    if day > clock.now():
        raise ConsentError(f"--published {published} is in the future")
    with store.begin() as conn:
        lock_head(conn, store.dialect)
        for row in conn.execute(
            select(texts_t).where(texts_t.c.kind == "policy", texts_t.c.version == version)
        ):
            if row.url == url and row.body in ("", published):
                return Text(**row._mapping)
            raise ConsentError(
                f"policy {version} is on record already, at {row.url or 'no URL'}"
                + (f", published {row.body}" if row.body else "")
                + "; a version names one text: register this one under another version"
            )
        text_id = _insert_text(
            conn,
            "policy",
            version,
            published,
            url,
            _policy_sha(version, url, published),
            stamp(clock.now()),
        )
        row = conn.execute(select(texts_t).where(texts_t.c.id == text_id)).one()
        return Text(**row._mapping)


# appending ----------------------------------------------------------------------


def lock_head(conn: Connection, dialect: str) -> tuple[int, str]:
    """Lock the chain head for this transaction; return its (seq, hash)."""
    query = select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1)
    if dialect == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one()
    return int(row.seq), str(row.hash)


def append(conn: Connection, store: Store, drafts: Iterable[Draft]) -> tuple[int, str]:
    """Append events in order inside the caller's write transaction; return the new head."""
    seq, prev = lock_head(conn, store.dialect)
    statement_id, current_policy = texts_in_force(conn, store.workspace.config)
    known = policy_ids(conn)
    now = stamp(clock.now())
    rows: list[tuple[Any, ...]] = []
    evidence_rows: list[tuple[int, str]] = []
    drafts = list(drafts)
    agreed = _agreed_statements(conn, [d.subject_id for d in drafts if d.kind not in CONSENTING])
    for draft in drafts:
        if draft.kind not in EVENT_KINDS or draft.method not in METHODS:
            raise ConsentError(f"unknown consent event {draft.kind!r} by method {draft.method!r}")
        if "\x00" in draft.subject_id or "\x00" in draft.pseudonym:
            raise ConsentError("a subject id or pseudonym cannot hold a NUL character")
        if draft.policy_version is None:
            policy_id = current_policy
        elif draft.policy_version in known:
            policy_id = known[draft.policy_version]
        else:
            raise ConsentError(
                f"privacy policy version {draft.policy_version!r} is unknown; "
                f"known: {', '.join(sorted(known))}"
            )
        seq += 1
        body = canonical(draft.evidence)
        source = draft.source.replace("\x00", "")  # PostgreSQL text cannot hold NUL
        fields = (
            seq,
            now,
            draft.kind,
            draft.subject_id,
            draft.pseudonym,
            draft.method,
            source,
            agreed.get(draft.subject_id, statement_id),
            policy_id,
            sha256(body),
            prev,
        )
        prev = event_hash(fields)
        rows.append((*fields, prev))
        evidence_rows.append((seq, body))
    _write_events(conn, store, rows, evidence_rows, seq, prev)
    return seq, prev


def _agreed_statements(conn: Connection, subjects: Sequence[str]) -> dict[str, int]:
    """The statement of each subject's latest consenting event (:data:`CONSENTING`)."""
    found: dict[str, tuple[int, int]] = {}
    unique = list(dict.fromkeys(subjects))
    for start in range(0, len(unique), 500):
        rows = conn.execute(
            select(events_t.c.subject_id, events_t.c.seq, events_t.c.statement_id).where(
                events_t.c.subject_id.in_(unique[start : start + 500]),
                events_t.c.kind.in_(CONSENTING),
            )
        )
        for subject, seq, statement in rows:
            if subject not in found or seq > found[subject][0]:
                found[subject] = (seq, statement)
    return {subject: statement for subject, (_, statement) in found.items()}


def append_many(
    conn: Connection,
    store: Store,
    kind: str,
    method: str,
    source: str,
    items: Iterable[tuple[str, str, int, str]],
    statement: int | None = None,
) -> tuple[int, str]:
    """Append many events of one kind, method and source: the fast path for imports.

    ``items`` are ``(subject_id, pseudonym, policy_id, evidence)`` with the
    evidence already spelled by :func:`canonical` and ``policy_id`` a known
    policy text; ``statement`` is the id of the consent statement they name
    (:func:`statement_id`; the one in force when None). The events and hashes
    are exactly those :func:`append` would write (each hash is
    :func:`event_hash` of the same eleven fields), built in one loop with the
    fields that do not change joined once. Subject ids and pseudonyms come
    from digest itself (URL-safe base64 and hex): no NUL.
    """
    if kind not in EVENT_KINDS or method not in METHODS:
        raise ConsentError(f"unknown consent event {kind!r} by method {method!r}")
    seq, prev = lock_head(conn, store.dialect)
    statement_id, _ = texts_in_force(conn, store.workspace.config)
    if statement is not None:
        statement_id = statement
    now = stamp(clock.now())
    source = source.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    middle = f"\x00{now}\x00{kind}\x00"
    tails: dict[int, str] = {}
    sha = hashlib.sha256
    rows: list[tuple[Any, ...]] = []
    evidence_rows: list[tuple[int, str]] = []
    for subject_id, pseudonym, policy_id, body in items:
        seq += 1
        tail = tails.get(policy_id)
        if tail is None:
            tail = tails[policy_id] = (
                f"\x00{method}\x00{source}\x00{statement_id}\x00{policy_id}\x00"
            )
        body_sha = sha(body.encode("utf-8")).hexdigest()
        digest = sha(
            f"{seq}{middle}{subject_id}\x00{pseudonym}{tail}{body_sha}\x00{prev}".encode()
        ).hexdigest()
        rows.append(
            (
                seq,
                now,
                kind,
                subject_id,
                pseudonym,
                method,
                source,
                statement_id,
                policy_id,
                body_sha,
                prev,
                digest,
            )
        )
        evidence_rows.append((seq, body))
        prev = digest
    _write_events(conn, store, rows, evidence_rows, seq, prev)
    return seq, prev


def _write_events(
    conn: Connection,
    store: Store,
    rows: Sequence[tuple[Any, ...]],
    evidence_rows: Sequence[tuple[int, str]],
    seq: int,
    head: str,
) -> None:
    """Store chained events with their evidence and move the chain head past them."""
    if not rows:
        return
    bulk_insert(conn, store.dialect, "consent_events", EVENT_COLUMNS, rows)
    bulk_insert(conn, store.dialect, "consent_evidence", ("seq", "body"), evidence_rows)
    conn.execute(head_t.update().where(head_t.c.id == 1).values(seq=seq, hash=head))


def bulk_insert(
    conn: Connection,
    dialect: str,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Insert many rows fast: one executemany on SQLite, COPY on PostgreSQL."""
    if not rows:
        return
    names = ", ".join(columns)
    driver = conn.connection.driver_connection  # the same transaction, minus SQLAlchemy per row
    assert driver is not None
    if dialect == "postgresql":
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in columns)
        driver.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


# reading --------------------------------------------------------------------------


def history(conn: Connection, subject_id: str) -> list[Event]:
    """A subject's events in order, with the evidence still held."""
    query = (
        select(events_t, evidence_t.c.body)
        .select_from(events_t.outerjoin(evidence_t, evidence_t.c.seq == events_t.c.seq))
        .where(events_t.c.subject_id == subject_id)
        .order_by(events_t.c.seq)
    )
    return [
        Event(
            **{name: row._mapping[name] for name in EVENT_COLUMNS},
            evidence=json.loads(row.body) if row.body is not None else None,
        )
        for row in conn.execute(query)
    ]


# verifying ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str = ""
    mismatches: list[str] = field(default_factory=list)  # tables that disagree with the ledger


# The status each event leaves a subject in (None: unchanged). It mirrors the
# subscriber lifecycle in digest.people.changes, which writes these events; an
# ``admin_added`` subject is active or pending by its evidence's "confirmed", and
# an ``imported`` one has the "status" its evidence names (active when none:
# a reader imported as pending or opted out elsewhere has one).
STATUS_AFTER: dict[str, str | None] = {
    "signup_requested": "pending",
    "confirmed": "active",
    "unsubscribed": "unsubscribed",
    "resubscribed": "pending",
    "bounced": "bounced",
    "complained": "complained",
    "imported": "active",
    "admin_added": None,
    "exported": None,
    "erased": "erased",
}
SUPPRESSED = ("bounced", "complained", "erased")  # statuses that must be on the suppression list
MAX_MISMATCHES = 1000
_UNKNOWN = "active or pending"  # admin_added whose evidence is gone
MAILABLE = ("active", "pending")


_UNKNOWN_IMPORT = "as imported"  # imported, its evidence gone: any status may follow

# The evidence is read only where the status depends on it: an admin_added event,
# and an imported one whose evidence names a status (most imports name none).
_BY_SUBJECT = """
SELECT e.subject_id, e.seq, e.kind, e.pseudonym, v.seq IS NOT NULL,
       CASE WHEN e.kind = 'admin_added' THEN v.body
            WHEN e.kind = 'imported' AND v.body LIKE '%"status":%' THEN v.body END
FROM consent_events e LEFT JOIN consent_evidence v ON v.seq = e.seq
ORDER BY e.subject_id{collate}, e.seq
"""
_SUBSCRIBERS = "SELECT id, status, email, email_key FROM subscribers ORDER BY id{collate}"
CHANGED_AFTER = "(the address was changed after they consented)"


def _replay(events: Iterable[Any]) -> tuple[str, str, list[int]]:
    """One subject's events in order -> (status they lead to, pseudonym, seqs without evidence)."""
    status, pseudonym, missing = _UNKNOWN, "", []
    for row in events:
        _, seq, kind, pseudonym, held, body = row  # every event of a subject has its pseudonym
        after = STATUS_AFTER.get(kind)
        if kind == "admin_added":
            if body is None:
                after = _UNKNOWN
            else:
                after = "active" if json.loads(body).get("confirmed") else "pending"
        elif kind == "imported":
            if not held:
                after = _UNKNOWN_IMPORT
            elif body is not None:
                after = str(json.loads(body).get("status") or "active")
        if after is not None:
            status = after
        if not held:
            missing.append(seq)
    return status, pseudonym, missing


def _stream(conn: Connection, dialect: str, sql: str, batch_size: int) -> Iterator[Any]:
    """Rows of ``sql`` in code-point order of ids, ``batch_size`` at a time (flat memory)."""
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""
    return stream_rows(conn, sql.format(collate=collate), batch_size)


def address_problem(
    pseudonym: str, email: str | None, email_key: str | None, key_of: Callable[[str], str]
) -> str:
    """Why a subscriber's row does not hold the address their consent events name ("": it does).

    The events name the reader by a keyed pseudonym of the address they
    consented with; the row's ``email_key`` must be that pseudonym, and its
    ``email`` the address that key is made from (``key_of``: the store's keyed
    hash of a case-folded address), so an address swapped in the table is
    never mailed on someone else's consent.
    """
    if email_key != pseudonym:
        return f"the address key is not the pseudonym its consent events name {CHANGED_AFTER}"
    if email is None or key_of(email.casefold()) != email_key:
        return f"the address is not the one its key was made from {CHANGED_AFTER}"
    return ""


def _compare(
    conn: Connection, dialect: str, batch_size: int, key_of: Callable[[str], str]
) -> list[str]:
    """Every disagreement between the events and the subscribers and suppressions tables.

    Both tables are read in subject order and merged, so memory stays flat
    however many subscribers there are; only the suppressed subjects are kept
    until their suppression entries are looked up.
    """
    found: list[str] = []
    suppressed: list[tuple[str, str, str]] = []  # (subject, status, pseudonym)
    rows = _stream(conn, dialect, _SUBSCRIBERS, batch_size)
    row = next(rows, None)
    events = _stream(conn, dialect, _BY_SUBJECT, batch_size)
    for subject, group in itertools.groupby(events, key=operator.itemgetter(0)):
        while row is not None and row[0] < subject:
            found.append(f"subscriber {row[0]}: has a subscriber row but no consent events")
            row = next(rows, None)
        expected, pseudonym, missing = _replay(group)
        if row is None or row[0] != subject:
            found.append(f"subscriber {subject}: has consent events but no subscriber row")
            continue
        _, status, email, email_key = row
        row = next(rows, None)
        if (
            status != expected
            and not (expected == _UNKNOWN and status in MAILABLE)
            and expected != _UNKNOWN_IMPORT
        ):
            found.append(f"subscriber {subject}: status is {status}, the ledger says {expected}")
        if expected == "erased":
            if email is not None or email_key is not None:
                found.append(f"subscriber {subject}: erased in the ledger but holds an address")
        else:
            problem = address_problem(pseudonym, email, email_key, key_of)
            if problem:
                found.append(f"subscriber {subject}: {problem}")
        if expected != "erased":
            found.extend(
                f"subscriber {subject}: the evidence of event {seq} is missing "
                "(only an erasure deletes evidence)"
                for seq in missing
            )
        if expected in SUPPRESSED:
            suppressed.append((subject, expected, pseudonym))
    while row is not None:
        found.append(f"subscriber {row[0]}: has a subscriber row but no consent events")
        row = next(rows, None)
    keys = schema.suppressions.c.key
    for start in range(0, len(suppressed), 500):
        chunk = suppressed[start : start + 500]
        listed = {k for (k,) in conn.execute(select(keys).where(keys.in_([c[2] for c in chunk])))}
        found.extend(
            f"subscriber {subject}: {status} in the ledger but not on the suppression list"
            for subject, status, pseudonym in chunk
            if pseudonym not in listed
        )
    return found


def head(store: Store) -> str:
    """The chain head as ``SEQ:HASH``, to publish (archive footer, a git commit, a notary)."""
    with store.read() as conn:
        seq, digest = conn.execute(select(head_t.c.seq, head_t.c.hash)).one()
    return f"{seq}:{digest}"


_HEAD = re.compile(r"(\d+):([0-9a-f]{64})")


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as published by :func:`head`; ConsentError when it is not one."""
    found = _HEAD.fullmatch(text.strip())
    if not found:
        raise ConsentError(
            f"{text.strip()!r} is not a published head; write SEQ:HASH as "
            "`digest consent head` prints it (e.g. 1234:9f2c…, 64 hex digits)"
        )
    return int(found.group(1)), found.group(2)


def read_heads(path: Path) -> list[tuple[int, str]]:
    """Published heads, one ``SEQ:HASH`` a line; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsentError(f"{path}: cannot read the published heads ({exc})") from None
    heads = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            heads.append(parse_head(text))
        except ConsentError as exc:
            raise ConsentError(f"{path}:{number}: {exc}") from None
    return heads


def verify(
    store: Store, batch_size: int = 10_000, expect: Iterable[tuple[int, str]] = ()
) -> Verification:
    """Recompute the chain, replay it against the tables, and check published heads.

    The chain: the first broken sequence number, if any. Then, with the chain
    whole: each subscriber's status against the one its events lead to, their
    address and its key against the pseudonym the events name, the
    suppression list against the suppressed statuses, the evidence of every
    reader not erased, and each published head in ``expect`` (a head no longer
    in the ledger means its tail was cut off or rewritten after publishing).
    """
    expected_heads = dict(expect)
    seen_heads: dict[int, str] = {}
    with store.read() as conn:
        for text in conn.execute(select(texts_t)):
            expected = (
                statement_sha(text.language, text.body)
                if text.kind == "statement"
                else _policy_sha(text.version, text.url, text.body)
            )
            if text.sha256 != expected:
                return Verification(
                    False, 0, 0, "", None, f"consent text {text.id} ({text.kind}) was edited"
                )
        head_seq, head_hash = conn.execute(select(head_t.c.seq, head_t.c.hash)).one()
        count, prev, expected_seq = 0, GENESIS_HASH, 1
        for batch in _event_batches(conn, batch_size):
            for row in batch:
                seq = row[0]
                if seq != expected_seq:
                    problem = (
                        f"event {expected_seq} is missing"
                        if seq > expected_seq
                        else f"event {seq} is out of order"
                    )
                    return Verification(False, count, head_seq, head_hash, expected_seq, problem)
                fields = row[:11]
                if row[10] != prev:
                    return Verification(
                        False,
                        count,
                        head_seq,
                        head_hash,
                        seq,
                        f"event {seq} does not link to the event before it",
                    )
                if event_hash(fields) != row[11]:
                    return Verification(
                        False,
                        count,
                        head_seq,
                        head_hash,
                        seq,
                        f"event {seq} was edited (hash differs)",
                    )
                body = row[12]
                if body is not None and sha256(body) != row[9]:
                    return Verification(
                        False,
                        count,
                        head_seq,
                        head_hash,
                        seq,
                        f"the evidence of event {seq} was edited",
                    )
                if seq in expected_heads:
                    seen_heads[seq] = row[11]
                prev, count, expected_seq = row[11], count + 1, seq + 1
        if count != head_seq or prev != head_hash:
            return Verification(
                False,
                count,
                head_seq,
                head_hash,
                count + 1,
                f"the chain head names event {head_seq} but the ledger ends at event {count}",
            )
        mismatches = _compare(conn, store.dialect, batch_size, store.pseudonym)
    for seq, digest in sorted(expected_heads.items()):
        shown = f"{seq}:{digest[:12]}…"
        if seq not in seen_heads:
            why = f"it ends at event {count} (truncated)"
        elif seen_heads[seq] != digest:
            why = f"event {seq} has another hash (rewritten)"
        else:
            continue
        problem = f"the published head {shown} is not in the ledger: {why}"
        return Verification(False, count, head_seq, head_hash, None, problem, mismatches)
    if len(mismatches) > MAX_MISMATCHES:
        extra = len(mismatches) - MAX_MISMATCHES
        mismatches = [*mismatches[:MAX_MISMATCHES], f"… and {extra} more"]
    return Verification(not mismatches, count, head_seq, head_hash, None, "", mismatches)


def _event_batches(conn: Connection, batch_size: int) -> Iterator[list[Any]]:
    columns = [events_t.c[name] for name in EVENT_COLUMNS]
    last = 0
    while True:
        query = (
            select(*columns, evidence_t.c.body)
            .select_from(events_t.outerjoin(evidence_t, evidence_t.c.seq == events_t.c.seq))
            .where(events_t.c.seq > last)
            .order_by(events_t.c.seq)
            .limit(batch_size)
        )
        rows = [tuple(row) for row in conn.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1][0]
