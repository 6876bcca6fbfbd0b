"""Subscribers: lifecycle, addresses, import, export, erasure, the audience."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES
from email_validator import EmailNotValidError, validate_email
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from digest import consent
from digest.addresses import normalise
from digest.errors import SubscriberError
from digest.people import audience, changes, record, rights
from digest.people.imports import generic, writer
from digest.store import Store, schema
from digest.workspace import Workspace

SIGNUPS = FIXTURES / "subscribers" / "signups.csv"
FORM = {"method": "web_form", "source": "https://newsletter.example.com/subscribe"}


def _kinds(store: Store, subscriber_id: str) -> list[str]:
    with store.read() as conn:
        return [e.kind for e in consent.history(conn, subscriber_id)]


def _emails(store: Store) -> list[str]:
    return sorted(s.email or "" for s in audience.audience(store))


def test_double_opt_in_then_unsubscribe_then_fresh_consent(store: Store) -> None:
    sub = changes.request_signup(
        store, "anna@example.com", "Anna", evidence={"ip": "203.0.113.7"}, **FORM
    )
    assert sub.status == "pending" and len(sub.id) == 22
    assert _emails(store) == []
    active = changes.confirm(store, sub.id, method="link", source="confirm link", evidence={})
    assert active.status == "active"
    assert _emails(store) == ["anna@example.com"]
    gone = changes.unsubscribe(
        store, sub.id, method="one_click", source="List-Unsubscribe", evidence={}, reason="too much"
    )
    assert gone.status == "unsubscribed" and _emails(store) == []
    again = changes.unsubscribe(
        store, sub.id, method="one_click", source="List-Unsubscribe", evidence={}
    )
    assert again.status == "unsubscribed"
    back = changes.resubscribe(store, sub.id, evidence={}, **FORM)
    assert back.status == "pending" and _emails(store) == []
    changes.confirm(store, sub.id, method="link", source="confirm link", evidence={})
    assert _emails(store) == ["anna@example.com"]
    assert _kinds(store, sub.id) == [
        "signup_requested",
        "confirmed",
        "unsubscribed",
        "resubscribed",
        "confirmed",
    ]
    assert consent.verify(store).ok


def test_signing_up_again_after_unsubscribing_needs_confirmation(store: Store) -> None:
    sub = changes.admin_add(store, "anna@example.com", source="test", confirmed=True)
    changes.unsubscribe(store, sub.id, method="link", source="x", evidence={})
    again = changes.request_signup(store, "Anna@EXAMPLE.com", None, evidence={}, **FORM)
    assert again.id == sub.id and again.status == "pending"
    active = changes.request_signup(store, "anna@example.com", None, evidence={}, **FORM)
    assert active.status == "pending"
    changes.confirm(store, sub.id, method="link", source="x", evidence={})
    before = _kinds(store, sub.id)
    assert (
        changes.request_signup(store, "anna@example.com", None, evidence={}, **FORM).status
        == "active"
    )
    assert _kinds(store, sub.id) == before  # an active subscriber's repeat sign-up records nothing


def test_confirming_needs_a_pending_subscriber(store: Store) -> None:
    sub = changes.admin_add(store, "anna@example.com", source="test")
    changes.unsubscribe(store, sub.id, method="link", source="x", evidence={})
    with pytest.raises(SubscriberError, match="not pending"):
        changes.confirm(store, sub.id, method="link", source="x", evidence={})


def test_case_variants_are_one_subscriber_and_idn_is_allowed(store: Store) -> None:
    first = changes.request_signup(store, "IVAN@Example.com", None, evidence={}, **FORM)
    assert first.email == "IVAN@example.com"
    assert record.find_by_email(store, "ivan@EXAMPLE.COM") == first
    idn = changes.request_signup(store, "пользователь@пример.рф", None, evidence={}, **FORM)
    assert record.get_subscriber(store, idn.id) == idn
    with pytest.raises(SubscriberError, match=r"^n\*\*\* is not a valid email address"):
        changes.request_signup(store, "not-an-address", None, evidence={}, **FORM)


@given(st.emails() | st.text(max_size=40))
def test_the_fast_path_agrees_with_email_validator(address: str) -> None:
    try:
        expected: str | None = validate_email(
            address.strip(), check_deliverability=False
        ).normalized
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalise(address)
    except SubscriberError:
        got = None
    assert got == expected


def test_suppressed_addresses_leave_the_audience_for_good(store: Store) -> None:
    a = changes.admin_add(store, "a@example.com", source="t", confirmed=True)
    changes.admin_add(store, "b@example.com", source="t", confirmed=True)
    assert changes.suppress(
        store,
        a.id,
        reason="550 no such user",
        kind="bounced",
        method="provider_webhook",
        source="postmark",
    )
    assert not changes.suppress(store, "A@example.com", reason="again", kind="bounced", source="t")
    assert record.get_subscriber(store, a.id).status == "bounced"  # type: ignore[union-attr]
    assert _emails(store) == ["b@example.com"]
    assert record.is_suppressed(store, "a@EXAMPLE.com") and record.is_suppressed(store, a.id)
    # A bounce is the reader's to undo: pending again, still suppressed until they confirm.
    assert changes.request_signup(store, "a@example.com", None, evidence={}, **FORM).id == a.id
    assert record.is_suppressed(store, a.id) and _emails(store) == ["b@example.com"]
    # The operator's suppression is for good, whatever a report did before.
    assert changes.suppress(store, "A@example.com", reason="asked by phone", source="t")
    assert not changes.suppress(store, "A@example.com", reason="again", source="t")
    with pytest.raises(SubscriberError, match="suppression list"):
        changes.request_signup(store, "a@example.com", None, evidence={}, **FORM)
    assert changes.suppress(store, "stranger@example.com", reason="asked by phone", source="t")
    with pytest.raises(SubscriberError, match="suppression list"):
        changes.admin_add(store, "stranger@example.com", source="t")


def test_the_audience_streams_in_batches_by_id(store: Store) -> None:
    made = [
        changes.admin_add(store, f"r{n}@example.com", source="t", confirmed=n % 3 != 0)
        for n in range(20)
    ]
    changes.suppress(store, made[1].id, reason="complaint", kind="complained", source="t")
    expected = sorted(s.id for n, s in enumerate(made) if n % 3 != 0 and n != 1)
    assert [s.id for s in audience.audience(store, batch_size=3)] == expected
    assert [s.id for s in audience.audience(store, batch_size=1000)] == expected


# import --------------------------------------------------------------------------


def test_a_bad_row_is_named_left_out_and_the_rest_goes_in(cli, store: Store) -> None:
    """The good rows are imported, the bad one named with its line, and the exit status
    says something was left out; the fixed file imported again doubles nothing."""
    result = cli("subscribers", "import", str(SIGNUPS))
    assert result.exit_code == 1
    assert f"{SIGNUPS}: line 5: n*** is not a valid email address" in result.output
    assert f"{SIGNUPS}: line 6:" not in result.output  # no consent date: pending, not refused
    assert "1 bad row left out (named above), the rest imported" in result.output
    assert audience.stats(store)["active"] == 4 and consent.verify(store).ok
    events = consent.verify(store).events
    again = cli("subscribers", "import", str(SIGNUPS))
    assert "imported 0 (0 active, 0 pending)" in again.output
    assert consent.verify(store).events == events


def test_a_dry_run_reports_and_writes_nothing(cli, store: Store) -> None:
    result = cli("subscribers", "import", str(SIGNUPS), "--dry-run", "--skip-invalid")
    assert result.exit_code == 0
    assert (
        "would import 5 (4 active, 1 pending), suppressed 0, merged 1, invalid 1 "
        "(7 rows, comma-separated)" in result.output
    )
    assert audience.stats(store)["active"] == 0


def test_the_fixture_imports_its_good_rows_with_skip_invalid(cli, store: Store) -> None:
    result = cli("subscribers", "import", str(SIGNUPS), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert (
        "imported 5 (4 active, 1 pending), suppressed 0, merged 1, invalid 1 "
        "(7 rows, comma-separated)" in result.output
    )
    assert "1 reader without evidence of consent imported as pending" in result.output
    assert record.find_by_email(store, "elena@example.org").status == "pending"  # type: ignore[union-attr]
    assert "line 4: i***@example.com merged into line 3" in result.output
    people = {s.email: s for s in audience.audience(store)}
    assert sorted(people) == [
        "IVAN@example.com",
        "anna@example.com",
        "o'brien@example.net",
        "пользователь@пример.рф",
    ]
    assert people["IVAN@example.com"].name == "Ivan Sidorov"  # the first consent is kept
    assert people["o'brien@example.net"].name == "O'Brien, Pat"
    with store.read() as conn:
        (event,) = consent.history(conn, people["o'brien@example.net"].id)
    assert (event.kind, event.method, event.source) == ("imported", "import", "signups.csv")
    assert event.evidence is not None
    assert event.evidence["consented_at"] == "2026-10-06T09:30:00.000000Z"
    assert (event.evidence["line"], event.evidence["ip"]) == (8, "192.0.2.44")
    again = cli("subscribers", "import", str(SIGNUPS), "--skip-invalid")
    assert "imported 0 (0 active, 0 pending), suppressed 0, merged 6" in again.output
    assert "line 2: a***@example.com merged into an existing subscriber" in again.output


def test_unknown_policy_versions_and_extra_columns(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "more.csv"
    path.write_text(
        "email,consented_at,policy_version,team\n"
        "a@example.com,2026-10-01T00:00:00Z,2026-05-01,sports\n"
        "b@example.com,2026-10-01T00:00:00Z,1999-01-01,\n"
        "c@example.com,yesterday,2026-05-01,\n",
        encoding="utf-8",
    )
    report = generic.import_csv(store, path)
    assert report.problems[0].startswith("line 3: policy_version '1999-01-01' is unknown")
    assert report.problems[1].startswith("line 4: consented_at 'yesterday' is not an ISO-8601 time")
    assert report.written and report.imported == 1 and report.invalid == 2
    (only,) = list(audience.audience(store))
    assert only.attributes == {"team": "sports"}


def test_a_file_without_the_needed_columns_is_refused(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("mail,name\nx@example.com,X\n", encoding="utf-8")
    with pytest.raises(
        SubscriberError,
        match=r"bad.csv:1: no `email` column; read with a comma as the delimiter, "
        r"the header has the columns 'mail', 'name'",
    ):
        generic.import_csv(store, path)
    path.write_text("email,name\nx@example.com,X\n", encoding="utf-8")
    with pytest.raises(SubscriberError, match=r"bad.csv:1: the header lacks consented_at, policy"):
        generic.import_csv(store, path)


def test_suppressed_addresses_are_never_re_imported(cli, store: Store) -> None:
    changes.suppress(store, "anna@example.com", reason="complained by phone", source="t")
    result = cli("subscribers", "import", str(SIGNUPS), "--skip-invalid")
    assert "line 2: a***@example.com is suppressed; not added" in result.output
    assert "imported 4 (3 active, 1 pending), suppressed 1, merged 1" in result.output
    assert record.find_by_email(store, "anna@example.com") is None


# commands ------------------------------------------------------------------------


def test_add_list_show_stats_unsubscribe(cli, store: Store) -> None:
    added = cli(
        "subscribers", "add", "Jo@Example.com", "--name", "Jo", "--source", "asked at the desk"
    )
    assert added.exit_code == 0 and "added J***@example.com as pending" in added.output
    confirmed = cli(
        "subscribers", "add", "kim@example.com", "--source", "paper form", "--confirmed"
    )
    assert "as active" in confirmed.output
    listing = cli("subscribers", "list")
    assert "J***@example.com" in listing.output and "Jo@example.com" not in listing.output
    only = cli("subscribers", "list", "--status", "active", "--json")
    assert [row["email"] for row in json.loads(only.output)] == ["k***@example.com"]
    shown = cli("subscribers", "show", "jo@example.com", "--json")
    data = json.loads(shown.output)
    assert data["subscriber"]["email"] == "Jo@example.com"
    assert (
        data["events"][0]["event"] == "admin_added"
        and data["events"][0]["source"] == "asked at the desk"
    )
    assert data["events"][0]["statement"]["text"].startswith("Yes, send me")
    stats = json.loads(cli("subscribers", "stats", "--json").output)
    assert (stats["pending"], stats["active"], stats["audience"], stats["events"]) == (1, 1, 1, 2)
    out = cli("subscribers", "unsubscribe", "kim@example.com", "--reason", "asked by email")
    assert "k***@example.com is unsubscribed" in out.output
    sup = cli("subscribers", "suppress", "jo@example.com", "--reason", "spam trap")
    assert "suppressed" in sup.output
    assert audience.stats(store)["audience"] == 0
    missing = cli("subscribers", "show", "nobody@example.com")
    assert missing.exit_code == 1 and "no subscriber nobody@example.com" in missing.output


def test_export_holds_everything_and_is_recorded(cli, store: Store) -> None:
    sub = changes.request_signup(
        store,
        "anna@example.com",
        "Anna",
        evidence={"ip": "203.0.113.7", "user_agent": "UA"},
        **FORM,
    )
    result = cli("subscribers", "export", "anna@example.com")
    data = json.loads(result.output)
    assert data["profile"]["email"] == "anna@example.com" and data["profile"]["name"] == "Anna"
    assert [e["event"] for e in data["consent_events"]] == ["signup_requested", "exported"]
    assert data["consent_events"][0]["evidence"] == {"ip": "203.0.113.7", "user_agent": "UA"}
    assert data["consent_events"][0]["policy"]["url"] == "https://newsletter.example.com/privacy"
    assert "retention" in data and data["deliveries"] == []
    assert _kinds(store, sub.id)[-1] == "exported"


def _everything_as_text(store: Store) -> str:
    """Every row of every table, for the PostgreSQL side of the erasure test."""
    chunks = []
    with store.read() as conn:
        for table in schema.metadata.sorted_tables:
            if store.dialect == "postgresql" or table.name in ("subscribers", "consent_evidence"):
                chunks += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(chunks)


def test_erase_leaves_no_trace_of_the_address(cli, store: Store, workspace: Workspace) -> None:
    assert cli("subscribers", "import", str(SIGNUPS), "--skip-invalid").exit_code == 0
    rights.export(store, "o'brien@example.net", source="t")
    result = cli("subscribers", "erase", "O'Brien@example.net", "--yes")
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.output)
    assert receipt["deleted"]["address"] is True and receipt["deleted"]["evidence records"] == 3
    assert "suppression entry" in receipt["kept"]
    assert consent.verify(store).ok
    for needle in ("o'brien@example.net", "O'Brien, Pat"):
        assert needle not in _everything_as_text(store)
    if store.dialect == "sqlite":
        files = list(workspace.subscribers_dir.glob("digest.db*"))
        assert files
        for path in files:
            raw = path.read_bytes().lower()
            assert b"o'brien@example.net" not in raw, path
            assert b"o'brien, pat" not in raw, path
        assert b"anna@example.com" in (workspace.subscribers_dir / "digest.db").read_bytes()
    again = cli("subscribers", "import", str(SIGNUPS), "--skip-invalid")
    assert "line 8: o***@example.net is suppressed; not added" in again.output
    with store.read() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM subscribers WHERE status = 'erased'")).scalar()
            == 1
        )


def test_duplicates_across_batches_are_merged(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "_BATCH", 2)
    changes.admin_add(store, "old@example.com", source="t", confirmed=True)
    path = tmp_path / "batches.csv"
    rows = ["a", "b", "c", "A", "old"]
    path.write_text(
        "email,consented_at,policy_version\n"
        + "".join(f"{r}@example.com,2026-10-01T00:00:00Z,2026-05-01\n" for r in rows),
        encoding="utf-8",
    )
    report = generic.import_csv(store, path)
    assert (report.imported, report.merged) == (3, 2)
    assert "line 5: A***@example.com merged into an earlier line" in report.notes[0]
    assert "line 6: o***@example.com merged into an existing subscriber" in report.notes[1]


def test_a_pending_line_after_an_active_one_in_another_batch_says_who_stays_active(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within a batch a pending line outweighs an active one; once the active reader
    is written (an earlier batch), they stay active, and the note says so plainly."""
    monkeypatch.setattr(writer, "_BATCH", 2)
    path = tmp_path / "batches.csv"
    consented = "2026-10-01T00:00:00Z,2026-05-01"
    path.write_text(
        "email,consented_at,policy_version\n"
        f"a@example.com,{consented}\nb@example.com,{consented}\n"
        f"c@example.com,{consented}\nA@example.com,,2026-05-01\n",
        encoding="utf-8",
    )
    report = generic.import_csv(store, path)
    assert (report.imported, report.merged) == (3, 1)
    found = record.find_by_email(store, "a@example.com")
    assert found is not None and found.status == "active"
    assert report.notes == [
        "line 5: A***@example.com merged into an earlier line, who stays active "
        "(line 5 says pending; an earlier batch of this import had already added them "
        "as active: check with the old tool)"
    ]


