"""Curating is safe: what is in the issue is marked, removals can be undone, mistakes are named."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import FIXTURES, Cli

from digest import feeds
from digest.check import check_issue
from digest.issue import load_issue
from digest.samples import SampleSite
from digest.workspace import Workspace

SAMPLE = FIXTURES.parent.parent / "issues" / "2026-12-04.yaml"
NOW = "2026-12-01T09:00:00+00:00"


def _with_sample(workspace: Workspace) -> Path:
    return Path(shutil.copy(SAMPLE, workspace.issues_dir / SAMPLE.name))


def test_candidates_marks_what_is_in_the_issue_however_it_got_there(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    feeds.add_feed(workspace, f"{sample_site.url}/feeds/weekly.rss")
    feeds.pull(workspace)
    listed = feeds.list_candidates(workspace)
    tula = next(c for c in listed if "Tula" in c.title)
    # added by hand with `digest add`, not picked
    added = cli("--now", NOW, "add", tula.link)
    assert added.exit_code == 0, added.output
    shown = cli("--now", NOW, "candidates").output
    line = next(x for x in shown.splitlines() if "Tula" in x)
    assert line.endswith("<in 2026-12-04>")
    assert sum("<in " in x for x in shown.splitlines()) == 1
    # removed from the issue by hand: no longer marked
    cli("--now", NOW, "remove", tula.link, "--yes")
    assert "<in " not in cli("--now", NOW, "candidates").output


def test_candidates_marks_an_article_added_by_its_short_link(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    feeds.add_feed(workspace, f"{sample_site.url}/short.rss")
    feeds.pull(workspace)
    (short,) = feeds.list_candidates(workspace)
    assert "/short/" in short.link
    added = cli("--now", NOW, "add", short.link)
    assert added.exit_code == 0, added.output
    issue = load_issue(workspace.issues_dir / "2026-12-04.yaml")
    assert issue.articles[0].url.endswith("/articles/tula-plant.html")  # the canonical URL
    shown = cli("--now", NOW, "candidates").output
    assert shown.splitlines()[0].endswith("<in 2026-12-04>")
    cli("--now", NOW, "remove", "1", "--yes")
    assert "<picked for 2026-12-04, not in it now>" in cli("--now", NOW, "candidates").output


def test_remove_names_the_article_and_prints_how_to_put_it_back(
    cli: Cli, workspace: Workspace
) -> None:
    path = _with_sample(workspace)
    before = load_issue(path)
    target = before.articles[3]  # first of two in its section, with a blurb
    assert target.blurb and target.summary and before.articles[4].section == target.section
    result = cli("remove", "4", "--issue", "2026-12-04")
    assert result.exit_code == 0, result.output
    assert f"removed 4. {target.title} [{target.section}] from 2026-12-04" in result.output
    script = result.output.split("to put it back:\n", 1)[1]
    assert script.startswith(f"digest add {target.url} --no-fetch --issue 2026-12-04")
    assert script.rstrip().endswith(f"digest move {target.url} --to 1 --issue 2026-12-04")
    assert len(load_issue(path).articles) == len(before.articles) - 1
    # the printed lines, run by a shell as they are, put it back exactly
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-e", "-c", script], cwd=workspace.root, env=env, check=True)
    restored = load_issue(path).articles
    # the same fields; a blurb written as a YAML block comes back without its final newline
    assert [a.to_dict() | {"blurb": a.blurb.strip()} for a in restored] == [
        a.to_dict() | {"blurb": a.blurb.strip()} for a in before.articles
    ]


def test_move_and_remove_of_a_number_past_the_end(cli: Cli, workspace: Workspace) -> None:
    _with_sample(workspace)
    for args in (("move", "99", "--to", "1"), ("remove", "99", "--yes")):
        result = cli(*args, "--issue", "2026-12-04")
        assert result.exit_code == 1
        assert "no article 99 (the issue has 6;" in result.output


def _on_a_terminal(args: list[str], answer: bytes, env: dict[str, str]) -> tuple[int, str]:
    """Run `python -m digest ARGS` with a pseudo-terminal as stdin and stdout."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(leader, answer)
                answered = True
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), output.decode("utf-8", "replace")


def test_remove_asks_on_a_terminal(workspace: Workspace) -> None:
    path = _with_sample(workspace)
    title = load_issue(path).articles[0].title
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    args = ["-C", str(workspace.root), "remove", "1", "--issue", "2026-12-04"]
    code, output = _on_a_terminal(args, b"n\n", env)
    assert f"Remove {title} [News] from 2026-12-04? [y/N]" in output
    assert "Nothing removed." in output and code == 1
    assert len(load_issue(path).articles) == 6
    code, output = _on_a_terminal(args, b"y\n", env)
    assert code == 0 and f"removed 1. {title}" in output
    assert len(load_issue(path).articles) == 5


