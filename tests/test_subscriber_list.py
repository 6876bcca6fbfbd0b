"""The subscriber list reads like a list; JSON has one convention; the operator's full export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import FIXTURES, Cli
from sqlalchemy import select

from digest import consent, roster
from digest.store import Store, schema

SIGNUPS = FIXTURES / "subscribers" / "signups.csv"


def _import(cli: Cli) -> None:
    assert cli("subscribers", "import", str(SIGNUPS), "--skip-invalid").exit_code == 0


def test_list_is_a_table_with_consent_date_and_source(cli: Cli, store: Store) -> None:
    _import(cli)
    cli("subscribers", "add", "kim@example.com", "--source", "asked at the desk", "--confirmed")
    cli("--now", "2026-12-01T10:00:00Z", "subscribers", "add", "jo@example.com", "--source", "x")
    lines = cli("--now", "2026-12-01T10:00:00Z", "subscribers", "list").output.splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "NAME", "STATUS", "CONSENTED", "SOURCE"]
    anna = next(x for x in lines if "a***@example.com" in x)
    # the consent date is the file's, not the day of the import; the source names file and row
    assert "Anna Petrova" in anna and "active" in anna and "2026-10-02" in anna
    assert "signups.csv: web form" in anna
    kim = next(x for x in lines if "k***@example.com" in x)
    assert "asked at the desk" in kim
    jo = next(x for x in lines if "j***@example.com" in x)
    assert "pending" in jo and "2026-" not in jo.split("pending")[1].split("x")[0]
    assert "anna@example.com" not in "\n".join(lines)  # masked
    assert lines[-1] == "7 subscribers"
    elena = next(x for x in lines if "e***@example.org" in x)  # no consent date in the file
    assert "pending" in elena and "2026-" not in elena.split("pending")[1]
    one = cli("subscribers", "list", "--status", "pending").output.splitlines()
    assert one[-1] == "2 subscribers (pending)"


def test_json_is_one_array_and_jsonl_one_object_a_line(cli: Cli, store: Store) -> None:
    _import(cli)
    as_json = cli("subscribers", "list", "--json").output
    rows = json.loads(as_json)
    assert isinstance(rows, list) and len(rows) == 5
    assert set(rows[0]) == {"id", "email", "name", "status", "consented_at", "source", "created_at"}
    # spelled exactly as json.dumps(indent=2) spells the whole array
    assert as_json == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    lines = cli("subscribers", "list", "--jsonl").output.splitlines()
    assert [json.loads(x) for x in lines] == rows
    empty = cli("subscribers", "list", "--status", "bounced", "--json").output
    assert json.loads(empty) == []
    both = cli("subscribers", "list", "--json", "--jsonl")
    assert both.exit_code == 2


def test_issue_list_and_deliveries_follow_the_same_convention(
    cli: Cli, store: Store, workspace
) -> None:
    cli("--now", "2026-11-30T10:00:00Z", "issue", "new")
    cli("--now", "2026-11-30T10:00:00Z", "issue", "skip", "2026-12-11")
    out = cli("issue", "list", "--json").output
    issues = json.loads(out)
    assert [i["date"] for i in issues] == ["2026-12-04", "2026-12-11"]
    assert out == json.dumps(issues, indent=2, ensure_ascii=False) + "\n"
    lines = cli("issue", "list", "--jsonl").output.splitlines()
    assert [json.loads(x) for x in lines] == issues
    deliveries = cli("--now", "2026-11-30T10:00:00Z", "deliveries", "--json").output
    stats = json.loads(deliveries)
    assert isinstance(stats, dict) and stats["issue"] == "2026-12-04"
    assert deliveries == json.dumps(stats, indent=2, ensure_ascii=False) + "\n"


def test_export_all_to_csv_neutralises_formulas_and_is_recorded(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    _import(cli)
    cli("subscribers", "add", "mal@example.com", "--name", "=HYPERLINK(1)", "--source", "+1 desk")
    cli("subscribers", "add", "at@example.com", "--name", "@SUM(A1)", "--source", "-2")
    with store.read() as conn:
        before = conn.execute(select(schema.chain_head.c.seq)).scalar_one()
    target = tmp_path / "list.csv"
    result = cli("subscribers", "export", "--all", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote 7 subscribers to {target}"
    assert target.stat().st_mode & 0o777 == 0o600
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_email = {r["email"]: r for r in rows}
    assert "anna@example.com" in by_email and "пользователь@пример.рф" in by_email
    assert by_email["mal@example.com"]["name"] == "'=HYPERLINK(1)"
    assert by_email["mal@example.com"]["source"] == "'+1 desk"
    assert by_email["at@example.com"]["name"] == "'@SUM(A1)"
    assert by_email["at@example.com"]["source"] == "'-2"
    assert by_email["anna@example.com"]["consented_at"].startswith("2026-10-02")
    # one `exported` event per person, by the operator, naming the file; the chain holds
    with store.read() as conn:
        events = conn.execute(
            select(schema.consent_events).where(schema.consent_events.c.seq > before)
        ).all()
    assert len(events) == 7
    assert {e.kind for e in events} == {"exported"} and {e.method for e in events} == {"admin"}
    # every cell is neutralised alike: a random id that starts with "-" gets its "'" too
    assert {roster.neutralise(e.subject_id) for e in events} == {r["id"] for r in rows}
    assert all(e.source.startswith("cli") for e in events)
    assert consent.verify(store).ok


def test_export_all_to_json_with_a_status(cli: Cli, store: Store, tmp_path: Path) -> None:
    _import(cli)
    cli("subscribers", "add", "jo@example.com", "--source", "desk")
    target = tmp_path / "pending.json"
    assert (
        cli("subscribers", "export", "--all", "--status", "pending", "-o", str(target)).exit_code
        == 0
    )
    data = json.loads(target.read_text(encoding="utf-8"))
    assert sorted((r["email"], r["status"]) for r in data) == [
        ("elena@example.org", "pending"),
        ("jo@example.com", "pending"),
    ]


def test_export_all_needs_a_csv_or_json_file(cli: Cli, store: Store, tmp_path: Path) -> None:
    assert cli("subscribers", "export", "--all").exit_code == 2
    bad = cli("subscribers", "export", "--all", "-o", str(tmp_path / "list.xlsx"))
    assert bad.exit_code == 1 and "must end in .csv, .json or .zip" in bad.output
    assert not (tmp_path / "list.xlsx").exists()
    assert cli("subscribers", "export", "--status", "active").exit_code == 2


def test_neutralise() -> None:
    assert [roster.neutralise(c) for c in ("=1+1", "+1", "-1", "@A1", "\tx", "plain", "")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A1",
        "'\tx",
        "plain",
        "",
    ]


def test_every_json_option_says_array_or_object() -> None:
    import click

    from digest.cli import main

    def walk(group: click.Group) -> list[click.Command]:
        ctx = click.Context(group)
        found = []
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            found.append(command)
            if isinstance(command, click.Group):
                found.extend(walk(command))
        return found

    for command in walk(main):
        for param in command.params:
            if "--json" in getattr(param, "opts", ()):
                assert param.help in ("Print one JSON array.", "Print one JSON object."), (
                    command.name
                )
