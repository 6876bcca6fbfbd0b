"""The README's first command: the demo runs the whole path offline."""

from __future__ import annotations

import email
import subprocess
import tempfile
from email import policy
from pathlib import Path

import pytest
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


def test_the_demo_leaves_the_folder_it_runs_in_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's first command runs in a fresh clone: `git status` stays clean after it."""
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "README.md").write_text("a clone\n", encoding="utf-8")
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], check=True)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(clone)

    result = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == "", status.stdout
    (made,) = scratch.iterdir()
    assert made.name.startswith("digest-demo-") and (made / "digest.toml").is_file()
    assert f"1. Workspace        {made}" in result.output
