"""One import, many files, several imports: the stricter state wins, opt-outs stay, nothing doubles.

Mailchimp's zip holds the subscribed, unsubscribed and cleaned members in three
files; an address may be in more than one, in any case. A newer export flips
a reader who left after the first import; the same export twice changes
nothing; bad rows are named with their line and the rest goes on.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from conftest import FIXTURES, Cli
from sqlalchemy import func, select, text

from digest import consent
from digest.errors import SubscriberError
from digest.people import audience, changes, record, rights
from digest.people.imports import tools, writer
from digest.store import Store, schema

EXPORTS = FIXTURES / "exports"
MAILCHIMP = EXPORTS / "mailchimp" / "members_export_5d1e8a3b7c.zip"
COMMON = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,'
    "OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP"
)
TAIL = "LEID,EUID,NOTES,TAGS"
HEADERS = {
    "subscribed": f"{COMMON},LAST_CHANGED,{TAIL}",
    "unsubscribed": f"{COMMON},UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,"
    f"UNSUB_REASON_OTHER,{TAIL}",
    "cleaned": f"{COMMON},CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID,{TAIL}",
}


def member(email: str, optin: str = "2021-05-03 08:14:22", ip: str = "203.0.113.15") -> str:
    return f'{email},,,2,"{optin}",{ip},"{optin}",{ip}'


def subscribed(email: str, **kw: str) -> str:
    return f'{member(email, **kw)},"2024-09-12 10:02:11",1,x,,'


def unsubscribed(email: str, when: str, reason: str = "Other", other: str = "") -> str:
    return f'{member(email)},"{when}",,,"{reason}","{other}",1,x,,'


def cleaned(email: str, when: str) -> str:
    return f'{member(email)},"{when}","Weekly Brief",abc,1,x,,'


def mailchimp_zip(path: Path, **files: list[str]) -> Path:
    """A zip as Mailchimp writes it, its files in the order given (not the order read)."""
    with zipfile.ZipFile(path, "w") as archive:
        for status, rows in files.items():
            body = "\n".join([HEADERS[status], *rows]) + "\n"
            archive.writestr(f"{status}_members_export_abc123.csv", body)
    return path


def _counts(store: Store) -> tuple[int, int, int, str]:
    with store.read() as conn:
        return (
            conn.execute(select(func.count()).select_from(schema.subscribers)).scalar_one(),
            conn.execute(select(func.count()).select_from(schema.suppressions)).scalar_one(),
            conn.execute(select(func.count()).select_from(schema.consent_evidence)).scalar_one(),
            consent.head(store),
        )


@pytest.mark.parametrize("batch", [20_000, 1])
def test_case_and_duplicates_merge_across_the_three_files(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(writer, "_BATCH", batch)  # 1: every row in a batch of its own
    path = mailchimp_zip(
        tmp_path / "members_export_abc123.zip",
        subscribed=[
            subscribed("Reader@Example.net"),
            subscribed("only@example.org"),
            subscribed("dup@example.com"),
            subscribed("DUP@example.com"),
            subscribed("Twice@Example.com"),
        ],
        unsubscribed=[unsubscribed("reader@example.net", "2025-01-01 09:00:00")],
        cleaned=[cleaned("twice@example.COM", "2025-02-02 10:00:00")],
    )
    report = tools.import_file(store, path)
    assert report.written and report.tool == "mailchimp"
    by = report.by_status
    assert {k: v for k, v in by["subscribed"].items() if v} == {
        "active": 2,
        "suppressed": 2,
        "merged": 1,
    }
    assert by["unsubscribed"]["suppressed"] == 1 and by["cleaned"]["suppressed"] == 1
    assert {s.email for s in audience.audience(store)} == {"only@example.org", "dup@example.com"}
    reader = record.find_by_email(store, "READER@example.net")
    twice = record.find_by_email(store, "twice@example.com")
    assert reader is not None and reader.status == "unsubscribed"
    assert twice is not None and twice.status == "bounced"
    assert record.is_suppressed(store, "reader@example.net")
    assert _counts(store)[0] == 4  # one subscriber per person, whatever the case
    part = "subscribed_members_export_abc123.csv"
    assert any(n.startswith(f"{part}: line 5: D***@example.com merged into") for n in report.notes)
    assert any(n.startswith(f"{part}: line 2: R***@example.net ") for n in report.notes)
    assert consent.verify(store).ok


def test_the_order_of_imports_does_not_revive_an_opt_out(store: Store, tmp_path: Path) -> None:
    first = mailchimp_zip(
        tmp_path / "first.zip",
        unsubscribed=[unsubscribed("ann@example.com", "2025-01-01 09:00:00")],
    )
    second = mailchimp_zip(tmp_path / "second.zip", subscribed=[subscribed("ANN@example.com")])
    tools.import_file(store, first)
    report = tools.import_file(store, second)
    assert report.suppressed == 1 and report.active == 0
    assert "A***@example.com is suppressed; not added" in "\n".join(report.notes)
    assert list(audience.audience(store)) == []


@pytest.mark.parametrize(
    "path",
    [
        MAILCHIMP,
        EXPORTS / "substack" / "email_list.example-gazette.csv",
        EXPORTS / "listmonk" / "subscribers.csv",
        EXPORTS / "ghost" / "members.2026-11-02.csv",
        EXPORTS / "buttondown" / "subscribers.csv",
        EXPORTS / "kit" / "kit-subscribers.csv",
    ],
    ids=lambda p: p.parent.name,
)
def test_importing_the_same_export_twice_changes_nothing(store: Store, path: Path) -> None:
    first = tools.import_file(store, path)
    before = _counts(store)
    again = tools.import_file(store, path)
    assert again.written and (again.active, again.pending) == (0, 0)
    assert again.merged + again.suppressed + again.skipped == first.rows
    assert _counts(store) == before  # not a row, not an event, the same ledger head
    assert consent.verify(store).ok


def test_a_newer_export_flips_a_reader_who_left_since(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    assert cli("subscribers", "import", str(MAILCHIMP)).exit_code == 0
    newer = mailchimp_zip(
        tmp_path / "members_export_later.zip",
        subscribed=[subscribed("jose.alvarez@example.org", optin="2022-11-20 19:45:03")],
        unsubscribed=[
            unsubscribed("Amara.Osei@example.com", "2026-11-20 09:00:00", other="moved away"),
            unsubscribed("p.nowak@example.com", "2024-06-02 07:03:44"),
        ],
        cleaned=[cleaned("li.wei@example.net", "2026-11-25 04:00:00")],
    )
    result = cli("subscribers", "import", str(newer))
    assert result.exit_code == 0, result.output
    assert "A***@example.com was active; now unsubscribed and suppressed" in result.output
    assert "l***@example.net was active; now bounced and suppressed" in result.output
    assert {s.email for s in audience.audience(store)} == {"jose.alvarez@example.org"}
    amara = rights.show(store, "amara.osei@example.com")
    assert amara["subscriber"]["status"] == "unsubscribed" and amara["suppressed"]
    imported, left = amara["events"]
    assert (imported["event"], left["event"]) == ("imported", "unsubscribed")
    assert (left["method"], left["source"]) == ("import", "members_export_later.zip")
    assert left["evidence"]["opted_out_at"] == "2026-11-20T09:00:00.000000Z"
    assert left["evidence"]["reason"] == "Other: moved away"
    with store.read() as conn:
        since = conn.execute(
            select(schema.suppressions.c.created_at, schema.suppressions.c.reason).where(
                schema.suppressions.c.key == record.email_key(store, "amara.osei@example.com")
            )
        ).one()
    assert tuple(since) == ("2026-11-20T09:00:00.000000Z", "unsubscribed")
    # an export naming a suppressed reader as subscribed again does not bring them back
    back = mailchimp_zip(tmp_path / "back.zip", subscribed=[subscribed("p.nowak@example.com")])
    assert cli("subscribers", "import", str(back)).exit_code == 0
    assert record.is_suppressed(store, "p.nowak@example.com")
    assert consent.verify(store).ok


KIT = """first_name,email_address,state,created_at
Ann,ann@example.com,active,2024-01-01T00:00:00Z
Fut,future@example.com,active,2099-01-01T00:00:00Z
Old,old@example.com,active,1985-06-01T00:00:00Z
Feb,feb@example.com,active,2023-02-30T00:00:00Z
Txt,txt@example.com,active,yesterday
No,not-an-address,active,2024-01-01T00:00:00Z
Gone,gone@example.com,cancelled,2099-01-01T00:00:00Z
Odd,odd@example.com,sleeping,2024-01-01T00:00:00Z
"""


def test_bad_rows_are_named_with_their_line_and_the_rest_goes_on(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "kit.csv"
    path.write_text(KIT, encoding="utf-8")
    real = cli("subscribers", "import", "--from", "kit", str(path))
    dry = cli("subscribers", "import", "--from", "kit", "--dry-run", str(path))
    assert real.exit_code == dry.exit_code == 1
    expected = [
        f"{path}: line 3: created_at '2099-01-01T00:00:00Z' is in the future",
        f"{path}: line 4: created_at '1985-06-01T00:00:00Z' is before 1990",
        f"{path}: line 5: created_at '2023-02-30T00:00:00Z' is not a readable time",
        f"{path}: line 6: created_at 'yesterday' is not a readable time",
        f"{path}: line 7: n*** is not a valid email address",
        f"{path}: line 9: state 'sleeping' is not one of Kit's",
    ]
    for output in (real.output, dry.output):
        for line in expected:
            assert line in output, output
        assert "6 bad rows" in output
    assert "6 bad rows left out (named above), the rest imported" in real.output
    assert "6 bad rows would be left out" in dry.output
    assert f"{path}: line 8: created_at '2099-01-01T00:00:00Z' is in the future; suppressed" in (
        real.output
    )  # an opt-out is kept whatever its dates say
    assert {s.email for s in audience.audience(store)} == {"ann@example.com"}
    assert record.is_suppressed(store, "gone@example.com")
    clean = tmp_path / "clean.csv"
    clean.write_text(KIT.split("\n", 2)[0] + "\n" + KIT.split("\n")[1] + "\n", encoding="utf-8")
    assert cli("subscribers", "import", "--from", "kit", "--dry-run", str(clean)).exit_code == 0


def test_bad_ips_and_times_in_a_mailchimp_file(cli: Cli, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "subscribed_members_export_abc123.csv"
    path.write_text(
        "\n".join(
            [
                HEADERS["subscribed"],
                subscribed("good@example.com"),
                subscribed("ip@example.com", ip="999.1.1.1"),
                subscribed("month@example.com", optin="2021-13-01 00:00:00"),
                'bare@example.com,,,2,,,,,"2024-09-12 10:02:11",1,x,,',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "import", "--skip-invalid", str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}: line 3: i***@example.com: OPTIN_IP '999.1.1.1' is not an IPv4" in (
        result.output
    )
    assert f"{path}: line 4: OPTIN_TIME '2021-13-01 00:00:00' is not a readable time" in (
        result.output
    )
    assert "1 reader without evidence of consent imported as pending" in result.output
    bare = record.find_by_email(store, "bare@example.com")
    assert bare is not None and bare.status == "pending"


def test_any_csv_with_map(cli: Cli, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "Email Address,Full Name,OPTIN_TIME,Status,City\n"
        "a@example.com,Ann,2024-01-01T00:00:00Z,subscribed,Porto\n"
        "b@example.com,Bob,2024-01-02T00:00:00Z,unsubscribed,Lyon\n"
        "c@example.com,Cy,2024-01-03T00:00:00Z,blocklisted,\n"
        "d@example.com,Di,,subscribed,\n",
        encoding="utf-8",
    )
    result = cli(
        "subscribers",
        "import",
        str(path),
        "--map",
        "Email Address=email",
        "--map",
        "OPTIN_TIME=consented_at",
        "--map",
        "Full Name=name",
        "--map",
        "Status=status",
        "--policy-version",
        "2026-05-01",
    )
    assert result.exit_code == 0, result.output
    assert {s.email for s in audience.audience(store)} == {"a@example.com"}
    assert record.is_suppressed(store, "b@example.com") and record.is_suppressed(
        store, "c@example.com"
    )
    d = record.find_by_email(store, "d@example.com")
    assert d is not None and d.status == "pending"
    a = record.find_by_email(store, "a@example.com")
    assert a is not None and a.name == "Ann" and a.attributes == {"city": "Porto"}
    wrong = cli("subscribers", "import", str(path), "--map", "Mail=email")
    assert wrong.exit_code == 1 and "--map 'Mail=email': the header has no column 'mail'" in (
        wrong.output
    )
    mixed = cli("subscribers", "import", "--from", "kit", "--map", "a=email", str(path))
    assert mixed.exit_code == 1 and "--map goes with a CSV of your own columns" in mixed.output


def test_the_statement_is_the_old_form_s_and_the_policy_an_older_one(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    listmonk = EXPORTS / "listmonk" / "subscribers.csv"
    unknown = cli("subscribers", "import", str(listmonk), "--policy-version", "listmonk-2023")
    assert unknown.exit_code == 1
    assert "--policy-version 'listmonk-2023' is unknown" in unknown.output
    assert "digest consent policy add VERSION --url URL --published DATE" in unknown.output
    added = cli(
        "consent",
        "policy",
        "add",
        "listmonk-2023",
        "--url",
        "https://example.org/privacy-2023",
        "--published",
        "2023-01-15",
    )
    assert added.exit_code == 0, added.output
    listed = cli("consent", "policy", "list").output
    assert "listmonk-2023" in listed and "published 2023-01-15" in listed
    wording = "Yes, send me the Porto Weekly. I can leave at any time.\n"
    statement = tmp_path / "old-form.txt"
    statement.write_text(wording, encoding="utf-8")
    result = cli(
        "subscribers",
        "import",
        str(listmonk),
        "--policy-version",
        "listmonk-2023",
        "--statement-file",
        str(statement),
    )
    assert result.exit_code == 0, result.output
    (event,) = rights.show(store, "r.fernandes@example.com")["events"]
    assert event["statement"]["text"] == wording.strip()
    assert event["statement"]["version"] != "1"  # a new version, not our own form's
    assert event["policy"] == {
        "version": "listmonk-2023",
        "url": "https://example.org/privacy-2023",
        "sha256": event["policy"]["sha256"],
    }
    assert consent.verify(store).ok
    # the publication date is covered by the text's digest
    with store.begin() as conn:
        conn.execute(
            text("UPDATE consent_texts SET body = '2020-01-01' WHERE version = 'listmonk-2023'")
        )
    assert "was edited" in consent.verify(store).problem


def test_later_events_of_an_imported_reader_name_the_statement_they_agreed_to(
    cli: Cli, store: Store
) -> None:
    """An unsubscribe, an export or a bounce is not a new consent: the reader's events
    after the import name the statement their consent rests on (the import's), never
    our own form's text, which they did not see."""
    result = cli("subscribers", "import", str(MAILCHIMP))
    assert result.exit_code == 0, result.output
    reader = next(s for s in audience.audience(store))
    assert cli("subscribers", "export", reader.email).exit_code == 0
    changes.unsubscribe(store, reader.id, method="one_click", source="test", evidence={})
    events = rights.show(store, reader.id)["events"]
    assert [e["event"] for e in events] == ["imported", "exported", "unsubscribed"]
    imported = events[0]["statement"]
    assert imported["text"].startswith("Imported from Mailchimp")
    assert [e["statement"] for e in events[1:]] == [imported, imported]
    ours = store.workspace.config.consent_statement
    assert all(e["statement"]["text"] != ours for e in events)
    assert consent.verify(store).ok
    # a consent given on our own form is recorded with our form's text, as before
    changes.resubscribe(store, reader.id, method="web_form", source="test", evidence={})
    assert rights.show(store, reader.id)["events"][-1]["statement"]["text"] == ours


def test_the_import_statement_is_in_the_newsletter_s_language(
    cli: Cli, store: Store, workspace
) -> None:
    """A reader sees the import statement in their data (Art. 15): it speaks the
    newsletter's language, and records it."""
    from _render_fixtures import set_config

    set_config(workspace, 'language = "en"', 'language = "ru"')
    result = cli("subscribers", "import", str(MAILCHIMP))
    assert result.exit_code == 0, result.output
    reader = next(s for s in audience.audience(store))
    (event,) = rights.show(store, reader.id)["events"]
    assert event["statement"]["language"] == "ru"
    assert event["statement"]["text"].startswith(
        "Импортировано из Mailchimp, список «members_export_5d1e8a3b7c»: читатель дал согласие"
    )


def test_registering_a_policy_checks_what_it_is_given(cli: Cli, store: Store) -> None:
    def add(*args: str) -> str:
        result = cli("consent", "policy", "add", *args)
        assert result.exit_code == 1
        return result.output

    assert "is not an http(s) URL" in add("v1", "--url", "privacy", "--published", "2023-01-01")
    assert "is not a date" in add("v1", "--url", "https://x.example/p", "--published", "Jan 2023")
    assert "is in the future" in add(
        "v1", "--url", "https://x.example/p", "--published", "2099-01-01"
    )
    assert (
        cli(
            "consent",
            "policy",
            "add",
            "v1",
            "--url",
            "https://x.example/p",
            "--published",
            "2023-01-01",
        )
    ).exit_code == 0
    again = cli(
        "consent",
        "policy",
        "add",
        "v1",
        "--url",
        "https://x.example/p",
        "--published",
        "2023-01-01",
    )
    assert again.exit_code == 0  # the same text again changes nothing
    assert "a version names one text" in add(
        "v1", "--url", "https://x.example/other", "--published", "2023-01-01"
    )


def test_stats_count_only_the_readers_an_import_makes_active(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    """`digest stats`: an import adds its active readers, not its pending or opted-out rows;
    a newer export's opt-outs leave the list that week."""
    assert cli("subscribers", "import", str(MAILCHIMP)).exit_code == 0  # 3 active, 3 opted out
    assert cli("subscribers", "import", str(EXPORTS / "kit" / "kit-subscribers.csv")).exit_code == 0
    newer = mailchimp_zip(
        tmp_path / "later.zip",
        unsubscribed=[unsubscribed("amara.osei@example.com", "2026-11-20 09:00:00")],
        cleaned=[cleaned("li.wei@example.net", "2026-11-25 04:00:00")],
    )
    assert cli("subscribers", "import", str(newer)).exit_code == 0
    data = json.loads(cli("stats", "--weeks", "1", "--json").output)["list"]
    (week,) = data["weeks"]
    assert (week["added"], week["unsubscribed"], week["bounced"]) == (5, 1, 1)
    assert data["active"] == week["active"] == 3 == audience.stats(store)["active"]
    assert data["active_before"] == 0


def test_an_unsubscribe_anywhere_outweighs_a_bounce(cli: Cli, store: Store, tmp_path: Path) -> None:
    """A bounce or complaint is lifted if the reader signs up and confirms again; an
    unsubscribe or block at the old tool is for good, whichever file or import says it."""
    both = mailchimp_zip(
        tmp_path / "both.zip",
        cleaned=[cleaned("ann@example.com", "2025-02-02 10:00:00")],
        unsubscribed=[unsubscribed("Ann@example.com", "2025-01-01 09:00:00")],
    )
    bounced_first = mailchimp_zip(
        tmp_path / "first.zip", cleaned=[cleaned("bob@example.com", "2025-02-02 10:00:00")]
    )
    left_later = mailchimp_zip(
        tmp_path / "later.zip",
        unsubscribed=[unsubscribed("bob@example.com", "2026-01-01 09:00:00")],
    )
    bounced_only = mailchimp_zip(
        tmp_path / "only.zip", cleaned=[cleaned("cy@example.com", "2025-02-02 10:00:00")]
    )
    for path in (both, bounced_first, left_later, bounced_only):
        assert cli("subscribers", "import", str(path)).exit_code == 0
    ann = record.find_by_email(store, "ann@example.com")
    assert ann is not None and ann.status == "unsubscribed"
    form = {"method": "web_form", "source": "test", "evidence": {}}
    for address in ("ann@example.com", "bob@example.com"):
        with pytest.raises(SubscriberError, match="suppression list"):
            changes.request_signup(store, address, None, **form)  # type: ignore[arg-type]
    # a bounce alone: the reader's own sign-up is taken, and only confirming lifts it
    cy = changes.request_signup(store, "cy@example.com", None, **form)  # type: ignore[arg-type]
    assert cy.status == "pending" and record.is_suppressed(store, "cy@example.com")
    assert consent.verify(store).ok
