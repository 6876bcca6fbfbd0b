"""Language and direction: the newsletter's or the issue's tag on <html> and the wrapper."""

from __future__ import annotations

import re

import pytest
from _render_fixtures import ISSUE_DAY, sample_issue, set_config, write_issue

from digest.errors import ConfigError, IssueError
from digest.issue import load_issue, workspace_issue
from digest.languages import direction
from digest.render import Recipient, prepare
from digest.workspace import Workspace

READER = Recipient("1", "ann@example.com", "Ann")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en", "ltr"),
        ("ru", "ltr"),
        ("ar", "rtl"),
        ("he-IL", "rtl"),
        ("fa", "rtl"),
        ("az-Arab", "rtl"),
        ("ku-Latn", "ltr"),
        ("pt-BR", "ltr"),
        ("ur", "rtl"),
    ],
)
def test_direction_of_a_tag(tag: str, expected: str) -> None:
    assert direction(tag) == expected


def wrapper(html: str) -> str:
    return re.search(r'<div class="wrapper" role="article"[^>]*>', html).group()


def test_the_newsletter_language_is_on_html_and_the_wrapper(workspace: Workspace) -> None:
    write_issue(workspace, sample_issue(2))
    html = prepare(workspace, workspace_issue(workspace, ISSUE_DAY)).html(READER)
    assert '<html lang="en" dir="ltr"' in html
    assert 'aria-roledescription="email"' in wrapper(html)
    assert 'lang="en"' in wrapper(html) and 'dir="ltr"' in wrapper(html)


def test_an_issue_language_overrides_and_round_trips(workspace: Workspace) -> None:
    issue = sample_issue(2)
    issue.language = "ru"
    write_issue(workspace, issue)
    text = issue.path.read_text(encoding="utf-8") if issue.path else ""
    assert "language: ru\n" in text and text.index("language:") < text.index("status:")
    assert load_issue(issue.path).language == "ru"
    html = prepare(workspace, workspace_issue(workspace, ISSUE_DAY)).html(READER)
    assert '<html lang="ru" dir="ltr"' in html and 'lang="ru"' in wrapper(html)


def test_a_right_to_left_newsletter_mirrors_its_alignment(workspace: Workspace) -> None:
    ws = set_config(workspace, 'language = "en"', 'language = "he"')
    write_issue(ws, sample_issue(2))
    html = prepare(ws, workspace_issue(ws, ISSUE_DAY)).html(READER)
    assert '<html lang="he" dir="rtl"' in html and 'dir="rtl"' in wrapper(html)
    assert '<td class="masthead" align="right"' in html
    assert '<td class="topbar" align="left"' in html
    assert 'align="left"' not in html.replace('<td class="topbar" align="left"', "")


def test_a_bad_tag_is_a_clear_error(workspace: Workspace) -> None:
    issue = sample_issue(1)
    write_issue(workspace, issue)
    path = workspace.issues_dir / f"{ISSUE_DAY}.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("status:", "language: english please\nstatus:"),
        encoding="utf-8",
    )
    with pytest.raises(IssueError, match=r"2026-12-04.yaml:\d+: language 'english please'"):
        load_issue(path)
    with pytest.raises(ConfigError, match=r"digest.toml:\d+: newsletter.language"):
        set_config(workspace, 'language = "en"', 'language = "en_US!"')
