"""Leaving is as easy as arriving: the whole list in a form digest, Mailchimp and listmonk import.

Every tool's fixture is imported, the list exported in each format, and the
files imported into a fresh store (the same backend): every reader comes
back with their status, suppression, name, consent time and IP, and their
attributes. Each person exported gets one ``exported`` event. An erasure
afterwards takes its reader out of every file, whatever the format.
"""

from __future__ import annotations

import csv
import io
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _store_fixtures import postgres_server
from conftest import FIXTURES, Cli
from sqlalchemy import select

from digest import consent
from digest.people import record, rights
from digest.people.imports import tools
from digest.store import Store, open_store, schema
from digest.workspace import Workspace, init_workspace, open_workspace

EXPORTS = FIXTURES / "exports"
SOURCES = [
    EXPORTS / "mailchimp" / "members_export_5d1e8a3b7c.zip",
    EXPORTS / "substack" / "email_list.example-gazette.csv",
    EXPORTS / "listmonk" / "subscribers.csv",
    EXPORTS / "ghost" / "members.2026-11-02.csv",
    EXPORTS / "buttondown" / "subscribers.csv",
    EXPORTS / "kit" / "kit-subscribers.csv",
]


@pytest.fixture
def fresh(backend: str, tmp_path: Path) -> Iterator[Store]:
    """Another workspace's store on the same backend, to import the exported files into."""
    root = tmp_path / "elsewhere"
    init_workspace(root)
    ws = open_workspace(root)
    if backend == "sqlite":
        with open_store(ws) as opened:
            yield opened
        return
    server = postgres_server()
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        opened = Store.connect(f"{server}?options=-csearch_path%3D{name}", ws)
        try:
            opened.upgrade()
            opened.check_keys()
            yield opened
        finally:
            opened.close()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def snapshot(store: Store) -> dict[str, dict[str, Any]]:
    """What the store holds about each reader, read from the records and the ledger."""
    people = {}
    for sub in record.list_subscribers(store):
        assert sub.email is not None
        shown = rights.show(store, sub.id)
        imported = next(e for e in shown["events"] if e["event"] == "imported")["evidence"]
        people[sub.email] = {
            "status": sub.status,
            "suppressed": shown["suppressed"],
            "name": sub.name,
            "consented_at": imported.get("consented_at") if sub.status == "active" else None,
            "ip": imported.get("optin_ip") or imported.get("ip") or "",
            "attributes": {k: str(v) for k, v in sub.attributes.items() if v != ""},
        }
    return people


def _fill(store: Store) -> dict[str, dict[str, Any]]:
    for path in SOURCES:
        assert tools.import_file(store, path).written
    return snapshot(store)


def _rows_by_email(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["email"]: row for row in csv.DictReader(handle)}


def _exported(store: Store) -> int:
    with store.read() as conn:
        return len(
            conn.execute(
                select(schema.consent_events.c.seq).where(
                    schema.consent_events.c.kind == "exported"
                )
            ).all()
        )


