"""Article numbers shift under the editor's hands; references and URLs do not.

`digest remove 5` and then `digest remove 5 --yes` must never remove two different
articles: after a remove, a number that now names another article than it did when
this terminal last saw the numbers is refused, naming both. Each article also has a
short reference (the first words of its title, or its URL's last part) that `move`,
`remove` and `issue show` accept and that never changes when others move.
"""

from __future__ import annotations

import json
import shutil

from conftest import FIXTURES, Cli

from digest.issue import Article, Issue, article_refs, load_issue
from digest.workspace import Workspace

SAMPLE = FIXTURES.parent.parent / "issues" / "2026-12-04.yaml"
DAY = ("--issue", "2026-12-04")


def _sample(workspace: Workspace):  # type: ignore[no-untyped-def]
    path = workspace.issues_dir / SAMPLE.name
    shutil.copy(SAMPLE, path)
    return path


def _titles(path) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.title for a in load_issue(path).articles]


def test_the_same_number_twice_never_removes_two_articles(cli: Cli, workspace: Workspace) -> None:
    path = _sample(workspace)
    titles = _titles(path)
    first = cli("remove", "5", "--yes", *DAY)
    assert first.exit_code == 0, first.output
    assert f"removed 5. {titles[4]} [Analysis] from 2026-12-04" in first.output

    before = path.read_bytes()
    again = cli("remove", "5", "--yes", *DAY)
    assert again.exit_code == 1
    said = " ".join(again.output.split())
    assert f"article 5 was “{titles[4]}” when this terminal last saw the numbers" in said
    assert "it has been removed since" in said and f"5 is now “{titles[5]}”" in said
    assert "digest remove russias-rapprochement-with-china" in said
    assert "digest issue show 2026-12-04" in said
    assert path.read_bytes() == before, "nothing changed"

    # Numbers that still name the same article go on working ...
    kept = cli("move", "2", "--to", "1", *DAY)
    assert kept.exit_code == 0, kept.output
    # ... and once the new numbers are shown, they are the ones that count.
    shown = cli("issue", "show", "2026-12-04").output
    assert f" 5. {titles[5]}" in shown
    last = cli("remove", "5", "--yes", *DAY)
    assert last.exit_code == 0 and f"removed 5. {titles[5]}" in last.output


def test_a_number_that_moved_is_refused_with_where_it_went(cli: Cli, workspace: Workspace) -> None:
    path = _sample(workspace)
    titles = _titles(path)
    cli("issue", "show", "2026-12-04")
    # The editor reorders the file by hand: the Features article goes last.
    text = path.read_text(encoding="utf-8").replace("section: Features", "section: Opinion")
    path.write_text(text, encoding="utf-8")
    refused = cli("remove", "3", "--yes", *DAY)
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert f"article 3 was “{titles[2]}”" in said and "it is number 5 now" in said


def test_references_name_articles_whatever_their_number(cli: Cli, workspace: Workspace) -> None:
    path = _sample(workspace)
    shown = cli("issue", "show", "2026-12-04").output
    assert "gazprom-and-cnpc-sign" in shown and "санкции-и-экономика-оценка" in shown
    data = json.loads(cli("issue", "show", "2026-12-04", "--json").output)
    assert [a["number"] for a in data["articles"]] == [1, 2, 3, 4, 5, 6]
    assert data["articles"][5]["ref"] == "russias-rapprochement-with-china"

    moved = cli("move", "russias-rapprochement", "--section", "News", *DAY)
    assert moved.exit_code == 0, moved.output
    assert _titles(path)[2] == "Russia's Rapprochement with China Runs Deep"
    # the URL's last part works too, and so does any unambiguous start of a reference
    gone = cli("remove", "floating-reactors", "--yes", *DAY)
    assert gone.exit_code == 0 and "Floating nuclear plants" in gone.output
    assert cli("remove", "Санкции", "--yes", *DAY).exit_code == 0

    one = cli("issue", "show", "2026-12-04", "gazprom")
    assert one.exit_code == 0, one.output
    assert "Gazprom and CNPC Sign 30-Year Gas Contract" in one.output
    assert "https://brief.example.com/articles/gas-contract.html" in one.output
    assert "ref gazprom-and-cnpc-sign" in one.output
    upcoming = cli("--now", "2026-11-28T10:00:00Z", "issue", "show", "1")
    assert "Gazprom and CNPC" in upcoming.output

    unknown = cli("remove", "no-such-story", "--yes", *DAY)
    assert unknown.exit_code == 1 and "no article matches 'no-such-story'" in unknown.output


def test_an_ambiguous_reference_is_refused_naming_the_candidates(
    cli: Cli, workspace: Workspace
) -> None:
    for url, title in (
        ("https://news.example/budget-1", "Council budget vote delayed"),
        ("https://news.example/budget-2", "Council budget vote passes"),
    ):
        words = ("add", url, "--no-fetch", "--title", title, "--section", "News")
        assert cli("--now", "2026-12-01T10:00:00Z", *words).exit_code == 0
    shown = cli("issue", "show").output
    # shown references are unique within the issue
    assert "council-budget-vote-delayed" in shown and "council-budget-vote-passes" in shown
    refused = cli("remove", "council-budget", "--yes")
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert "'council-budget' matches 2 articles" in said
    assert "1. Council budget vote delayed (council-budget-vote-delayed)" in said


def test_references_are_stable_and_unique() -> None:
    issue = Issue.__new__(Issue)
    issue.articles = [
        Article(url="https://x.example/a", title="One two three four five"),
        Article(url="https://x.example/b", title="One two three four six"),
        Article(url="https://x.example/c.html", title="!!!"),
    ]
    assert article_refs(issue) == [
        "one-two-three-four-five",
        "one-two-three-four-six",
        "c",
    ]
