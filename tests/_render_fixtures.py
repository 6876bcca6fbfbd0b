"""Fixtures for rendering: a workspace holding a complete issue."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from digest.issue import Article, Issue, save_issue
from digest.workspace import Workspace

ISSUE_DAY = date(2026, 12, 4)
SECTIONS = ("News", "Features", "Analysis", "Opinion")


def sample_issue(count: int = 6, day: date = ISSUE_DAY) -> Issue:
    """An issue of ``count`` articles spread over the default sections."""
    articles = []
    for n in range(count):
        section = SECTIONS[n % len(SECTIONS)]
        articles.append(
            Article(
                url=f"https://news.example.com/2026/12/story-{n}",
                title=f"Story {n}: what the port strike means for winter fuel",
                section=section,
                summary="Dockers walked out on Monday. Ships are queueing & prices are rising.",
                author="Anna Petrova" if n % 2 else "",
                image=f"https://news.example.com/img/{n}.jpg" if n % 3 == 0 else "",
                blurb="Our **energy desk** read the contract." if n % 4 == 1 else "",
            )
        )
    articles.sort(key=lambda a: SECTIONS.index(a.section))
    return Issue(
        date=day,
        subject="The port strike, a gas deal & a day in Tula",
        preheader="Six stories for your Friday.",
        intro="Good morning. This week: **strikes**, contracts\nand a [letter](https://news.example.com/letters).",
        articles=articles,
    )


def write_issue(ws: Workspace, issue: Issue) -> Issue:
    save_issue(issue, ws.issues_dir / f"{issue.date.isoformat()}.yaml")
    return issue


def set_config(ws: Workspace, old: str, new: str) -> Workspace:
    path: Path = ws.config_path
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return ws.reload()


@pytest.fixture
def issue_ws(workspace: Workspace) -> Workspace:
    """The shared workspace with a six-article issue dated 2026-12-04."""
    write_issue(workspace, sample_issue())
    return workspace