def test_imported_evidence_and_attributes_are_spelled_canonically(
    tmp_path: Path, store: Store
) -> None:
    """The import spells evidence JSON by hand; it must be exactly canonical()'s spelling."""
    path = tmp_path / "odd.csv"
    path.write_text(
        "zeta,email,team,name,consented_at,policy_version,ip,alpha\n"
        'z1,"q@example.com",x,"Back\\slash ""Quote""\tTab",2026-10-01T00:00:00Z,2026-05-01,,a\n'
        "z2,p@example.com,,Ünïcødé 名前,2026-10-01T10:00:00+02:00,2026-05-01,192.0.2.1,\n"
        ",r@example.com,,,2026-10-01T00:00:00Z,2026-05-01\n"
        "z4,s@example.com,y,S,2026-02-30T00:00:00Z,2026-05-01,,\n",
        encoding="utf-8",
    )
    report = generic.import_csv(store, path, source='file "odd".csv')
    assert report.imported == 3
    assert report.problems == [
        "line 5: consented_at '2026-02-30T00:00:00Z' is not an ISO-8601 time "
        "(write e.g. 2026-10-02T08:15:00Z)"
    ]
    with store.read() as conn:
        bodies = [body for (body,) in conn.execute(select(schema.consent_evidence.c.body))]
        query = select(schema.subscribers.c.email, schema.subscribers.c.attributes)
        kept = {row.email: row.attributes for row in conn.execute(query)}
    assert len(bodies) == 3
    for body in bodies:
        assert consent.canonical(json.loads(body)) == body
    for attributes in kept.values():
        assert consent.canonical(json.loads(attributes)) == attributes
    evidence = {json.loads(b)["email"]: json.loads(b) for b in bodies}
    assert evidence["q@example.com"]["name"] == 'Back\\slash "Quote"\tTab'
    assert evidence["q@example.com"]["attributes"] == {"alpha": "a", "team": "x", "zeta": "z1"}
    assert evidence["p@example.com"]["consented_at"] == "2026-10-01T08:00:00.000000Z"
    assert (
        evidence["r@example.com"]["name"] is None and "attributes" not in evidence["r@example.com"]
    )
    assert evidence["r@example.com"]["file"] == 'file "odd".csv'
    assert kept["p@example.com"] == '{"zeta":"z2"}' and kept["r@example.com"] == "{}"
    assert consent.verify(store).ok


