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


def test_stats_and_the_stats_page_work_on_the_demo(tmp_path: Path) -> None:
    import asyncio
    import json

    import httpx

    from digest.web.preview import app as preview_app
    from digest.workspace import open_workspace

    root = tmp_path / "demo"
    runner = CliRunner()
    demo = runner.invoke(main, ["demo", str(root)], catch_exceptions=False)
    assert demo.exit_code == 0 and f"digest -C {root} stats" in demo.output
    result = runner.invoke(main, ["-C", str(root), "stats", "--json"], catch_exceptions=False)
    data = json.loads(result.output)
    assert data["list"]["active"] == 9
    assert data["list"]["weeks"][-1]["added"] == 8 and data["list"]["weeks"][-1]["confirmed"] == 1
    [issue] = data["issues"]
    assert (issue["audience"], issue["sent"], issue["failed"]) == (9, 9, 0)
    assert issue["subject"] == "Moscow turns east: gas, cars and a floating reactor"

    page = tmp_path / "stats.html"
    written = runner.invoke(main, ["-C", str(root), "stats", "--html", str(page)])
    assert written.exit_code == 0, written.output
    assert "Moscow turns east" in page.read_text(encoding="utf-8")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=preview_app(open_workspace(root)))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/stats")

    reply = asyncio.run(get())
    assert reply.status_code == 200 and "How it went" in reply.text
    assert reply.text.count("<svg") == 2 * 4  # no answers yet: no chart of reasons
    assert "<script" not in reply.text


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
