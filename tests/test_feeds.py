"""Feeds, the candidates list they fill, and picking candidates into the issue."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from _site_fixtures import FIXTURES
from conftest import Cli

from digest import clock, feeds
from digest.errors import CurateError
from digest.issue import workspace_issue
from digest.samples import SampleSite
from digest.workspace import Workspace

NOW = "2026-12-01T09:00:00+00:00"
SECTIONS = ("News", "Features", "Analysis", "Opinion")


@pytest.fixture(autouse=True)
def _tuesday_before_friday() -> None:
    clock.set_now(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def editable_site(tmp_path: Path) -> Iterator[tuple[SampleSite, Path]]:
    """A copy of the fixtures whose feeds a test may change between pulls."""
    folder = tmp_path / "sample_site"
    shutil.copytree(FIXTURES, folder)
    with SampleSite(folder) as served:
        yield served, folder


def _follow_both(ws: Workspace, sample_site: SampleSite) -> None:
    feeds.add_feed(ws, f"{sample_site.url}/feeds/weekly.rss")
    feeds.add_feed(ws, f"{sample_site.url}/feeds/weekly.atom", section="Analysis")


def test_feed_add_list_remove_keep_hand_comments(cli: Cli, workspace: Workspace) -> None:
    workspace.feeds_path.write_text(
        "# Our feeds, curated by the desk.\nfeeds:\n  - url: https://one.example/rss  # the wire\n",
        encoding="utf-8",
    )
    assert (
        cli(
            "feed", "add", "https://two.example/atom", "--section", "opinion", "--no-check"
        ).exit_code
        == 0
    )
    listed = cli("feed", "list")
    assert listed.output.splitlines() == [
        "https://one.example/rss",
        "https://two.example/atom  [Opinion]",
    ]
    again = cli("feed", "add", "https://two.example/atom", "--no-check")
    assert again.exit_code == 1 and "already follows" in again.output
    assert cli("feed", "remove", "https://two.example/atom").exit_code == 0
    text = workspace.feeds_path.read_text(encoding="utf-8")
    assert text.startswith("# Our feeds, curated by the desk.\n")
    assert "- url: https://one.example/rss  # the wire" in text
    assert "two.example" not in text
    missing = cli("feed", "remove", "https://nowhere.example/")
    assert missing.exit_code == 1 and "no feed https://nowhere.example/" in missing.output


def test_a_bad_feed_section_is_refused(workspace: Workspace) -> None:
    with pytest.raises(Exception, match="no section 'Sport'"):
        feeds.add_feed(workspace, "https://one.example/rss", section="Sport")
    assert not workspace.feeds_path.exists()


def test_pull_reads_rss_and_atom(workspace: Workspace, sample_site: SampleSite) -> None:
    _follow_both(workspace, sample_site)
    reports = feeds.pull(workspace)
    assert [(r.new, r.error) for r in reports] == [(3, ""), (2, "")]
    items = {c.number: c for c in feeds.list_candidates(workspace)}
    assert sorted(items) == [1, 2, 3, 4, 5]
    first = items[1]
    assert first.title == "Russia's Rapprochement with China Runs Deep"
    assert first.link == f"{sample_site.url}/articles/rapprochement.html"
    assert (first.author, first.section) == ("Vasily Kashin", "Opinion")
    assert first.published == "2014-05-28T05:00:00+00:00"
    assert first.feed == f"{sample_site.url}/feeds/weekly.rss"
    assert items[2].summary == "The long-negotiated pipeline deal was signed."
    atom = items[5]
    assert atom.title == "Санкции и экономика: оценка потерь"
    assert atom.section == "Analysis"
    assert items[4].author == "Elena Smirnova"


def test_feed_section_fills_in_when_the_category_is_not_a_section(
    workspace: Workspace, editable_site: tuple[SampleSite, Path]
) -> None:
    sample_site, folder = editable_site
    rss = folder / "feeds" / "weekly.rss"
    rss.write_text(
        rss.read_text().replace("<category>Features</category>", "<category>Regions</category>")
    )
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.rss", section="Features")
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.atom")
    feeds.pull(workspace)
    sections = {c.title: c.section for c in feeds.list_candidates(workspace)}
    assert sections["A Chinese Automaker Comes to Tula"] == "Features"  # the feed's
    assert sections["Russia's Rapprochement with China Runs Deep"] == "Opinion"  # the item's


def test_numbers_are_stable_and_items_deduplicated(
    workspace: Workspace, editable_site: tuple[SampleSite, Path]
) -> None:
    sample_site, folder = editable_site
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.rss")
    feeds.pull(workspace)
    before = {c.number: c.link for c in feeds.list_candidates(workspace)}
    # The feed gains an item at the top, and one item's link grows a tracking
    # parameter while its guid stays: only the new item is new.
    rss = folder / "feeds" / "weekly.rss"
    text = rss.read_text(encoding="utf-8")
    text = text.replace(
        "<link>http://127.0.0.1:PORT/articles/tula-plant.html</link>",
        "<link>http://127.0.0.1:PORT/articles/tula-plant.html?utm=rss</link>",
    ).replace(
        "<item>",
        "<item><title>Fresh</title><link>http://127.0.0.1:PORT/articles/fresh.html</link>"
        "<guid>wb-1004</guid></item>\n<item>",
        1,
    )
    rss.write_text(text, encoding="utf-8")
    # The same stories through a second feed are not new either.
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.atom")
    shutil.copy(folder / "feeds" / "weekly.atom", folder / "feeds" / "mirror.atom")
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/mirror.atom")
    reports = feeds.pull(workspace)
    assert [r.new for r in reports] == [1, 2, 0]
    after = {c.number: c.link for c in feeds.list_candidates(workspace)}
    assert {n: after[n] for n in before} == before
    assert after[4] == f"{sample_site.url}/articles/fresh.html"
    assert sorted(after) == [1, 2, 3, 4, 5, 6]


def test_a_number_is_never_reused(workspace: Workspace, sample_site: SampleSite) -> None:
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.rss")
    feeds.pull(workspace)
    # The editor prunes the list by hand, dropping the newest candidate.
    data = json.loads(workspace.candidates_path.read_text(encoding="utf-8"))
    data["candidates"] = [c for c in data["candidates"] if c["number"] != 3]
    workspace.candidates_path.write_text(json.dumps(data), encoding="utf-8")
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.atom")
    feeds.pull(workspace)
    numbers = [c.number for c in feeds.list_candidates(workspace)]
    # tula-plant comes back from the RSS feed, under a new number
    assert numbers == [1, 2, 4, 5, 6]


def test_a_broken_feed_is_reported_and_the_others_pull(
    cli: Cli, workspace: Workspace, sample_site: SampleSite, dead_port: int
) -> None:
    for url in (
        f"{sample_site.url}/broken.rss",
        f"{sample_site.url}/feeds/weekly.rss",
        f"{sample_site.url}/gone.rss",
        f"http://127.0.0.1:{dead_port}/feed",
    ):
        assert cli("feed", "add", url, "--no-check").exit_code == 0
    result = cli("--now", NOW, "feed", "pull")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any("broken.rss: not an RSS or Atom feed" in line for line in lines)
    assert any("gone.rss: the server answered HTTP 410" in line for line in lines)
    assert any(f"cannot connect to 127.0.0.1:{dead_port}" in line for line in lines)
    assert any(line.startswith("  3 new of   3") for line in lines)
    assert lines[-1] == "Error: 3 of 4 feeds failed; the others were pulled"
    assert len(feeds.list_candidates(workspace)) == 3


def test_pull_without_feeds(workspace: Workspace) -> None:
    with pytest.raises(CurateError, match="no feeds yet"):
        feeds.pull(workspace)


def test_candidates_since_and_json(cli: Cli, workspace: Workspace, sample_site: SampleSite) -> None:
    _follow_both(workspace, sample_site)
    feeds.pull(workspace)
    recent = feeds.list_candidates(workspace, since=date(2014, 6, 1))
    assert [c.number for c in recent] == [3, 4, 5]
    shown = cli("--now", NOW, "candidates", "--since", "2014-06-01")
    assert "   3. 2014-06-02 [Features] A Chinese Automaker Comes to Tula" in shown.output
    assert "Rapprochement" not in shown.output
    as_json = json.loads(cli("--now", NOW, "candidates", "--json").output)
    assert [c["number"] for c in as_json] == [1, 2, 3, 4, 5]
    assert as_json[0]["picked"] == ""


def test_pick_adds_with_page_metadata_and_marks_picked(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    _follow_both(workspace, sample_site)
    feeds.pull(workspace)
    result = cli("--now", NOW, "pick", "1", "3")
    assert result.exit_code == 0, result.output
    # each at its number once both are in: Features comes before Opinion
    assert "added 2. Russia's Rapprochement with China Runs Deep [Opinion]" in result.output
    assert "added 1. A Chinese Automaker Comes to Tula [Features]" in result.output
    issue = workspace_issue(workspace)
    assert [a.title for a in issue.articles] == [
        "A Chinese Automaker Comes to Tula",
        "Russia's Rapprochement with China Runs Deep",
    ]
    # from the page, not the feed: og:description and the image
    opinion = issue.articles[1]
    assert opinion.summary.startswith(
        "An analyst argues that the Ukraine crisis pushed Moscow "
        "to speed up its turn toward Beijing, from a 30-year"
    )
    assert opinion.image == f"{sample_site.url}/img/rapprochement.jpg"
    listed = cli("--now", NOW, "candidates").output
    assert "Runs Deep (Vasily Kashin)  <in 2026-12-04>" in listed
    assert "Gas Contract  <in" not in listed
    # picking it again is refused for that one; the other still goes in
    again = cli("--now", NOW, "pick", "1", "2")
    assert again.exit_code == 1
    assert "not added 1: " in again.output and "under Opinion" in again.output
    assert "added 1. Gazprom and CNPC Sign 30-Year Gas Contract [News]" in again.output


def test_picked_for_a_past_issue_is_hidden_unless_all(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    _follow_both(workspace, sample_site)
    feeds.pull(workspace)
    feeds.pick(workspace, [2])
    later = "2026-12-08T09:00:00+00:00"
    assert "Gas Contract" not in cli("--now", later, "candidates").output
    assert "<in 2026-12-04>" in cli("--now", later, "candidates", "--all").output


def test_pick_falls_back_to_the_feed_when_the_page_fails(
    cli: Cli, workspace: Workspace, editable_site: tuple[SampleSite, Path]
) -> None:
    sample_site, folder = editable_site
    (folder / "articles" / "tula-plant.html").unlink()
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.rss")
    feeds.pull(workspace)
    result = cli("--now", NOW, "pick", "3", "--section", "Analysis")
    assert result.exit_code == 0, result.output
    assert "added 1. A Chinese Automaker Comes to Tula [Analysis]" in result.output
    assert "warning:" in result.output and "HTTP 404" in result.output
    assert "used the feed's title and summary" in result.output
    article = workspace_issue(workspace).articles[0]
    assert article.url == f"{sample_site.url}/articles/tula-plant.html"


def test_pick_an_unknown_number(cli: Cli, workspace: Workspace, sample_site: SampleSite) -> None:
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.rss")
    feeds.pull(workspace)
    result = cli("--now", NOW, "pick", "9")
    assert result.exit_code == 1
    assert "no candidate number 9" in result.output
    assert not list(workspace.issues_dir.glob("*.yaml"))


def test_a_hand_broken_candidates_file(workspace: Workspace) -> None:
    workspace.candidates_path.write_text('{"candidates": [\n  {"number": 1,,}\n]}\n')
    with pytest.raises(CurateError, match=r"candidates\.json:2: "):
        feeds.list_candidates(workspace)


def test_pick_prints_each_article_at_its_number_once_all_are_in(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    """`digest pick 2 3 4 6` once printed `added 5.` twice: each number was its place when
    it went in, before the later picks moved it."""
    import re

    from digest.issue import numbered

    _follow_both(workspace, sample_site)
    feeds.pull(workspace)
    picked = [str(c.number) for c in feeds.list_candidates(workspace)]
    assert len(picked) >= 3
    result = cli("--now", NOW, "pick", *picked)
    assert result.exit_code == 0, result.output
    said = re.findall(r"^added (\d+)\. (.+?) \[", result.output, re.M)
    numbers = [int(n) for n, _ in said]
    assert len(said) == len(picked) and len(set(numbers)) == len(numbers), result.output
    order = [a.title for a in numbered(workspace_issue(workspace), SECTIONS)]
    assert [order[n - 1] for n in numbers] == [title for _, title in said]