def test_batch_ids_look_like_single_ids() -> None:
    ids = record.new_ids(1000)
    assert len(set(ids)) == 1000
    assert all(len(i) == len(record.new_id()) == 22 for i in ids)
    assert set("".join(ids)) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_errors_show_the_operator_what_they_typed(cli, store: Store) -> None:
    """Masking protects logs, not the person at the keyboard: the command line names the
    address as typed, while the error itself (what a log or a stored reason gets) masks it."""
    bad = cli("subscribers", "add", "not-an-address", "--source", "desk")
    assert bad.exit_code == 1
    assert "Error: 'not-an-address' is not a valid email address" in bad.output
    assert "n***" not in bad.output
    missing = cli("subscribers", "show", "nobody@example.com")
    assert missing.exit_code == 1 and "no subscriber nobody@example.com" in missing.output
    cli("subscribers", "add", "kim@example.com", "--source", "paper form")
    again = cli("subscribers", "add", "Kim@example.com", "--source", "paper form")
    assert again.exit_code == 1 and "Kim@example.com is already a subscriber" in again.output
    cli("subscribers", "suppress", "gone@example.com", "--reason", "asked")
    refused = cli("subscribers", "add", "gone@example.com", "--source", "desk")
    assert "gone@example.com is on the suppression list" in refused.output

    with pytest.raises(SubscriberError) as raised:
        normalise("not-an-address")
    assert "not-an-address" not in str(raised.value) and "n***" in str(raised.value)


