"""The text part is written text: Markdown rendered as plain text, URLs whole on their own lines."""

from __future__ import annotations

import re

from _render_fixtures import ISSUE_DAY, sample_issue, write_issue
from hypothesis import given
from hypothesis import strategies as st

from digest.issue import workspace_issue
from digest.plaintext import markdown_to_text
from digest.render import Recipient, prepare
from digest.workspace import Workspace

URL = "http://127.0.0.1:8000/articles/rapprochement.html"
MARKDOWN_SYNTAX = re.compile(r"\*\*|__|(?<!\w)\*\w|\w\*(?!\w)|\]\(|\[[^\]]*\]|^#+ |`", re.M)


def test_emphasis_loses_its_markers_and_a_link_puts_its_url_on_its_own_line() -> None:
    text = markdown_to_text(
        f"This week follows **one thread** and *one question*. Read [Vasily Kashin's\n"
        f"essay]({URL}). Then `code` stays."
    )
    assert text == (
        "This week follows one thread and one question. Read Vasily Kashin's essay.\n"
        f"{URL}\n"
        "Then code stays."
    )


def test_lists_stay_lists_and_quotes_are_marked() -> None:
    text = markdown_to_text(
        "Three things:\n\n- the gas deal, which runs for thirty years and is worth more than "
        "anyone expected at first\n- a car plant\n\n1. first\n2. second\n\n> a reader wrote in"
    )
    assert text == (
        "Three things:\n\n"
        "- the gas deal, which runs for thirty years and is worth more than anyone\n"
        "  expected at first\n"
        "- a car plant\n\n"
        "1. first\n2. second\n\n"
        "> a reader wrote in"
    )


def test_a_bare_link_is_its_url_once() -> None:
    assert markdown_to_text("See <https://example.com/a>.") == "See.\nhttps://example.com/a"


def test_raw_html_is_text() -> None:
    assert markdown_to_text("Hello <b>there</b>") == "Hello <b>there</b>"


@given(
    words=st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=12), min_size=1),
    path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-/", min_size=1, max_size=200),
)
def test_lines_are_at_most_78_and_urls_are_never_split(words: list[str], path: str) -> None:
    url = "https://news.example.com/" + path
    text = markdown_to_text(" ".join(words) + f" [the story]({url}) " + " ".join(words))
    lines = text.split("\n")
    assert url in lines
    assert all(len(line) <= 78 for line in lines if line != url)


def test_the_text_part_of_the_sample_issue_holds_no_markdown(workspace: Workspace) -> None:
    issue = sample_issue(6)
    issue.intro = (
        "Good morning. This week's reading follows **one thread**: how far Moscow's turn\n"
        f"toward Beijing reaches. Read [Vasily Kashin's\nessay]({URL}) first.\n\n"
        "- the *gas* contract\n- a car plant in Tula"
    )
    issue.articles[1].blurb = f"Our **energy desk** read [the contract]({URL}#contract)."
    write_issue(workspace, issue)
    text = prepare(workspace, workspace_issue(workspace, ISSUE_DAY)).text(
        Recipient("1", "ann@example.com", "Ann")
    )
    assert not MARKDOWN_SYNTAX.search(text), MARKDOWN_SYNTAX.search(text)
    lines = text.split("\n")
    assert "toward Beijing reaches. Read Vasily Kashin's essay" in text
    assert URL in lines and f"{URL}#contract" in lines
    assert "- the gas contract" in lines
    assert all(len(line) <= 78 for line in lines if "://" not in line)


def test_the_demo_messages_text_part_holds_no_markdown(demo_ws: Workspace) -> None:
    import email
    from email import policy

    path = sorted(demo_ws.outbox_dir.glob("*/*.eml"))[0]
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    assert "30-year gas contract" in text and "**" not in text
    assert not MARKDOWN_SYNTAX.search(text), MARKDOWN_SYNTAX.search(text)
    assert all(len(line) <= 78 for line in text.splitlines() if "://" not in line)
