"""The tables of digest's database, for SQLite and PostgreSQL alike.

Times are stored as ISO-8601 UTC text (``2026-10-02T08:15:00.000000Z``): the
same bytes on both backends, so the consent chain hashes them identically,
and they sort as they read.

Tables here describe the *current* shape. A migration that creates a table
uses these objects; a later change to a table is a new migration (ALTER), not
an edit of an old one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# An INTEGER PRIMARY KEY on SQLite is the rowid: the fastest key it has.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("applied_at", String(32), nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", Text),  # NULL once erased
    Column("email_key", String(64), unique=True),  # keyed HMAC of the case-folded address
    Column("name", Text),
    Column("status", String(16), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("attributes", Text, nullable=False, default="{}"),
    Index("ix_subscribers_status_id", "status", "id"),
)

consent_texts = Table(
    "consent_texts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # statement | policy
    Column("version", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("url", Text, nullable=False, default=""),
    Column("sha256", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    # The BCP 47 tag of a statement's language ("" for a policy, and for the statements
    # recorded before digest knew it); a statement's sha256 covers it (consent.py).
    Column("language", String(35), nullable=False, default="", server_default=""),
    UniqueConstraint("kind", "sha256", name="uq_consent_texts_kind_sha256"),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("occurred_at", String(32), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("subject_id", String(32), nullable=False),
    Column("pseudonym", String(64), nullable=False),
    Column("method", String(24), nullable=False),
    Column("source", Text, nullable=False),
    Column("statement_id", Integer, ForeignKey("consent_texts.id"), nullable=False),
    Column("policy_id", Integer, ForeignKey("consent_texts.id"), nullable=False),
    Column("evidence_sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_consent_events_subject", "subject_id"),
    # `digest stats`: the week's confirmations, unsubscribes, bounces and complaints.
    Index("ix_consent_events_kind_time", "kind", "occurred_at"),
    # A subject's event before a given one; SQLite's subject index already ends in
    # the rowid, which is seq.
    Index("ix_consent_events_subject_seq", "subject_id", "seq").ddl_if(dialect="postgresql"),
)

# Evidence is personal data and erasable; the chain keeps only its digest.
consent_evidence = Table(
    "consent_evidence",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
)

# One row (id = 1): the chain's last sequence number and hash, locked to append.
chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", SEQ, nullable=False),
    Column("hash", String(64), nullable=False),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("key", String(64), primary_key=True),  # the keyed hash only, never the address
    Column("reason", String(32), nullable=False),  # bounced | complained | admin | erased
    Column("created_at", String(32), nullable=False),
)

# One row per issue date the schedule has dealt with: who is sending it (a lease
# on SQLite; on PostgreSQL an advisory lock backs it), whether it went, and the
# one-time notices given (missed slot, review cutoff passed).
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("issue_date", String(10), primary_key=True),
    Column("slot_at", String(32), nullable=False),
    Column("state", String(16), nullable=False, default=""),  # "" | sending | sent
    Column("owner", String(200), nullable=False, default=""),  # host:pid
    Column("lease_until", String(32), nullable=False, default=""),
    Column("started_at", String(32)),
    Column("finished_at", String(32)),
    Column("missed_at", String(32)),
    Column("cutoff_warned_at", String(32)),
)

# One row per key the database depends on: an HMAC of a fixed text under that
# key, so a process holding another key is refused instead of writing
# pseudonyms nobody can match again (the same address twice, an erased one
# no longer recognised).
key_checks = Table(
    "key_checks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("check_value", String(64), nullable=False),
)

# The deliveries ledger (digest.send.deliveries): one row per (issue, subscriber).
deliveries = Table(
    "deliveries",
    metadata,
    Column("issue", String(10), primary_key=True),
    Column("subscriber_id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("owner", String(200), nullable=False, default=""),
    Column("claim", String(40), nullable=False, default=""),
    Column("lease_until", String(32), nullable=False, default=""),
    Column("retry_at", String(32), nullable=False, default=""),
    Column("failure", String(16), nullable=False, default=""),  # transient | permanent
    Column("reason", Text, nullable=False, default=""),
    Column("provider_id", Text, nullable=False, default=""),
    Column("sent_at", String(32)),
    Column("updated_at", String(32), nullable=False),
    Index("ix_deliveries_issue_state", "issue", "state", "subscriber_id"),
)

# One row per issue whose audience was frozen: when, how many, and when it finished.
issue_sends = Table(
    "issue_sends",
    metadata,
    Column("issue", String(10), primary_key=True),
    Column("frozen_at", String(32), nullable=False),
    Column("audience", Integer, nullable=False, default=0),
    Column("finished_at", String(32)),
)

# One row per bounce, complaint or mailbox unsubscribe report digest has read (per
# recipient of a report), from any source: the key makes processing idempotent, and
# the rows are what `digest bounces` counts. No address: a subscriber id, the
# recipient's domain and a diagnostic with addresses masked.
bounce_reports = Table(
    "bounce_reports",
    metadata,
    Column("key", String(64), primary_key=True),  # SHA-256 naming the report (and recipient)
    Column("received_at", String(32), nullable=False),
    Column("source", String(24), nullable=False),  # smtp | mailbox | file | postmark | ...
    Column("kind", String(16), nullable=False),  # hard | soft | complaint | unsubscribe | ...
    Column("outcome", String(16), nullable=False),  # suppressed | unsubscribed | counted | ...
    Column("subscriber_id", String(32)),  # NULL: nobody we know
    Column("issue", String(10), nullable=False, default=""),
    Column("status", String(16), nullable=False, default=""),  # 5.1.1, or the SMTP code
    Column("reason", Text, nullable=False, default=""),  # short, addresses masked
    Column("domain", String(255), nullable=False, default=""),
    Column("report_sha256", String(64), nullable=False),  # of the raw report
    Index("ix_bounce_reports_subscriber", "subscriber_id"),
    # An issue's reports by kind and outcome, read from the index alone (`digest stats`).
    Index("ix_bounce_reports_issue_kind", "issue", "kind", "outcome"),
)

# Signatures of webhook requests already answered, so a replayed request is refused;
# rows older than the timestamp tolerance are pruned (a stale request is refused anyway).
webhook_nonces = Table(
    "webhook_nonces",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("seen_at", String(32), nullable=False),
)

# The answers to "why are you leaving?" on the unsubscribed page: the issue the link
# named ("" for a link without one), a reason from a fixed list and a short text.
# Nothing names the reader (no subscriber id, no time), so an erasure has nothing
# to find here. The key is a hash of the page's one-time token: a second answer
# from the same page replaces the first instead of counting twice. On SQLite the
# table has no rowid, so not even the order of the answers is kept.
unsubscribe_reasons = Table(
    "unsubscribe_reasons",
    metadata,
    Column("answer_key", String(64), primary_key=True),
    Column("issue", String(10), nullable=False, default=""),
    Column("reason", String(24), nullable=False, default=""),
    Column("text", Text, nullable=False, default=""),
    sqlite_with_rowid=False,
)

# Re-permission (digest.reconfirm): each round of confirmation emails `digest subscribers
# reconfirm` sends to a chosen group, and one row per (round, subscriber), so a round
# survives a crash and mails each reader once, like the deliveries ledger.
reconfirm_rounds = Table(
    "reconfirm_rounds",
    metadata,
    Column("round", Integer, primary_key=True, autoincrement=False),
    Column("started_at", String(32), nullable=False),
    Column("scope", Text, nullable=False, default=""),  # how the group was chosen
    Column("size", Integer, nullable=False, default=0),
    Column("finished_at", String(32)),
)

reconfirmations = Table(
    "reconfirmations",
    metadata,
    Column("round", Integer, primary_key=True, autoincrement=False),
    Column("subscriber_id", String(32), primary_key=True),
    # pending | sending | sent | deferred | failed | skipped | unknown
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("owner", String(200), nullable=False, default=""),
    Column("lease_until", String(32), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("provider_id", Text, nullable=False, default=""),
    Column("sent_at", String(32)),
    Column("updated_at", String(32), nullable=False),
    Index("ix_reconfirmations_state", "round", "state", "subscriber_id"),
    Index("ix_reconfirmations_subscriber", "subscriber_id"),
)
