"""Each tool's export, as the tool hands it over: who is mailed, who is suppressed, what is kept.

The fixtures (tests/fixtures/exports/, described in its README) are the real
header, quoting, line endings and status values of each tool. For each one:
the outcome of every row, every opted-out address on the suppression list
and never mailed, the pending readers without evidence, and the evidence on
the ``imported`` event. Then a real send to the outbox mails exactly the
active readers: no one who opted out anywhere.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from email import message_from_string, policy
from pathlib import Path

import pytest
from _send_fixtures import SEND_DAY
from conftest import FIXTURES, Cli

from digest import consent
from digest.people import audience, record, rights
from digest.send import engine
from digest.store import Store, open_store
from digest.workspace import Workspace

EXPORTS = FIXTURES / "exports"


@dataclass
class Case:
    path: Path
    counts: dict[str, int]  # active, pending, suppressed, merged, refused, skipped
    active: set[str]
    pending: set[str]
    opted_out: dict[str, str]  # address -> the status it gets
    evidence: tuple[str, dict[str, object]]  # an active address and some of its evidence
    row: tuple[str, int]  # the file (or zip member) and line of that address's row
    left_at: dict[str, str] = field(default_factory=dict)  # opt-out times kept
    attributes: tuple[str, dict[str, object]] = ("", {})


CASES = {
    "mailchimp": Case(
        EXPORTS / "mailchimp" / "members_export_5d1e8a3b7c.zip",
        {"active": 3, "pending": 0, "suppressed": 3, "merged": 0, "refused": 0, "skipped": 0},
        {"amara.osei@example.com", "jose.alvarez@example.org", "li.wei@example.net"},
        set(),
        {
            "p.nowak@example.com": "unsubscribed",
            "g.haddad@example.org": "unsubscribed",
            "old.account@example.net": "bounced",
        },
        (
            "amara.osei@example.com",
            {
                "consented_at": "2021-05-03T08:14:22.000000Z",
                "optin_ip": "203.0.113.15",
                "confirmed_at": "2021-05-03T08:16:40.000000Z",
                "confirm_ip": "203.0.113.15",
                "listed_as": "subscribed",
                "name": "Amara Osei",
                "list": "members_export_5d1e8a3b7c",
                "file": "members_export_5d1e8a3b7c.zip",
                "part": "subscribed_members_export_5d1e8a3b7c.csv",
            },
        ),
        ("subscribed_members_export_5d1e8a3b7c.csv", 2),
        {
            "p.nowak@example.com": "2024-06-02T07:03:44.000000Z",
            "old.account@example.net": "2023-08-21T04:10:09.000000Z",
        },
        ("jose.alvarez@example.org", {"address": "Calle Mayor 5, 3º B, 28013 Madrid"}),
    ),
    "substack": Case(
        EXPORTS / "substack" / "email_list.example-gazette.csv",
        {"active": 3, "pending": 0, "suppressed": 2, "merged": 0, "refused": 0, "skipped": 1},
        {"hana.kobayashi@example.com", "m.dubois@example.org", "mañana.lector@example.net"},
        set(),
        {"t.brennan@example.com": "unsubscribed", "k.mensah@example.org": "unsubscribed"},
        (
            "m.dubois@example.org",
            {
                "consented_at": "2022-02-28T17:03:10.905000Z",
                "listed_as": "email_disabled=false",
                "list": "example-gazette",
            },
        ),
        ("", 3),
        attributes=("m.dubois@example.org", {"plan": "yearly"}),
    ),
    "listmonk": Case(
        EXPORTS / "listmonk" / "subscribers.csv",
        {"active": 3, "pending": 0, "suppressed": 3, "merged": 0, "refused": 0, "skipped": 0},
        {"r.fernandes@example.com", "anh.nguyen@example.org", "e.larsen@example.org"},
        set(),
        {
            "spam.trap@example.net": "unsubscribed",
            "d.kowalski@example.com": "unsubscribed",
            "left.list@example.net": "unsubscribed",
        },
        (
            "anh.nguyen@example.org",
            {
                "consented_at": "2023-07-02T18:03:11.070000Z",
                "source_id": "4847b7ad-f0e2-4455-afb0-133c16a44e86",
                "name": "Nguyễn Thị Anh",
                "listed_as": "enabled",
            },
        ),
        ("", 3),
        {"left.list@example.net": "2024-12-24T12:24:00.000000Z"},
        ("r.fernandes@example.com", {"city": "Porto"}),
    ),
    "ghost": Case(
        EXPORTS / "ghost" / "members.2026-11-02.csv",
        {"active": 4, "pending": 0, "suppressed": 2, "merged": 0, "refused": 0, "skipped": 0},
        {
            "f.adeyemi@example.com",
            "c.moreau@example.org",
            "paid.reader@example.com",
            "t.lindqvist@example.net",
        },
        set(),
        {"j.smith@example.net": "unsubscribed", "no.news@example.org": "unsubscribed"},
        (
            "t.lindqvist@example.net",
            {
                "consented_at": "2025-02-14T18:00:00.000000Z",
                "name": 'Tove "Tuva" Lindqvist',
                "source_id": "27994f7973644d73e7fc7abb",
            },
        ),
        ("", 8),
        attributes=("c.moreau@example.org", {"labels": "Press,VIP", "tiers": "Supporter"}),
    ),
    "buttondown": Case(
        EXPORTS / "buttondown" / "subscribers.csv",
        {"active": 2, "pending": 1, "suppressed": 3, "merged": 0, "refused": 0, "skipped": 0},
        {"a.kim@example.com", "b.ortiz@example.org"},
        {"c.duarte@example.net"},
        {
            "d.fischer@example.com": "unsubscribed",
            "e.bounce@example.org": "bounced",
            "f.spam@example.net": "complained",
        },
        (
            "b.ortiz@example.org",
            {
                "consented_at": "2023-10-21T15:21:12.000000Z",
                "optin_ip": "198.51.100.71",
                "name": "Beatriz Ortiz",
                "utm_source": "newsletter",
                "listed_as": "premium",
            },
        ),
        ("", 3),
        {"d.fischer@example.com": "2024-01-19T22:41:07.310000Z"},
        ("b.ortiz@example.org", {"city": "São Paulo", "tags": "weekly;supporters"}),
    ),
    "kit": Case(
        EXPORTS / "kit" / "kit-subscribers.csv",
        {"active": 2, "pending": 1, "suppressed": 3, "merged": 0, "refused": 0, "skipped": 0},
        {"ingrid.berg@example.com", "soren.holm@example.org"},
        {"pending.reader@example.net"},
        {
            "t.walsh@example.com": "unsubscribed",
            "dead.box@example.org": "bounced",
            "r.costa@example.net": "complained",
        },
        (
            "soren.holm@example.org",
            {"consented_at": "2023-01-05T07:30:00.000000Z", "name": "Søren", "listed_as": "active"},
        ),
        ("", 3),
        attributes=(
            "ingrid.berg@example.com",
            {"company": "Nordlys Media", "tags": "weekly, events"},
        ),
    ),
}


def _row_text(case: Case) -> str:
    """The text of the row the evidence names, as the file holds it."""
    member, line = case.row
    if member:
        with zipfile.ZipFile(case.path) as archive:
            data = archive.read(member)
    else:
        data = case.path.read_bytes()
    return data.decode("utf-8").replace("\r\n", "\n").split("\n")[line - 1]


@pytest.mark.parametrize("tool", sorted(CASES))
def test_each_tool_s_export(tool: str, cli: Cli, store: Store) -> None:
    case = CASES[tool]
    result = cli("subscribers", "import", "--from", tool, str(case.path))
    assert result.exit_code == 0, result.output
    total = next(x for x in result.output.splitlines() if x.startswith("total"))
    rows = sum(case.counts.values())
    expected = [rows, *(case.counts[k] for k in ("active", "pending", "suppressed", "merged"))]
    assert [int(n) for n in total.split()[1:6]] == expected, result.output
    if case.counts["pending"]:
        assert f"{case.counts['pending']} reader" in result.output
        assert "imported as pending" in result.output

    assert {s.email for s in audience.audience(store)} == case.active
    for address in case.pending:
        found = record.find_by_email(store, address)
        assert found is not None and found.status == "pending", address
    for address, status in case.opted_out.items():
        assert record.is_suppressed(store, address), address
        found = record.find_by_email(store, address)
        assert found is not None and found.status == status, address
    with store.read() as conn:
        reasons = dict(
            conn.execute(
                consent.schema.suppressions.select().with_only_columns(
                    consent.schema.suppressions.c.key, consent.schema.suppressions.c.created_at
                )
            ).all()
        )
    for address, when in case.left_at.items():
        assert reasons[record.email_key(store, address)] == when, address

    address, expected_evidence = case.evidence
    shown = rights.show(store, address)
    (event,) = shown["events"]
    assert event["event"] == "imported" and event["method"] == "import"
    evidence = event["evidence"]
    assert {k: evidence[k] for k in expected_evidence} == expected_evidence
    assert evidence["tool"] == tool and evidence["line"] == case.row[1]
    assert evidence["row_sha256"] == hashlib.sha256(_row_text(case).encode()).hexdigest()
    # the statement names the tool and the list, never our own form's wording
    statement = event["statement"]["text"]
    assert CASES[tool].path.name in statement or evidence["list"] in statement
    assert store.workspace.config.consent_statement not in statement
    if case.attributes[0]:
        who, attributes = case.attributes
        kept = rights.show(store, who)["subscriber"]["attributes"]
        assert {k: kept.get(k) for k in attributes} == attributes
    assert consent.verify(store).ok


def _recipients(ws: Workspace) -> set[str]:
    found = set()
    for path in (ws.outbox_dir / SEND_DAY).glob("*.eml"):
        text = path.read_text(encoding="utf-8")  # RFC 6532: a UTF-8 address stays UTF-8
        message = message_from_string(text, policy=policy.default)
        found.add(message["To"].addresses[0].addr_spec)
    return found


@pytest.mark.parametrize("tool", sorted(CASES))
def test_a_send_after_the_import_mails_no_one_who_opted_out(
    tool: str, send_ws: Workspace, cli: Cli
) -> None:
    case = CASES[tool]
    assert cli("subscribers", "import", str(case.path)).exit_code == 0  # recognised by header
    report = engine.run_send(send_ws, SEND_DAY)
    assert report.counts["sent"] == len(case.active)
    mailed = _recipients(send_ws)
    assert mailed == case.active
    assert not mailed & set(case.opted_out) and not mailed & case.pending
    with open_store(send_ws) as store:
        assert consent.verify(store).ok


def test_the_tool_is_recognised_from_the_header(cli: Cli, store: Store) -> None:
    for tool, case in sorted(CASES.items()):
        result = cli("subscribers", "import", "--dry-run", str(case.path))
        assert result.exit_code == 0, result.output
        title = {"listmonk": "listmonk", "kit": "Kit"}.get(tool, tool.capitalize())
        assert f"read as a {title} export (recognised by its header)" in result.output


def test_the_wrong_tool_names_the_right_one(cli: Cli, store: Store) -> None:
    result = cli("subscribers", "import", "--from", "ghost", str(CASES["listmonk"].path))
    assert result.exit_code == 1
    assert "this looks like a listmonk export, not Ghost's" in result.output
    assert "lacks id, subscribed_to_emails; use --from listmonk" in result.output


def test_a_header_no_tool_writes_names_the_nearest_and_what_they_lack(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "almost.csv"
    path.write_text(
        "uuid,email,name,status,created_at\nx,a@example.com,A,enabled,2024-01-01 00:00:00\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert f"{path}:1: the header ('uuid', 'email', 'name', 'status', 'created_at') is no " in (
        result.output
    )
    assert "it almost matches listmonk (lacks attributes)" in result.output
    assert "Kit (lacks state or email_address or first_name)" in result.output  # not a guess
    assert "digest's own CSV (lacks consented_at)" in result.output
    assert "--map 'Their Column=email'" in result.output
    assert audience.stats(store)["events"] == 0


def test_substack_s_export_zip_is_read_for_its_email_list(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "posts.csv", "post_id,post_date,is_published,title\n1,2024-01-01,true,Hi\n"
        )
        archive.write(CASES["substack"].path, "email_list.example-gazette.csv")
        archive.writestr("posts/1.hello.html", "<p>Hi</p>")
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "read as a Substack export (recognised by its header)" in result.output
    assert {s.email for s in audience.audience(store)} == CASES["substack"].active
    (event,) = rights.show(store, "m.dubois@example.org")["events"]
    assert event["evidence"]["list"] == "example-gazette"
