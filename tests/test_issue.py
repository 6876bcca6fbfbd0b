"""Issue files: save/load round-trips, hand edits surviving the CLI, broken files."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pytest
from conftest import Cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.errors import IssueError
from digest.issue import STATUSES, Article, Issue, issue_path, load_issue, save_issue
from digest.workspace import Workspace

NOW = "2026-12-01T09:00:00+00:00"

# Printable text in any script: no control characters but newline (in the
# multi-line fields), no lone surrogates.
_chars = st.characters(blacklist_categories=("Cc", "Cs"))
line = st.text(_chars, max_size=40)
lines = st.text(st.one_of(_chars, st.just("\n")), max_size=120)
sections = st.sampled_from(["News", "Features", "Analysis", "Opinion", "", "Sport", "Мир"])


@st.composite
def articles(draw: st.DrawFn) -> list[Article]:
    count = draw(st.integers(0, 4))
    slugs = draw(
        st.lists(
            st.text("abcdefghij-", min_size=1, max_size=8),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    return [
        Article(
            url=f"https://news.example/{slug}",
            title=draw(line),
            section=draw(sections),
            summary=draw(lines),
            author=draw(line),
            image=draw(st.sampled_from(["", f"https://img.example/{slug}.jpg"])),
            image_alt=draw(st.one_of(st.none(), line)),  # None: not written
            blurb=draw(lines),
        )
        for slug in slugs
    ]


issues = st.builds(
    Issue,
    date=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    subject=line,
    preheader=line,
    intro=lines,
    status=st.sampled_from(STATUSES),
    articles=articles(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(issue=issues, edited=issues)
def test_save_then_load_gives_the_same_issue(issue: Issue, edited: Issue) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = issue_path(Path(folder), issue.date)
        save_issue(issue, path)
        loaded = load_issue(path)
        assert loaded == issue
        # Edit the loaded document in place (as the CLI does) and round-trip again.
        loaded.subject, loaded.intro = edited.subject, edited.intro
        loaded.status, loaded.articles = edited.status, edited.articles
        save_issue(loaded)
        again = load_issue(path)
        assert again == Issue(
            date=issue.date,
            subject=edited.subject,
            preheader=issue.preheader,
            intro=edited.intro,
            status=edited.status,
            articles=edited.articles,
        )


HAND_WRITTEN = """\
# Friday 4 December: the editor's notes stay put.
subject: Gas, cars and sanctions  # shorten before Thursday
date: 2026-12-04
status: draft
preheader: Three stories from the week
intro: |
  Good morning.

  This week: **gas**.
articles:
  # lead
  - title: The gas deal
    url: https://news.example/gas
    section: News   # keep first
  - url: https://news.example/cars
    title: Cars in Tula
    section: Features
    blurb: Read it for the *map*.
"""


def test_hand_comments_and_key_order_survive_add_move_remove(
    cli: Cli, workspace: Workspace
) -> None:
    path = workspace.issues_dir / "2026-12-04.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    steps = [
        (
            "add",
            "https://news.example/oped",
            "--no-fetch",
            "--title",
            "Op-ed",
            "--section",
            "Opinion",
        ),
        ("move", "https://news.example/cars", "--section", "Analysis"),
        ("remove", "3"),  # the op-ed
    ]
    for step in steps:
        result = cli("--now", NOW, *step)
        assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    head = HAND_WRITTEN.split("articles:")[0]
    assert text.startswith(head)  # comments, key order, the literal block
    assert "  # lead\n  - title: The gas deal\n    url: https://news.example/gas\n" in text
    assert "section: News   # keep first" in text
    assert "section: Analysis" in text and "blurb: Read it for the *map*." in text
    assert "Op-ed" not in text
    issue = load_issue(path)
    assert [a.url for a in issue.articles] == [
        "https://news.example/gas",
        "https://news.example/cars",
    ]


BROKEN = """\
date: 2026-12-04
subject: "unclosed
status: draft
articles: []
"""


def test_a_hand_broken_file_names_file_and_line(workspace: Workspace) -> None:
    path = workspace.issues_dir / "2026-12-04.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(IssueError, match=rf"^{path}:\d+: ") as caught:
        load_issue(path)
    assert "\n" not in str(caught.value)


def test_a_bad_key_names_its_line(workspace: Workspace) -> None:
    path = workspace.issues_dir / "2026-12-04.yaml"
    path.write_text(
        "date: 2026-12-04\narticles:\n  - url: https://x.example/\n    titel: T\n", encoding="utf-8"
    )
    with pytest.raises(IssueError, match=rf"^{path}:4: unknown article key 'titel'"):
        load_issue(path)


def test_the_cli_reports_a_broken_file_without_a_traceback(cli: Cli, workspace: Workspace) -> None:
    path = workspace.issues_dir / "2026-12-04.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    for args in (("issue", "show"), ("add", "https://x.example/", "--no-fetch", "--title", "T")):
        result = cli("--now", NOW, *args)
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: {path}:")
        assert "Traceback" not in result.output
    assert path.read_text(encoding="utf-8") == BROKEN


def test_a_deliberately_empty_alt_text_survives_cli_edits(cli: Cli, workspace: Workspace) -> None:
    """`image_alt: ""` marks a decorative picture; a missing key lets the headline stand in.
    Both stay as written when the CLI edits the file, and the restore line keeps them."""
    day = "--issue"
    path = workspace.issues_dir / "2026-12-04.yaml"
    cli("issue", "new", "--date", "2026-12-04")
    for url, alt in (("https://news.example/a", ""), ("https://news.example/b", None)):
        words = ["add", url, "--no-fetch", "--title", url[-1].upper(), "--section", "News"]
        words += ["--image", f"{url}.jpg", day, "2026-12-04"]
        if alt is not None:
            words += ["--image-alt", alt]
        assert cli(*words).exit_code == 0
    assert [a.image_alt for a in load_issue(path).articles] == ["", None]
    assert "image_alt: ''" in path.read_text(encoding="utf-8")
    assert cli("move", "2", "--to", "1", day, "2026-12-04").exit_code == 0
    assert [a.image_alt for a in load_issue(path).articles] == [None, ""]
    removed = cli("remove", "https://news.example/a", "--yes", day, "2026-12-04")
    assert "--image-alt ''" in removed.output
