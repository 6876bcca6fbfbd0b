"""digest add: fetching a page, reading its metadata, adding it to the issue."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest
from conftest import Cli

from digest import clock
from digest.curate import add_url, decode_html, fetch_article, parse_page
from digest.errors import CurateError, IssueError
from digest.issue import load_issue, workspace_issue
from digest.samples import SampleSite
from digest.workspace import Workspace

FRIDAY = date(2026, 12, 4)
NOW = "2026-12-01T09:00:00+00:00"


@pytest.fixture(autouse=True)
def _tuesday_before_friday() -> None:
    clock.set_now(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))


# -- what each fixture page says about itself -----------------------------------


def test_open_graph_article_and_json_ld_opinion_page(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/articles/rapprochement.html")
    assert meta.title == "Russia's Rapprochement with China Runs Deep"
    # og:description wins over the plain meta description
    assert meta.summary.startswith("An analyst argues that the Ukraine crisis")
    assert meta.author == "Vasily Kashin"
    assert meta.section == "Opinion"
    assert meta.image == f"{sample_site.url}/img/rapprochement.jpg"
    assert meta.image_alt == "Two flags on a conference table"
    assert meta.url == f"{sample_site.url}/articles/rapprochement.html"


def test_open_graph_only_with_a_relative_image(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/articles/gas-contract.html")
    assert meta.title == "Gazprom and CNPC Sign 30-Year Gas Contract"  # og:title, not <title>
    assert meta.section == "News"
    assert meta.image == f"{sample_site.url}/img/pipeline.jpg"  # ../img/ resolved
    assert meta.author == ""


def test_json_ld_only_with_an_author_list(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/articles/tula-plant.html")
    assert meta.title == "A Chinese Automaker Comes to Tula"  # headline, not <title>
    assert meta.author == "Anna Petrova and Ivan Sidorov"
    assert meta.section == "Features"
    assert meta.image == f"{sample_site.url}/img/tula.jpg"  # an ImageObject
    assert meta.summary.startswith("Moscow dropped its long aversion")


def test_title_and_meta_description_only(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/articles/floating-reactors.html")
    assert meta.title == "Floating nuclear plants: what Rosatom's memorandum does and doesn't say"
    assert meta.summary.startswith("A memorandum is not a contract.")
    assert meta.author == "Elena Smirnova"
    assert meta.section == "" and meta.image == ""


def test_redirect_stores_the_canonical_url(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/short/redirect-target.html")
    assert meta.url == f"{sample_site.url}/articles/redirect-target.html"
    assert meta.title == "Putin to Make 'Significant' November Visit to Beijing"


def test_redirect_without_canonical_stores_the_final_url(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/short/floating-reactors.html")
    assert meta.url == f"{sample_site.url}/articles/floating-reactors.html"


def test_windows_1251_page_from_its_meta(sample_site: SampleSite) -> None:
    meta = fetch_article(f"{sample_site.url}/articles/sanctions-cp1251.html")
    assert meta.title == "Санкции и экономика: оценка потерь в 2–3 процента"
    assert meta.summary.startswith("Премьер-министр оценивает")
    assert meta.section == "Analysis"


def test_charset_from_the_header(sample_site: SampleSite) -> None:
    assert fetch_article(f"{sample_site.url}/header-charset.html").title == "Газ и нефть"


def test_decoding_falls_back_to_utf8() -> None:
    assert decode_html("<title>Öl</title>".encode()) == "<title>Öl</title>"
    assert decode_html(b"<meta charset=bogus-x><title>ok</title>").endswith("ok</title>")


# -- metadata details, on pages written here ------------------------------------------


def _page(head: str) -> str:
    return f"<!doctype html><html><head>{head}</head><body><p>x</p></body></html>"


def test_twitter_card_used_when_there_is_no_open_graph() -> None:
    meta = parse_page(
        _page(
            '<title>Fallback</title><meta name="twitter:title" content="Card title">'
            '<meta name="twitter:description" content="Card text">'
            '<meta name="twitter:image" content="/pic.png">'
            '<meta name="twitter:image:alt" content="A picture">'
        ),
        "https://news.example/a/b.html",
    )
    assert (meta.title, meta.summary) == ("Card title", "Card text")
    assert (meta.image, meta.image_alt) == ("https://news.example/pic.png", "A picture")


def test_json_ld_in_a_graph_with_three_authors_and_string_author() -> None:
    ld = (
        '{"@context":"https://schema.org","@graph":[{"@type":"WebSite","name":"Site"},'
        '{"@type":["OpinionNewsArticle"],"headline":"Three &amp; more",'
        '"author":[{"@type":"Person","name":"A One"},{"@type":"Person","name":"B Two"},'
        '{"@type":"Person","name":"C Three"}],"articleSection":["Opinion","World"],'
        '"image":"img/x.jpg","mainEntityOfPage":{"@id":"https://news.example/canon"}}]}'
    )
    meta = parse_page(
        _page(f'<script type="application/ld+json">{ld}</script>'), "https://news.example/a/b"
    )
    assert meta.title == "Three & more"
    assert meta.author == "A One, B Two and C Three"
    assert meta.section == "Opinion"
    assert meta.image == "https://news.example/a/img/x.jpg"
    assert meta.url == "https://news.example/canon"
    single = parse_page(
        _page(
            '<script type="application/ld+json">{"@type":"Article","headline":"H",'
            '"author":"Jo Writer"}</script>'
        ),
        "https://news.example/",
    )
    assert single.author == "Jo Writer"


def test_article_author_url_is_ignored_and_site_name_stripped_from_title() -> None:
    meta = parse_page(
        _page(
            "<title>  Big   story &amp; more | The Daily </title>"
            '<meta property="og:site_name" content="The Daily">'
            '<meta property="article:author" content="https://facebook.com/someone">'
            '<meta name="author" content="Real Name">'
        ),
        "https://news.example/x",
    )
    assert meta.title == "Big story & more"
    assert meta.author == "Real Name"
    assert meta.url == "https://news.example/x"


def test_a_broken_json_ld_block_does_not_hide_the_rest() -> None:
    meta = parse_page(
        _page('<script type="application/ld+json">{not json</script><title>T</title>'),
        "https://news.example/x",
    )
    assert meta.title == "T"


# -- what cannot be fetched ----------------------------------------------------------


def test_plain_text_is_refused_with_the_way_out(sample_site: SampleSite) -> None:
    with pytest.raises(CurateError) as caught:
        fetch_article(f"{sample_site.url}/articles/not-an-article.txt")
    message = str(caught.value)
    assert "text/plain" in message and "not an HTML page" in message
    assert "--no-fetch" in message and "--title" in message


def test_a_timeout_names_the_url(sample_site: SampleSite) -> None:
    started = time.monotonic()
    with pytest.raises(CurateError, match=r"slow\.html: no answer within 0\.3 s") as caught:
        fetch_article(f"{sample_site.url}/slow.html", timeout=0.3)
    assert time.monotonic() - started < 5
    assert "--no-fetch" in str(caught.value)


def test_a_404_is_reported(sample_site: SampleSite) -> None:
    with pytest.raises(CurateError, match="HTTP 404 Not Found"):
        fetch_article(f"{sample_site.url}/articles/missing.html")


def test_a_page_over_the_cap_is_refused_while_streaming(sample_site: SampleSite) -> None:
    with pytest.raises(CurateError, match="larger than the 50,000-byte cap"):
        fetch_article(f"{sample_site.url}/endless.html", max_bytes=50_000)
    # the same page fits under the default cap
    assert fetch_article(f"{sample_site.url}/endless.html").title == "Big"


def test_a_page_over_the_default_cap_is_refused(sample_site: SampleSite) -> None:
    with pytest.raises(CurateError, match="larger than the 5,000,000-byte cap"):
        fetch_article(f"{sample_site.url}/huge.html")


def test_an_unreachable_host(dead_port: int) -> None:
    with pytest.raises(CurateError, match=f"cannot connect to 127.0.0.1:{dead_port}"):
        fetch_article(f"http://127.0.0.1:{dead_port}/article")


def test_not_a_web_address() -> None:
    with pytest.raises(CurateError, match="not an http"):
        fetch_article("ftp://example.com/file")


# -- adding to the issue ---------------------------------------------------------------


def test_add_creates_the_upcoming_issue_and_files_by_page_section(
    workspace: Workspace, sample_site: SampleSite
) -> None:
    added = add_url(workspace, f"{sample_site.url}/articles/tula-plant.html", blurb="Read *this*.")
    assert added.issue.date == FRIDAY
    assert added.article.section == "Features"
    assert added.article.blurb == "Read *this*."
    assert added.notes == ["started the issue of 2026-12-04"]
    saved = load_issue(workspace.issues_dir / "2026-12-04.yaml")
    assert saved.articles == [added.article]


def test_sections_order_the_issue_and_set_the_number(
    workspace: Workspace, sample_site: SampleSite
) -> None:
    add_url(workspace, f"{sample_site.url}/articles/rapprochement.html")  # Opinion
    add_url(workspace, f"{sample_site.url}/articles/tula-plant.html")  # Features
    news = add_url(workspace, f"{sample_site.url}/articles/gas-contract.html")
    assert news.number == 1
    issue = workspace_issue(workspace)
    assert [a.section for a in issue.articles] == ["News", "Features", "Opinion"]


def test_no_section_on_the_page_takes_the_first_and_says_so(
    workspace: Workspace, sample_site: SampleSite
) -> None:
    added = add_url(workspace, f"{sample_site.url}/articles/floating-reactors.html")
    assert added.article.section == "News"
    assert "put under News" in added.notes[0]
    chosen = add_url(workspace, f"{sample_site.url}/articles/tula-plant.html", section="analysis")
    assert chosen.article.section == "Analysis"


def test_unknown_section_is_refused(workspace: Workspace, sample_site: SampleSite) -> None:
    with pytest.raises(IssueError, match="no section 'Sport'"):
        add_url(workspace, f"{sample_site.url}/articles/tula-plant.html", section="Sport")


def test_overrides_win_over_the_page(workspace: Workspace, sample_site: SampleSite) -> None:
    added = add_url(
        workspace,
        f"{sample_site.url}/articles/gas-contract.html",
        overrides={
            "title": "Our  title",
            "author": "Desk",
            "image": "/other.png",
            "image_alt": "Pipes",
            "summary": None,
        },
    )
    article = added.article
    assert (article.title, article.author) == ("Our title", "Desk")
    assert article.image == f"{sample_site.url}/other.png"
    assert article.image_alt == "Pipes"
    assert article.summary.startswith("The long-negotiated pipeline deal")


def test_duplicates_are_refused_naming_the_section(
    workspace: Workspace, sample_site: SampleSite
) -> None:
    add_url(workspace, f"{sample_site.url}/short/redirect-target.html")
    # the same article by its canonical URL, and again by the short one
    for url in (
        f"{sample_site.url}/articles/redirect-target.html",
        f"{sample_site.url}/short/redirect-target.html",
    ):
        with pytest.raises(
            CurateError, match="already in issue 2026-12-04 as number 1, under News"
        ):
            add_url(workspace, url)
    assert len(workspace_issue(workspace).articles) == 1


def test_no_fetch_needs_a_title(workspace: Workspace, dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}/paywalled"
    with pytest.raises(CurateError, match="--title is required"):
        add_url(workspace, url, fetch=False)
    added = add_url(workspace, url, fetch=False, overrides={"title": "By hand"})
    assert (added.article.url, added.article.title, added.article.section) == (
        url,
        "By hand",
        "News",
    )


def test_a_failed_fetch_creates_no_issue(workspace: Workspace, sample_site: SampleSite) -> None:
    with pytest.raises(CurateError):
        add_url(workspace, f"{sample_site.url}/articles/missing.html")
    assert list(workspace.issues_dir.glob("*.yaml")) == []


# -- the command ---------------------------------------------------------------------


def test_cli_add_end_to_end(cli: Cli, workspace: Workspace, sample_site: SampleSite) -> None:
    result = cli(
        "--now",
        NOW,
        "add",
        f"{sample_site.url}/articles/rapprochement.html",
        "--blurb",
        "Worth your *time*.",
    )
    assert result.exit_code == 0, result.output
    assert "added 1. Russia's Rapprochement with China Runs Deep [Opinion] to 2026-12-04" in (
        result.output
    )
    shown = cli("--now", NOW, "issue", "show")
    assert "Opinion" in shown.output and "(Vasily Kashin)" in shown.output
    text = (workspace.issues_dir / "2026-12-04.yaml").read_text(encoding="utf-8")
    assert "blurb: Worth your *time*." in text
    assert "image_alt: Two flags on a conference table" in text


def test_cli_errors_are_one_line(cli: Cli, sample_site: SampleSite) -> None:
    result = cli("--now", NOW, "add", f"{sample_site.url}/articles/not-an-article.txt")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_cli_no_fetch_with_title(cli: Cli, workspace: Workspace, dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}/print-only"
    result = cli(
        "--now",
        NOW,
        "add",
        url,
        "--no-fetch",
        "--title",
        "Print only",
        "--section",
        "Features",
        "--summary",
        "From the paper.",
    )
    assert result.exit_code == 0, result.output
    assert "added 1. Print only [Features]" in result.output
    article = workspace_issue(workspace).articles[0]
    assert (article.url, article.summary) == (url, "From the paper.")


def test_cli_add_to_a_missing_dated_issue(cli: Cli, sample_site: SampleSite) -> None:
    result = cli(
        "--now", NOW, "add", f"{sample_site.url}/articles/tula-plant.html", "--issue", "2026-12-11"
    )
    assert result.exit_code == 1
    assert "digest issue new --date 2026-12-11" in result.output


def test_hand_written_comments_survive_add(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    path = workspace.issues_dir / "2026-12-04.yaml"
    path.write_text(
        "# Issue notes: keep the gas story on top.\n"
        "subject: Pipelines   # draft subject\n"
        "date: 2026-12-04\n"
        "status: draft\n"
        "articles:\n"
        "  # lead story\n"
        f"  - url: {sample_site.url}/articles/gas-contract.html\n"
        "    title: Gas deal  # shortened by hand\n"
        "    section: News\n",
        encoding="utf-8",
    )
    result = cli("--now", NOW, "add", f"{sample_site.url}/articles/tula-plant.html")
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        "# Issue notes: keep the gas story on top.\nsubject: Pipelines   # draft"
    )
    assert "# lead story" in text
    assert "title: Gas deal  # shortened by hand" in text
    assert text.index("subject:") < text.index("date:")  # the editor's key order
    assert "A Chinese Automaker Comes to Tula" in text


def test_cli_add_to_a_hand_broken_issue(
    cli: Cli, workspace: Workspace, sample_site: SampleSite
) -> None:
    path = workspace.issues_dir / "2026-12-04.yaml"
    path.write_text("date: 2026-12-04\nsubject: [unclosed\nstatus: draft\n", encoding="utf-8")
    result = cli("--now", NOW, "add", f"{sample_site.url}/articles/tula-plant.html")
    assert result.exit_code == 1
    assert f"{path}:" in result.output
    assert "Traceback" not in result.output
    assert path.read_text(encoding="utf-8").startswith("date: 2026-12-04\nsubject: [unclosed")
