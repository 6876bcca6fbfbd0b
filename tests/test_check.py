"""`digest check`: one test built for each problem it must catch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _render_fixtures import ISSUE_DAY, sample_issue, set_config, write_issue

from digest.check import check_issue
from digest.issue import Article, Issue, workspace_issue
from digest.workspace import Workspace


def check(ws: Workspace, **kw):
    return check_issue(ws, workspace_issue(ws, ISSUE_DAY), **kw)


def with_issue(ws: Workspace, change) -> Workspace:
    issue: Issue = sample_issue(4)
    change(issue)
    write_issue(ws, issue)
    return ws


def own_addresses(ws: Workspace) -> Workspace:
    """The workspace with its own From and privacy policy instead of the placeholders."""
    ws = set_config(
        ws, 'from = "The Weekly Brief <brief@example.com>"', 'from = "Brief <brief@tula-ledger.ru>"'
    )
    return set_config(
        ws,
        'policy_url = "https://newsletter.example.com/privacy"',
        'policy_url = "https://tula-ledger.ru/privacy"',
    )


def described(issue: Issue) -> None:
    for article in issue.articles:
        if article.image:
            article.image_alt = "Dockers on the quay at dawn"


def test_a_good_issue_has_no_findings(workspace: Workspace) -> None:
    result = check(own_addresses(with_issue(workspace, described)))
    assert result.findings == [] and result.ok


def test_html_over_gmail_clip_is_an_error(workspace: Workspace) -> None:
    def big(issue: Issue) -> None:
        issue.articles[0].summary = "word " * 25_000

    assert "html-too-large" in check(with_issue(workspace, big)).codes()


def test_html_near_the_clip_is_a_warning(workspace: Workspace) -> None:
    def near(issue: Issue) -> None:
        issue.articles[0].summary = "word " * 16_000  # ~80 KB plus the rest of the email

    result = check(with_issue(workspace, near))
    assert "html-near-limit" in result.codes() and result.ok


def test_a_large_style_block_is_a_warning(issue_ws: Workspace) -> None:
    css = "".join(f".x{n} {{ color: #123456; padding: 1px 2px 3px 4px; }}\n" for n in range(400))
    (issue_ws.templates_dir / "email.css").write_text(css, encoding="utf-8")
    assert "style-too-large" in check(issue_ws).codes()


def test_an_image_without_alt_is_an_error(issue_ws: Workspace) -> None:
    (issue_ws.templates_dir / "email.html").write_text(
        '{% extends "default:email.html" %}{% block intro %}<tr><td>'
        '<img src="https://news.example.com/logo.png"></td></tr>{% endblock %}',
        encoding="utf-8",
    )
    result = check(issue_ws)
    assert [f.code for f in result.errors] == ["image-no-alt"]


def test_relative_and_non_http_links_are_errors(workspace: Workspace) -> None:
    def bad(issue: Issue) -> None:
        issue.articles[0].url = "/2026/12/relative"
        issue.articles[1].url = "javascript:alert(1)"
        issue.intro = "See [this](ftp://files.example.com/x)."

    result = check(with_issue(workspace, bad))
    assert {"link-relative", "link-scheme"} <= result.codes()
    messages = " ".join(f.message for f in result.errors)
    assert "/2026/12/relative" in messages and "ftp://files.example.com/x" in messages


def test_a_missing_unsubscribe_link_is_an_error(issue_ws: Workspace) -> None:
    (issue_ws.templates_dir / "email.html").write_text(
        '{% extends "default:email.html" %}{% block footer %}<tr><td>'
        "{{ newsletter.postal_address }}</td></tr>{% endblock %}",
        encoding="utf-8",
    )
    errors = [f for f in check(issue_ws).errors if f.code == "unsubscribe-missing"]
    assert len(errors) == 1 and "HTML" in errors[0].message


def test_a_missing_postal_address_is_an_error(issue_ws: Workspace) -> None:
    ws = set_config(issue_ws, 'postal_address = "1 Press Lane, Springfield"', 'postal_address = ""')
    assert "postal-address-missing" in check(ws).codes()


def test_an_article_outside_the_configured_sections_is_an_error(workspace: Workspace) -> None:
    def sport(issue: Issue) -> None:
        issue.articles.append(Article(url="https://news.example.com/s", title="S", section="Sport"))

    result = check(with_issue(workspace, sport))
    assert "section-unknown" in result.codes()


def test_a_section_rendered_empty_by_an_override_is_an_error(issue_ws: Workspace) -> None:
    (issue_ws.templates_dir / "email.html").write_text(
        '{% extends "default:email.html" %}{% block article %}'
        "{% if section.name != 'News' %}{{ super() }}{% endif %}{% endblock %}",
        encoding="utf-8",
    )
    result = check(issue_ws)
    assert [f.message for f in result.errors if f.code == "section-empty"] == [
        "section 'News' shows none of its 2 article(s) in the HTML"
    ]


def test_subject_empty_is_an_error_and_too_long_a_warning(workspace: Workspace) -> None:
    with_issue(workspace, lambda i: setattr(i, "subject", ""))
    assert "subject-empty" in {f.code for f in check(workspace).errors}
    with_issue(workspace, lambda i: setattr(i, "subject", "A subject line " * 7))
    assert "subject-long" in {f.code for f in check(workspace).warnings}


def test_a_missing_preheader_is_a_warning(workspace: Workspace) -> None:
    def no_preheader(issue: Issue) -> None:
        described(issue)
        issue.preheader = ""

    result = check(with_issue(own_addresses(workspace), no_preheader))
    assert [f.code for f in result.findings] == ["preheader-missing"] and result.ok


def test_an_article_without_title_is_an_error(workspace: Workspace) -> None:
    result = check(with_issue(workspace, lambda i: setattr(i.articles[2], "title", "")))
    assert "article-no-title" in {f.code for f in result.errors}


def test_a_template_error_is_a_finding_not_a_crash(issue_ws: Workspace) -> None:
    (issue_ws.templates_dir / "email.txt").write_text("{{ nope }}\n", encoding="utf-8")
    result = check(issue_ws)
    assert result.errors[0].code == "template" and "email.txt:1" in result.errors[0].message


# -- links ----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def _answer(self, body: bool) -> None:
        path = self.path
        if path.startswith("/gone"):
            self.send_response(404)
        elif path.startswith("/nohead") and self.command == "HEAD":
            self.send_response(405)
        elif path.startswith("/moved"):
            self.send_response(301)
            self.send_header("Location", "/ok")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2" if body else "0")
        self.end_headers()
        if body:
            self.wfile.write(b"ok")

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_links_are_fetched_and_broken_ones_reported(workspace: Workspace, site: str) -> None:
    def links(issue: Issue) -> None:
        issue.articles[0].url = f"{site}/ok/1"
        issue.articles[1].url = f"{site}/gone/2"
        issue.articles[2].url = f"{site}/nohead/3"
        issue.articles[3].url = f"{site}/moved/4"
        issue.articles[0].image = f"{site}/gone/img.jpg"
        for article in issue.articles[1:]:
            article.image = ""
        issue.intro = "Nothing here: [dead](http://127.0.0.1:9/closed)."

    result = check(with_issue(workspace, links), links=True, timeout=3)
    broken = sorted(f.message.split(": ", 1)[0] for f in result.errors if f.code == "link-broken")
    assert broken == sorted(["http://127.0.0.1:9/closed", f"{site}/gone/2", f"{site}/gone/img.jpg"])
    assert any("HTTP 404" in f.message for f in result.errors)


def test_check_command_exits_non_zero_on_errors(cli, workspace: Workspace) -> None:
    with_issue(workspace, lambda i: setattr(i, "subject", ""))
    result = cli("check", "2026-12-04")
    assert result.exit_code == 1
    assert "subject-empty" in result.output and "1 error," in result.output
    good = sample_issue(4)
    write_issue(workspace, good)
    assert cli("check", "2026-12-04").exit_code == 0


# -- what mailbox providers would refuse --------------------------------------------


def test_an_http_unsubscribe_url_is_an_error_with_one_click(issue_ws: Workspace) -> None:
    ws = set_config(
        issue_ws,
        'base_url = "https://newsletter.example.com"',
        'base_url = "http://newsletter.example.com"',
    )
    [finding] = [f for f in check(ws).findings if f.code == "unsubscribe-not-https"]
    assert finding.level == "error" and "One-Click" in finding.message
    assert "unsubscribe-not-https" not in check(issue_ws).codes()


@pytest.mark.parametrize("kind", ["outbox", "smtp", "http"])
def test_placeholder_from_and_policy_are_errors_only_where_mail_leaves(
    issue_ws: Workspace, kind: str
) -> None:
    ws = set_config(issue_ws, 'kind = "outbox"', f'kind = "{kind}"')
    findings = {f.code: f for f in check(ws).findings}
    level = "warning" if kind == "outbox" else "error"
    assert findings["from-placeholder"].level == level
    assert "brief@example.com" in findings["from-placeholder"].message
    assert findings["policy-placeholder"].level == level
    fixed = own_addresses(ws)
    assert not {"from-placeholder", "policy-placeholder"} & check(fixed).codes()


@pytest.mark.parametrize(
    ("address", "placeholder"),
    [
        ("news@example.org", True),
        ("news@mail.example.net", True),
        ("news@brief.test", True),
        ("news@localhost", True),
        ("news@examples.com", False),
        ("news@tula-ledger.ru", False),
    ],
)
def test_reserved_domains_are_placeholders(address: str, placeholder: bool) -> None:
    from digest.check import placeholder_domain

    assert placeholder_domain(address.rpartition("@")[2]) is placeholder


@pytest.mark.parametrize(
    ("signer", "aligned"),
    [
        ("", True),
        ("tula-ledger.ru", True),
        ("mail.tula-ledger.ru", True),
        ("esp.example.net", False),
    ],
)
def test_a_dkim_domain_not_aligned_with_from_is_a_warning(
    issue_ws: Workspace, signer: str, aligned: bool
) -> None:
    ws = own_addresses(issue_ws)
    ws = set_config(
        ws, 'from = "Brief <brief@tula-ledger.ru>"', 'from = "Brief <brief@news.tula-ledger.ru>"'
    )
    ws = set_config(ws, 'selector = ""', 'selector = "s1"')
    ws = set_config(ws, 'private_key_env = ""', 'private_key_env = "DIGEST_DKIM_KEY"')
    ws = set_config(
        ws, 'domain = ""                   # empty: the domain of From', f'domain = "{signer}"'
    )
    findings = [f for f in check(ws).findings if f.code == "dkim-misaligned"]
    if aligned:
        assert findings == []
    else:
        [finding] = findings
        assert finding.level == "warning" and "esp.example.net" in finding.message


def test_an_article_with_neither_summary_nor_blurb_is_a_warning(workspace: Workspace) -> None:
    def bare(issue: Issue) -> None:
        issue.articles[2].summary = ""
        issue.articles[2].blurb = ""

    result = check(with_issue(own_addresses(workspace), bare))
    [finding] = [f for f in result.findings if f.code == "article-no-summary"]
    assert finding.level == "warning" and "article 3" in finding.message and result.ok


@pytest.mark.parametrize(
    ("base_url", "kind", "level"),
    [
        ("http://127.0.0.1:8000", "outbox", "warning"),
        ("http://127.8.9.10:8000", "null", "warning"),
        ("http://localhost:8000", "outbox", "warning"),
        ("http://[::1]:8000", "outbox", "warning"),
        ("http://127.0.0.1:8000", "smtp", "error"),  # real mail needs https links
        ("http://192.168.1.20:8000", "outbox", "error"),  # not this machine
        ("http://localhost.example.com", "outbox", "error"),
    ],
)
def test_http_on_loopback_is_a_warning_while_nothing_leaves(
    issue_ws: Workspace, base_url: str, kind: str, level: str
) -> None:
    ws = set_config(
        issue_ws, 'base_url = "https://newsletter.example.com"', f'base_url = "{base_url}"'
    )
    ws = set_config(ws, 'kind = "outbox"', f'kind = "{kind}"')
    [finding] = [f for f in check(ws).findings if f.code == "unsubscribe-not-https"]
    assert finding.level == level, finding
    if level == "warning":
        assert "this machine" in finding.message and "https://" in finding.message


def test_an_image_without_alt_text_gets_the_headline_and_check_says_so(
    workspace: Workspace,
) -> None:
    def images(issue: Issue) -> None:
        issue.articles[0].image = "https://news.example.com/img/a.jpg"
        issue.articles[0].image_alt = None  # not written in the issue file
        issue.articles[1].image = "https://news.example.com/img/b.jpg"
        issue.articles[1].image_alt = ""  # written empty on purpose: a decorative picture
        issue.articles[2].image = "https://news.example.com/img/c.jpg"
        issue.articles[2].image_alt = "Dockers on the quay"
        issue.articles[3].image = ""

    ws = own_addresses(with_issue(workspace, images))
    issue = workspace_issue(ws, ISSUE_DAY)
    assert [a.image_alt for a in issue.articles[:3]] == [None, "", "Dockers on the quay"]
    result = check(ws)
    assert result.ok and not result.warnings
    [note] = result.findings
    assert (note.level, note.code) == ("info", "image-alt-from-title")
    assert issue.articles[0].title in note.message and "image_alt" in note.message

    import lxml.html

    from digest.render import prepare, sample_recipient

    html = prepare(ws, issue).html(sample_recipient())
    alts = {
        img.get("src"): img.get("alt") for img in lxml.html.document_fromstring(html).iter("img")
    }
    assert alts == {
        "https://news.example.com/img/a.jpg": issue.articles[0].title,
        "https://news.example.com/img/b.jpg": "",
        "https://news.example.com/img/c.jpg": "Dockers on the quay",
    }


@pytest.mark.parametrize(
    ("domain", "organizational"),
    [
        ("news.example.org", "example.org"),
        ("EXAMPLE.CO.UK.", "example.co.uk"),
        ("mail.example.co.uk", "example.co.uk"),
        ("mail.example.com.au", "example.com.au"),
        ("brief.example.pvt.k12.ma.us", "example.pvt.k12.ma.us"),
        ("weekly.example.github.io", "example.github.io"),
        ("почта.пример.рф", "пример.рф"),
        ("mail.xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
        ("co.uk", "co.uk"),  # a public suffix is its own
        ("localhost", "localhost"),
    ],
)
def test_the_organizational_domain_comes_from_the_public_suffix_list(
    domain: str, organizational: str
) -> None:
    from digest.addresses import organizational_domain

    assert organizational_domain(domain) == organizational


@pytest.mark.parametrize(
    ("signer", "aligned"),
    [("mail.example.pvt.k12.ma.us", True), ("mail.other.pvt.k12.ma.us", False)],
)
def test_dkim_alignment_under_a_deep_public_suffix(
    issue_ws: Workspace, signer: str, aligned: bool
) -> None:
    ws = own_addresses(issue_ws)
    ws = set_config(
        ws,
        'from = "Brief <brief@tula-ledger.ru>"',
        'from = "Brief <brief@news.example.pvt.k12.ma.us>"',
    )
    ws = set_config(ws, 'selector = ""', 'selector = "s1"')
    ws = set_config(ws, 'private_key_env = ""', 'private_key_env = "DIGEST_DKIM_KEY"')
    ws = set_config(
        ws, 'domain = ""                   # empty: the domain of From', f'domain = "{signer}"'
    )
    findings = [f for f in check(ws).findings if f.code == "dkim-misaligned"]
    assert (findings == []) is aligned, findings