def test_round_trip_through_our_csv(cli: Cli, store: Store, fresh: Store, tmp_path: Path) -> None:
    before = _fill(store)
    target = tmp_path / "out" / "list.csv"
    target.parent.mkdir()
    result = cli("subscribers", "export", "--all", "--format", "csv", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote {len(before)} subscribers to {target}" in result.output
    assert _exported(store) == len(before)
    assert target.stat().st_mode & 0o777 == 0o600
    report = tools.import_file(fresh, target)
    assert report.written and report.tool == "csv" and report.invalid == 0
    after = snapshot(fresh)
    assert after == before
    assert consent.verify(fresh).ok


def test_round_trip_through_mailchimp(cli: Cli, store: Store, fresh: Store, tmp_path: Path) -> None:
    before = _fill(store)
    target = tmp_path / "audience.zip"
    result = cli("subscribers", "export", "--all", "--format", "mailchimp", "-o", str(target))
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as archive:
        names = sorted(archive.namelist())
        cleaned = archive.read("cleaned_members_export_audience.csv").decode("utf-8")
    assert names == sorted(
        f"{s}_members_export_audience.csv"
        for s in ("subscribed", "unsubscribed", "cleaned", "nonsubscribed")
    )
    header = next(csv.reader(io.StringIO(cleaned)))
    assert header[:3] == ["Email Address", "First Name", "Last Name"] and "CLEAN_TIME" in header
    report = tools.import_file(fresh, target)
    assert report.written and report.tool == "mailchimp" and report.invalid == 0
    after = snapshot(fresh)
    pending = {email for email, p in before.items() if p["status"] == "pending"}
    assert report.skipped == len(pending)  # Mailchimp's non-subscribed: never opted in
    assert set(after) == set(before) - pending
    for email, was in before.items():
        if email in pending:
            continue
        now = after[email]
        assert (now["status"], now["suppressed"], now["name"], now["ip"]) == (
            was["status"],
            was["suppressed"],
            was["name"],
            was["ip"],
        ), email
        if was["consented_at"]:  # Mailchimp keeps whole seconds
            assert now["consented_at"] == was["consented_at"][:19] + ".000000Z", email
        assert now["attributes"] == was["attributes"], email
    assert consent.verify(fresh).ok


def _to_listmonk(cli: Cli, tmp_path: Path, *only: str) -> Path:
    """``subscribers export --all [only...] --format listmonk`` into a folder of its own:
    the main file's path (its companion files beside it)."""
    folder = tmp_path / "for-listmonk"
    folder.mkdir(exist_ok=True)
    target = folder / "subscribers.csv"
    result = cli("subscribers", "export", "--all", *only, "--format", "listmonk", "-o", str(target))
    assert result.exit_code == 0, result.output
    return target


def test_round_trip_through_listmonk(cli: Cli, store: Store, fresh: Store, tmp_path: Path) -> None:
    before = _fill(store)
    folder = _to_listmonk(cli, tmp_path).parent
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["subscribers.blocklist.csv", "subscribers.csv", "subscribers.unconfirmed.csv"]
    blocked = list(_rows_by_email(folder / "subscribers.blocklist.csv").values())
    assert {row["status"] for row in blocked} == {"blocklisted"}
    assert {row["email"] for row in blocked} == {e for e, p in before.items() if p["suppressed"]}
    report = tools.import_file(fresh, folder)  # the three files as one export
    assert report.written and report.tool == "listmonk" and report.invalid == 0
    after = snapshot(fresh)
    assert set(after) == set(before)
    for email, was in before.items():
        assert after[email] == was, email
    assert consent.verify(fresh).ok


def test_a_listmonk_export_again_leaves_no_file_of_the_last_one(
    cli: Cli, store: Store, fresh: Store, tmp_path: Path
) -> None:
    """The files of a listmonk export are the export: exporting again to the same name
    takes away the companion files this export has nobody for, or listmonk would
    import last week's blocklist (or unconfirmed readers) along with it."""
    before = _fill(store)
    folder = _to_listmonk(cli, tmp_path).parent
    assert len(list(folder.iterdir())) == 3
    _to_listmonk(cli, tmp_path, "--status", "active")
    assert sorted(p.name for p in folder.iterdir()) == ["subscribers.csv"]
    report = tools.import_file(fresh, folder)
    assert report.tool == "listmonk" and report.invalid == 0
    active = {e for e, p in before.items() if p["status"] == "active" and not p["suppressed"]}
    assert set(snapshot(fresh)) == active


def test_an_opt_out_the_old_tool_gave_no_time_is_exported_without_one(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    """Kit says who cancelled but not when: the export leaves the time empty rather than
    passing the import's own time on as the opt-out's (which the next tool would keep)."""
    assert tools.import_file(store, EXPORTS / "kit" / "kit-subscribers.csv").written
    target = tmp_path / "all.csv"
    result = cli("subscribers", "export", "--all", "-o", str(target))
    assert result.exit_code == 0, result.output
    cancelled = _rows_by_email(target)["t.walsh@example.com"]
    assert cancelled["status"] != "active" and cancelled["opted_out_at"] == "", cancelled
    # one who leaves here later has the time of leaving
    ingrid = record.find_by_email(store, "ingrid.berg@example.com")
    assert ingrid is not None
    from digest.people import changes

    changes.unsubscribe(store, ingrid.id, method="one_click", source="test", evidence={})
    assert cli("subscribers", "export", "--all", "-o", str(target)).exit_code == 0
    rows = _rows_by_email(target)
    assert rows["ingrid.berg@example.com"]["opted_out_at"].startswith("2026-12-02")  # "now"
    assert rows["t.walsh@example.com"]["opted_out_at"] == ""


def test_erasure_takes_the_reader_out_of_every_format(
    cli: Cli, store: Store, workspace: Workspace
) -> None:
    _fill(store)
    email = "amara.osei@example.com"
    folder = workspace.root / "exports"
    folder.mkdir()
    for fmt, name in (("csv", "all.csv"), ("mailchimp", "all.zip"), ("listmonk", "lm.csv")):
        written = cli("subscribers", "export", "--all", "--format", fmt, "-o", str(folder / name))
        assert written.exit_code == 0, written.output
    result = cli("subscribers", "erase", email, "--yes")
    assert result.exit_code == 0, result.output
    assert "exports/all.zip (their row)" in result.output
    for path in folder.iterdir():
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                texts = [archive.read(n).decode("utf-8") for n in archive.namelist()]
            assert sum(t.count("\n") for t in texts) > 4  # the others are still there
        else:
            texts = [path.read_text(encoding="utf-8")]
        assert not any(email in t or "Amara" in t for t in texts), path


def test_a_reader_imported_pending_who_confirmed_is_exported_with_the_confirmation_time(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    from digest.people import changes

    source = tmp_path / "list.csv"
    source.write_text("email,name,consented_at\nlate@example.com,Late,\n", encoding="utf-8")
    imported = cli("subscribers", "import", str(source), "--policy-version", "2026-05-01")
    assert imported.exit_code == 0, imported.output
    late = record.find_by_email(store, "late@example.com")
    assert late is not None and late.status == "pending"
    changes.confirm(store, late.id, method="link", source="test", evidence={})
    target = tmp_path / "subscribers.csv"
    result = cli("subscribers", "export", "--all", "--format", "listmonk", "-o", str(target))
    assert result.exit_code == 0, result.output
    row = _rows_by_email(target)["late@example.com"]
    assert row["created_at"].startswith("2026-12-02"), row  # the confirmation, tests' "now"
