"""The README's first command: the demo runs the whole path offline."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from click.testing import CliRunner

from digest.cli import main
from digest.issue import load_issue


def test_demo_runs_to_the_end_and_mails_nothing(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "chain verifies" in result.output
    assert "0 errors" in result.output

    issue = (
        load_issue(root / "issues" / "2026-12-04.yaml")
        if (root / "issues" / "2026-12-04.yaml").exists()
        else load_issue(next((root / "issues").glob("*.yaml")))
    )
    assert issue.status == "sent"
    titles = [a.title for a in issue.articles]
    assert "Putin to Make 'Significant' November Visit to Beijing" in titles
    assert "Санкции и экономика: оценка потерь в 2–3 процента" in titles
    assert len(titles) == 6

    messages = sorted((root / "outbox" / issue.slug).glob("*.eml"))
    assert len(messages) == 9
    recipients = set()
    for path in messages:
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.add(str(parsed["To"]))
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = parsed.get_body(("html",))
        assert html is not None and "Tula" in html.get_content()
    assert len(recipients) == 9


def test_demo_refuses_an_existing_workspace(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(tmp_path)]).exit_code == 0
    result = runner.invoke(main, ["demo", str(tmp_path)])
    assert result.exit_code == 1
    assert "already holds a workspace" in result.output