def test_add_warns_about_pages_that_are_not_articles(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    listing = cli("--now", NOW, "add", f"{sample_site.url}/files/")
    assert listing.exit_code == 0, listing.output
    assert "does not look like an article (it is a directory listing)" in listing.output
    bare = cli("--now", NOW, "add", f"{sample_site.url}/bare.html")
    assert bare.exit_code == 0
    assert "no title beyond <title> and no description" in bare.output
    # title and description only (the floating-reactors page) is an article
    plain = cli("--now", NOW, "add", f"{sample_site.url}/articles/floating-reactors.html")
    assert plain.exit_code == 0 and "does not look like an article" not in plain.output


def test_section_names_match_in_any_case(cli: Cli, workspace: Workspace) -> None:
    path = _with_sample(workspace)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("section: News", "section: nEWS"), encoding="utf-8")
    issue = load_issue(path)
    assert "nEWS" in {a.section for a in issue.articles}
    codes = {f.code for f in check_issue(workspace, issue).findings}
    assert "section-unknown" not in codes
    result = cli("check", "2026-12-04")
    assert "section-unknown" not in result.output
    assert cli("move", "1", "--section", "analysis", "--issue", "2026-12-04").exit_code == 0
    assert cli("issue", "skip", "2026-12-11").exit_code == 0


def test_a_feed_that_answers_404_says_its_url_is_wrong(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    url = f"{sample_site.url}/feeds/moved.rss"
    assert cli("feed", "add", url, "--no-check").exit_code == 0
    result = cli("--now", NOW, "feed", "pull")
    assert result.exit_code == 1
    assert "HTTP 404" in result.output and "the feed URL is wrong" in result.output
    assert "digest add" not in result.output
    assert f"digest feed remove {url}" in result.output


def test_feed_add_checks_that_the_url_is_a_feed(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    page = cli("feed", "add", f"{sample_site.url}/articles/gas-contract.html")
    assert page.exit_code == 1
    assert "not an RSS or Atom feed (text/html); it is a web page" in page.output
    missing = cli("feed", "add", f"{sample_site.url}/nothing.xml")
    assert missing.exit_code == 1 and "the feed URL is wrong" in missing.output
    assert not workspace.feeds_path.exists()
    good = cli("feed", "add", f"{sample_site.url}/feeds/weekly.atom")
    assert good.exit_code == 0, good.output
    assert [f.url for f in feeds.list_feeds(workspace)] == [f"{sample_site.url}/feeds/weekly.atom"]


def test_an_article_that_went_out_before_is_flagged(cli, workspace) -> None:  # type: ignore[no-untyped-def]
    """council-budget went out on 12-11; adding it to 12-18 warns, and so does check."""
    url = "https://news.example/2026/12/council-budget.html"
    for day in ("2026-12-11", "2026-12-18"):
        assert cli("issue", "new", "--date", day).exit_code == 0
    first = cli("add", url, "--no-fetch", "--title", "Council budget", "--issue", "2026-12-11")
    assert first.exit_code == 0 and "went out" not in first.output
    sent = workspace.issues_dir / "2026-12-11.yaml"
    sent.write_text(sent.read_text(encoding="utf-8").replace("status: draft", "status: sent"))

    again = cli("add", url + "/", "--no-fetch", "--title", "Budget", "--issue", "2026-12-18")
    assert again.exit_code == 0, again.output
    assert f"warning: {url}/ went out in the issue of 2026-12-11 already" in again.output
    checked = cli("check", "2026-12-18", "--json")
    [repeat] = [f for f in json.loads(checked.output) if f["code"] == "article-repeated"]
    assert repeat["level"] == "warning" and "2026-12-11" in repeat["message"]
    # The issue it went out in is not flagged against itself, nor a later one against it.
    assert "article-repeated" not in cli("check", "2026-12-11").output


def test_a_malformed_url_is_one_line_not_a_traceback(cli: Cli, workspace: Workspace) -> None:
    for url in ("http://127.0.0.1:PORT/x", "http://[::1/story", "https://example.com:99999/"):
        result = cli("add", url)
        assert result.exit_code == 1, (url, result.output)
        assert isinstance(result.exception, SystemExit), (url, result.exception)  # no traceback
        [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
        assert f"{url!r} is not a valid URL" in line, line