def test_the_export_lists_what_was_sent_and_every_bounce(send_ws, cli) -> None:  # type: ignore[no-untyped-def]
    from _send_fixtures import SEND_DAY, add_readers

    from digest import bounces
    from digest.send import engine
    from digest.store import open_store

    [sid] = add_readers(send_ws, 1)
    assert engine.run_send(send_ws, SEND_DAY).counts["sent"] == 1
    with open_store(send_ws) as store:
        soft = bounces.Report(
            source="file",
            kind=bounces.SOFT,
            raw=b"mailbox full",
            subscriber_id=sid,
            issue=SEND_DAY,
            status="4.2.2",
            diagnostic="452 4.2.2 reader0@example.net: mailbox full",
            proven=True,
        )
        assert bounces.apply(store, soft).outcome == bounces.COUNTED
        data = rights.export(store, sid, source="t")
    [delivery] = data["deliveries"]
    assert delivery["issue"] == SEND_DAY and delivery["state"] == "sent"
    assert delivery["sent_at"] and delivery["attempts"] == 1
    [bounce] = data["bounces"]
    assert (bounce["issue"], bounce["kind"], bounce["status"]) == (SEND_DAY, "soft", "4.2.2")
    assert "mailbox full" in bounce["reason"] and "reader0@" not in bounce["reason"]
    shown = cli("subscribers", "export", sid)
    assert json.loads(shown.output)["deliveries"][0]["issue"] == SEND_DAY


def test_no_id_starts_with_a_dash() -> None:
    """One id in 64 began with "-", and `digest subscribers export -Sx…` then failed:
    "No such option '-S'" (CI met it)."""
    ids = record.new_ids(5000) + [record.new_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert sum(i.startswith("A") for i in ids) < 400  # the one letter a dash becomes
