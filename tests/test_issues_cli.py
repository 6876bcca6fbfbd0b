"""The issue commands end to end: new, list, show, ready, skip, move, remove."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
from conftest import FIXTURES, Cli

from digest.issue import load_issue
from digest.workspace import Workspace

SAMPLE = FIXTURES.parent.parent / "issues" / "2026-12-04.yaml"


def _with_sample(workspace: Workspace) -> None:
    shutil.copy(SAMPLE, workspace.issues_dir / SAMPLE.name)


def test_new_issue_is_the_next_friday(cli: Cli, workspace: Workspace) -> None:
    result = cli("--now", "2026-11-28T10:00:00Z", "issue", "new")
    assert result.exit_code == 0, result.output
    made = load_issue(workspace.issues_dir / "2026-12-04.yaml")
    assert made.date == date(2026, 12, 4)
    assert made.status == "draft"
    assert made.articles == []


def test_new_issue_on_friday_before_and_after_the_send_time(cli: Cli, workspace: Workspace) -> None:
    assert cli("--now", "2026-12-04T06:59:00Z", "issue", "new").exit_code == 0
    assert (workspace.issues_dir / "2026-12-04.yaml").exists()
    assert cli("--now", "2026-12-04T07:01:00Z", "issue", "new").exit_code == 0
    assert (workspace.issues_dir / "2026-12-11.yaml").exists()


def test_new_issue_refuses_another_weekday_unless_forced(cli: Cli, workspace: Workspace) -> None:
    result = cli("issue", "new", "--date", "2026-12-02")
    assert result.exit_code == 1
    assert "Wednesday" in result.output and "--force" in result.output
    assert not (workspace.issues_dir / "2026-12-02.yaml").exists()
    assert cli("issue", "new", "--date", "2026-12-02", "--force").exit_code == 0
    assert (workspace.issues_dir / "2026-12-02.yaml").exists()


def test_new_issue_never_overwrites(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    before = (workspace.issues_dir / SAMPLE.name).read_bytes()
    result = cli("issue", "new", "--date", "2026-12-04")
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert (workspace.issues_dir / SAMPLE.name).read_bytes() == before


def test_bad_date_is_a_clear_error(cli: Cli) -> None:
    result = cli("issue", "new", "--date", "04/12/2026")
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_list_and_show(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    listed = cli("issue", "list", "--json")
    assert json.loads(listed.output) == [
        {
            "date": "2026-12-04",
            "status": "draft",
            "articles": 6,
            "subject": "Moscow turns east: gas, cars and a floating reactor",
        }
    ]
    shown = cli("--now", "2026-11-28T10:00:00Z", "issue", "show")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines.index("News") < lines.index("Features") < lines.index("Analysis")
    assert any(line.strip().startswith("6. Russia's Rapprochement") for line in lines)
    data = json.loads(cli("issue", "show", "2026-12-04", "--json").output)
    assert data["articles"][2]["author"] == "Anna Petrova and Ivan Sidorov"


def test_show_without_upcoming_issue(cli: Cli) -> None:
    result = cli("issue", "show")
    assert result.exit_code == 1
    assert "digest issue new" in result.output


def test_ready_then_skip_then_draft(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    path = workspace.issues_dir / SAMPLE.name
    assert cli("issue", "ready", "2026-12-04").exit_code == 0
    assert load_issue(path).status == "ready"
    text = path.read_text()
    assert "# draft -> ready" in text, "the status line's comment survives"
    assert cli("issue", "skip", "2026-12-04").exit_code == 0
    assert load_issue(path).status == "skipped"
    assert cli("issue", "draft", "2026-12-04").exit_code == 0
    assert load_issue(path).status == "draft"


def test_skip_a_future_week_creates_its_file(cli: Cli, workspace: Workspace) -> None:
    assert cli("issue", "skip", "2026-12-25").exit_code == 0
    assert load_issue(workspace.issues_dir / "2026-12-25.yaml").status == "skipped"


def test_a_sent_issue_does_not_change(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    path = workspace.issues_dir / SAMPLE.name
    path.write_text(path.read_text().replace("status: draft", "status: sent"))
    before = path.read_bytes()
    result = cli("remove", "1", "--issue", "2026-12-04")
    assert result.exit_code == 1
    assert "sent" in result.output
    assert path.read_bytes() == before


def test_move_within_and_across_sections(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    path = workspace.issues_dir / SAMPLE.name
    result = cli("move", "5", "--to", "1", "--issue", "2026-12-04")
    assert result.exit_code == 0, result.output
    titles = [a.title for a in load_issue(path).articles]
    assert titles[3].startswith("Санкции"), titles
    by_url = "https://brief.example.com/articles/gas-contract.html"
    assert cli("move", by_url, "--section", "opinion", "--issue", "2026-12-04").exit_code == 0
    moved = load_issue(path).articles
    assert moved[-1].url == by_url and moved[-1].section == "Opinion"
    text = path.read_text()
    assert "# Editor's note: our own take beats the page's description here." in text


def test_move_to_unknown_section(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    result = cli("move", "1", "--section", "Sport", "--issue", "2026-12-04")
    assert result.exit_code == 1
    assert "News, Features, Analysis, Opinion" in result.output


def test_remove_by_number_and_url(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    path = workspace.issues_dir / SAMPLE.name
    assert cli("remove", "1", "--issue", "2026-12-04").exit_code == 0
    url = "https://brief.example.com/articles/rapprochement.html"
    assert cli("remove", url, "--issue", "2026-12-04").exit_code == 0
    assert [a.url for a in load_issue(path).articles if a.url == url] == []
    assert len(load_issue(path).articles) == 4
    missing = cli("remove", "99", "--issue", "2026-12-04")
    assert missing.exit_code == 1 and "no article 99 (the issue has 4" in missing.output


def test_ready_refuses_an_issue_that_fails_its_check(cli: Cli, workspace: Workspace) -> None:
    assert cli("issue", "new", "--date", "2026-12-04").exit_code == 0
    path = workspace.issues_dir / "2026-12-04.yaml"
    result = cli("issue", "ready", "2026-12-04")
    assert result.exit_code == 1
    assert "not marked ready" in result.output and "--force" in result.output
    assert load_issue(path).status == "draft"
    assert cli("issue", "ready", "2026-12-04", "--force").exit_code == 0
    assert load_issue(path).status == "ready"


def test_list_names_a_broken_file_and_still_lists_the_others(
    cli: Cli, workspace: Workspace
) -> None:
    _with_sample(workspace)
    (workspace.issues_dir / "2026-12-11.yaml").write_text("date: 2026-12-11\nsubject: [oops\n")
    result = cli("issue", "list")
    assert result.exit_code == 1
    assert "2026-12-04  draft" in result.output
    assert "2026-12-11.yaml:" in result.output


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("2026-02-30", "2026-02-30 does not exist: February 2026 has 28 days"),
        ("2028-02-30", "2028-02-30 does not exist: February 2028 has 29 days"),
        ("2026-11-31", "2026-11-31 does not exist: November 2026 has 30 days"),
        ("2026-13-04", "2026-13-04 does not exist: there is no month 13"),
        ("2026-12-00", "2026-12-00 does not exist: days start at 1"),
    ],
)
def test_a_date_in_the_right_form_that_does_not_exist_says_so(
    cli: Cli, typed: str, said: str
) -> None:
    result = cli("issue", "new", "--date", typed)
    assert result.exit_code == 2
    assert said in " ".join(result.output.split())
    assert "YYYY-MM-DD" not in result.output
