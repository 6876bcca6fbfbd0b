"""The week moves on: once an issue has gone, new issues, additions and sends look ahead."""

from __future__ import annotations

from pathlib import Path

from _send_fixtures import SEND_DAY, add_readers
from conftest import Cli

from digest.issue import Article, create_issue, load_issue, save_issue
from digest.workspace import Workspace

BEFORE_SLOT = "2026-12-02T19:00:00Z"  # Wednesday; the slot is Friday 07:00 UTC


def _issue(ws: Workspace, day: str, status: str, *urls: str) -> Path:
    from datetime import date

    issue = create_issue(ws.issues_dir, date.fromisoformat(day), "The Weekly Brief")
    issue.subject = "Hello"
    issue.status = status
    issue.articles = [Article(url=u, title=f"Story {u[-1]}", section="News") for u in urls]
    return save_issue(issue)


def test_issue_new_passes_over_a_sent_slot(cli: Cli, workspace: Workspace) -> None:
    _issue(workspace, "2026-12-04", "sent")
    result = cli("--now", BEFORE_SLOT, "issue", "new")
    assert result.exit_code == 0, result.output
    assert (workspace.issues_dir / "2026-12-11.yaml").exists()
    assert "2026-12-04 is sent" in result.output


def test_issue_new_passes_over_sent_and_skipped_weeks(cli: Cli, workspace: Workspace) -> None:
    _issue(workspace, "2026-12-04", "sent")
    _issue(workspace, "2026-12-11", "skipped")
    result = cli("--now", BEFORE_SLOT, "issue", "new")
    assert result.exit_code == 0, result.output
    assert (workspace.issues_dir / "2026-12-18.yaml").exists()
    assert "2026-12-04 and 2026-12-11 are sent or skipped" in result.output


def test_issue_new_points_at_the_unsent_upcoming_issue(cli: Cli, workspace: Workspace) -> None:
    _issue(workspace, "2026-12-04", "draft")
    result = cli("--now", BEFORE_SLOT, "issue", "new")
    assert result.exit_code == 1
    assert "is draft: it is the upcoming issue" in result.output
    assert not (workspace.issues_dir / "2026-12-11.yaml").exists()


def test_add_goes_to_the_next_unsent_issue_and_says_which(cli: Cli, workspace: Workspace) -> None:
    _issue(workspace, "2026-12-04", "sent", "https://news.example/a1")
    result = cli(
        "--now", BEFORE_SLOT, "add", "https://news.example/b2", "--no-fetch", "--title", "B"
    )
    assert result.exit_code == 0, result.output
    assert "to 2026-12-11" in result.output
    assert "started the issue of 2026-12-11 (2026-12-04 is sent" in result.output
    assert [a.url for a in load_issue(workspace.issues_dir / "2026-12-11.yaml").articles] == [
        "https://news.example/b2"
    ]
    again = cli(
        "--now", BEFORE_SLOT, "add", "https://news.example/c3", "--no-fetch", "--title", "C"
    )
    assert "to 2026-12-11" in again.output and "started" not in again.output


def test_send_before_the_slot_says_when_the_slot_is(cli: Cli, send_ws: Workspace) -> None:
    add_readers(send_ws, 2)
    result = cli("--now", "2026-12-02T19:00:00Z", "send", SEND_DAY, input="n\n")
    assert "Slot Fri 4 Dec 07:00 UTC, in 1d 12h; send now anyway? [y/N]" in result.output
    assert result.output.rstrip().endswith("Nothing sent.")
    assert "Aborted" not in result.output
    assert result.exit_code == 1
    assert load_issue(send_ws.issues_dir / f"{SEND_DAY}.yaml").status == "ready"
    assert not list((send_ws.outbox_dir).rglob("*.eml"))


def test_send_at_the_slot_just_asks(cli: Cli, send_ws: Workspace) -> None:
    add_readers(send_ws, 1)
    result = cli("--now", "2026-12-04T07:00:00Z", "send", SEND_DAY, input="n\n")
    assert "Send now? [y/N]" in result.output and "Slot" not in result.output


def test_send_of_a_sent_issue_says_when_it_went(cli: Cli, send_ws: Workspace) -> None:
    add_readers(send_ws, 3)
    first = cli("--now", "2026-12-04T07:00:00Z", "send", SEND_DAY, "--yes")
    assert first.exit_code == 0, first.output
    again = cli("--now", "2026-12-04T09:00:00Z", "send", SEND_DAY, "--yes")
    assert again.exit_code == 1
    assert "already sent on " in again.output and "(3 of an audience of 3)" in again.output
    assert "this run sent" not in again.output
    undated = cli("--now", "2026-12-04T09:00:00Z", "send", "--yes")
    assert undated.exit_code == 1 and "already sent on " in undated.output
