"""Rendering: the default design, overrides, strict templates, and the fast path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _render_fixtures import ISSUE_DAY, sample_issue, set_config, write_issue
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import render
from digest.errors import TemplateError
from digest.issue import Article, workspace_issue
from digest.render import (
    MAX_LINE,
    Recipient,
    clean_name,
    premailer_runs,
    prepare,
    sample_recipient,
    wrap,
)
from digest.workspace import Workspace, open_workspace

READER = Recipient("s-1", "ann@example.com", "Ann")


def prepared_of(ws: Workspace):
    return prepare(ws, workspace_issue(ws, ISSUE_DAY))


def test_default_design_has_what_mail_apps_need(issue_ws: Workspace) -> None:
    html = prepared_of(issue_ws).html(READER)
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="en" dir="ltr"' in html
    assert 'role="presentation"' in html
    # Fluid: a div at most 600px wide; Outlook for Windows gets a 600px ghost table
    # and the 96 pixels-per-inch setting, both in conditional comments.
    assert re.search(r'<div class="sheet" style="max-width:600px', html)
    assert re.search(r"<!--\[if mso\]><table [^>]*width=\"600\"", html)
    assert re.search(
        r"<!--\[if mso\]>.*<o:PixelsPerInch>96</o:PixelsPerInch>.*<!\[endif\]-->", html, re.S
    )
    # premailer inlined the rules and kept the media queries in <style>.
    style = re.findall(r"<style>(.*?)</style>", html, re.S)[-1]
    assert "@media only screen and (max-width: 620px)" in style
    assert "prefers-color-scheme: dark" in style and "!important" in style
    assert re.search(r'<td class="article" [^>]*style="[^"]*border-bottom:1px solid #e3ded3', html)
    assert "Georgia, 'Times New Roman', Times, serif" in html


def test_default_design_content(issue_ws: Workspace) -> None:
    prepared = prepared_of(issue_ws)
    html = prepared.html(READER)
    assert re.search(r'<div class="preheader" style="[^"]*display:none', html)
    assert re.search(
        r'href="https://newsletter.example.com/archive/2026-12-04"[^>]*>View in browser</a>', html
    )
    assert (
        re.search(r'<h1 class="name"[^>]*>The Weekly Brief</h1>', html)
        and "Friday, 4 December 2026" in html
    )
    # Intro Markdown rendered; sections in the configured order.
    assert "<strong>strikes</strong>" in html
    order = [m.group(1) for m in re.finditer(r'data-section="(\w+)"', html)]
    assert order == ["News", "Features", "Analysis", "Opinion"]
    # Articles: linked title, author, image with the title as alt, blurb as Markdown.
    assert '<a href="https://news.example.com/2026/12/story-0"' in html
    assert 'alt="Story 0: what the port strike means for winter fuel"' in html
    assert "By Anna Petrova" in html
    assert "Our <strong>energy desk</strong> read the contract." in html
    assert "Ships are queueing &amp; prices are rising." in html
    # Footer.
    assert "You get this email because you subscribed to The Weekly Brief." in html
    assert "1 Press Lane, Springfield" in html
    assert 'href="https://newsletter.example.com/privacy"' in html
    assert re.search(r'href="https://newsletter.example.com/unsubscribe/[\w.-]+"', html)
    assert "Manage your subscription" not in html
    assert "ann@example.com" in html


def test_empty_sections_are_left_out_and_manage_link_shown_when_configured(
    workspace: Workspace,
) -> None:
    issue = sample_issue(2)  # News and Features only
    write_issue(workspace, issue)
    ws = set_config(
        workspace, 'manage_url = ""', 'manage_url = "https://news.example.com/prefs/{token}"'
    )
    prepared = prepared_of(ws)
    html = prepared.html(READER)
    assert re.findall(r'data-section="(\w+)"', html) == ["News", "Features"]
    token = prepared.tokens.manage("s-1")
    assert re.search(
        rf'href="https://news.example.com/prefs/{token}"[^>]*>Manage your subscription', html
    )
    assert f"https://news.example.com/prefs/{token}" in prepared.text(READER)


def test_raw_html_in_markdown_is_shown_as_text(workspace: Workspace) -> None:
    issue = sample_issue(1)
    issue.intro = "Hello <script>alert(1)</script> **bold**"
    write_issue(workspace, issue)
    html = prepared_of(workspace).html(READER)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_text_part(issue_ws: Workspace) -> None:
    text = prepared_of(issue_ws).text(READER)
    assert "THE WEEKLY BRIEF" in text and "NEWS\n" in text
    assert "https://news.example.com/2026/12/story-0\n" in text
    assert re.search(r"Unsubscribe:\nhttps://newsletter.example.com/unsubscribe/\S+\n", text)
    assert "1 Press Lane, Springfield" in text
    assert all(len(line) <= 78 for line in text.splitlines() if "://" not in line)
    assert "<strong>" not in text and "&amp;" not in text


def test_wrap_keeps_lines_short_and_long_urls_whole() -> None:
    url = "https://news.example.com/" + "a" * 120
    wrapped = wrap("word " * 40 + url + " tail")
    lines = wrapped.split("\n")
    assert url in lines
    assert all(len(line) <= 78 for line in lines if line != url)
    giant = wrap("x" * 2500)
    assert max(len(line) for line in giant.split("\n")) <= MAX_LINE
    assert giant.replace("\n", "") == "x" * 2500
    assert wrap("- one\n- two") == "- one\n- two"


OVERRIDE = """{% extends "default:email.html" %}
{% block intro %}
<tr><td class="intro"><p title="For {{ recipient.name }}">Dear {{ recipient.name }},</p>
<p><a href="mailto:{{ recipient.email }}">{{ recipient.email }}</a></p></td></tr>
{{ super() }}
{% endblock %}
{% block footer %}{{ super() }}<tr><td>Our own line.</td></tr>{% endblock %}
"""


def _override(ws: Workspace, name: str, text: str) -> None:
    (ws.templates_dir / name).write_text(text, encoding="utf-8")


def test_workspace_template_extends_the_builtin(issue_ws: Workspace) -> None:
    _override(issue_ws, "email.html", OVERRIDE)
    html = prepared_of(issue_ws).html(READER)
    assert "Dear Ann," in html and "Our own line." in html
    assert "View in browser" in html  # the rest of the built-in is still there


def test_workspace_template_replaces_the_builtin(issue_ws: Workspace) -> None:
    _override(issue_ws, "email.txt", "Just {{ newsletter.name }} for {{ recipient.email }}\n")
    text = prepared_of(issue_ws).text(READER)
    assert text == "Just The Weekly Brief for ann@example.com\n"


def test_a_misspelt_variable_names_template_and_line(issue_ws: Workspace) -> None:
    _override(
        issue_ws,
        "email.html",
        '{% extends "default:email.html" %}\n{% block footer %}\n<tr><td>{{ newsleter.name }}'
        "</td></tr>\n{% endblock %}\n",
    )
    with pytest.raises(TemplateError, match=r"templates/email\.html:3: 'newsleter' is undefined"):
        prepared_of(issue_ws)


def test_a_syntax_error_names_template_and_line(issue_ws: Workspace) -> None:
    _override(issue_ws, "email.txt", "line one\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"email\.txt:2"):
        prepared_of(issue_ws)


def test_a_template_that_changes_a_recipient_value_is_refused(issue_ws: Workspace) -> None:
    _override(
        issue_ws,
        "email.html",
        '{% extends "default:email.html" %}{% block intro %}<tr><td>{{ recipient.email | upper }}'
        "</td></tr>{% endblock %}",
    )
    with pytest.raises(TemplateError, match="print recipient values as they are"):
        prepared_of(issue_ws)


@pytest.mark.parametrize(
    ("where", "snippet"),
    [
        (
            "a style attribute",
            '<p style="color: red" title="x">{{ recipient.email }}</p>'
            '<p style="font-family: {{ recipient.name }}">x</p>',
        ),
        ("an HTML comment", "<!-- for {{ recipient.email }} -->"),
        ("a <script> element", "<script>var who = 1; // {{ recipient.name }}</script>"),
    ],
)
def test_a_recipient_value_where_it_cannot_be_filled_safely_is_refused(
    issue_ws: Workspace, where: str, snippet: str
) -> None:
    _override(
        issue_ws,
        "email.html",
        '{% extends "default:email.html" %}{% block intro %}<tr><td>'
        + snippet
        + "</td></tr>{% endblock %}",
    )
    with pytest.raises(TemplateError, match=f"sits in {re.escape(where)}"):
        prepared_of(issue_ws)


def test_prepare_is_cached_until_something_changes(issue_ws: Workspace) -> None:
    first = prepared_of(issue_ws)
    assert prepared_of(issue_ws) is first
    _override(issue_ws, "email.txt", "changed {{ recipient.email }}\n")
    second = prepared_of(issue_ws)
    assert second is not first and second.text(READER) == "changed ann@example.com\n"
    issue = workspace_issue(issue_ws, ISSUE_DAY)
    issue.subject = "Another subject"
    assert prepare(issue_ws, issue) is not second


def test_public_html_has_no_personal_data(issue_ws: Workspace) -> None:
    prepared = prepared_of(issue_ws)
    public = prepared.html_public()
    assert "reader@example.com" not in public and "@example.com" not in public.split("<body")[1]
    assert "/unsubscribe" not in public and ">Unsubscribe<" not in public
    assert prepared.tokens.unsubscribe("sample") not in public
    assert "1 Press Lane" in public


def test_the_archive_copy_is_a_public_page(issue_ws: Workspace) -> None:
    """No "you subscribed" line, no unsubscribe or "View in browser" link; a subscribe link."""
    prepared = prepared_of(issue_ws)
    public = prepared.html_public()
    assert "You get this email because" not in public
    assert "View in browser" not in public and "This email was sent to" not in public
    assert re.search(r'href="https://newsletter.example.com/subscribe"[^>]*>Subscribe</a>', public)
    text = prepared.text_public()
    assert "Unsubscribe" not in text and "View in browser" not in text
    assert "https://newsletter.example.com/subscribe" in text


# -- premailer once per issue -----------------------------------------------------


def _runs_during(work) -> int:
    before = premailer_runs()
    work()
    return premailer_runs() - before


def test_premailer_runs_once_for_a_whole_issue(issue_ws: Workspace) -> None:
    """Prepare, check, build every kind of reader's message: one premailer run in all."""
    from digest.check import check_prepared
    from digest.message import MessageBuilder

    readers = [
        Recipient("s-1", "ann@example.com", "Ann"),
        Recipient("s-2", "bob@example.com", ""),
        Recipient("s-3", "zoe@example.com", 'Zoë & "Q" <Ünï> 😀'),
        sample_recipient(),
    ]

    def whole_issue() -> None:
        prepared = prepared_of(issue_ws)
        check_prepared(prepared)
        builder = MessageBuilder.for_workspace(issue_ws, prepared)
        for reader in readers:
            builder.build(reader)
            builder.parts(reader)
            prepared.html(reader)
            prepared.text(reader)

    assert _runs_during(whole_issue) == 1
    assert _runs_during(whole_issue) == 0  # same issue, templates and config: cached
    _override(issue_ws, "email.txt", "changed {{ recipient.email }}\n")
    assert _runs_during(whole_issue) == 1  # one more per template change
    prepared = prepared_of(issue_ws)
    assert _runs_during(prepared.html_public) == 1  # the archive copy, on first use only
    assert _runs_during(prepared.html_public) == 0


def test_a_refused_template_costs_no_premailer_run(issue_ws: Workspace) -> None:
    _override(
        issue_ws,
        "email.html",
        '{% extends "default:email.html" %}{% block intro %}<tr><td>{{ recipient.name | upper }}'
        "</td></tr>{% endblock %}",
    )
    before = premailer_runs()
    with pytest.raises(TemplateError, match="email.html: a recipient value"):
        prepared_of(issue_ws)
    assert premailer_runs() == before


BRANCH = """{% extends "default:email.html" %}
{% block intro %}
<tr><td class="intro"><p>{% if recipient.name %}Hi {{ recipient.name }},
{% else %}Hi there,{% endif %}</p>
<p><a href="mailto:{{ recipient.email }}">{{ recipient.email }}</a></p></td></tr>
{{ super() }}
{% endblock %}
"""

# The name alone in a text run and as a whole attribute: empty, the run would be blank.
ALONE = """{% extends "default:email.html" %}
{% block intro %}
<tr><td class="intro" title="{{ recipient.name }}">
{{ recipient.name }}
</td></tr>
<tr><td><span>{{ recipient.name }}</span> reads {{ recipient.email }}</td></tr>
{{ super() }}
{% endblock %}
"""

TEMPLATES = {"default": None, "override": OVERRIDE, "branch": BRANCH, "alone": ALONE}


def _name_in_head(ws: Workspace) -> None:
    """A base.html with the name alone in <head>: text there starts the body early."""
    base = (Path(render.BUILTIN_DIR) / "base.html").read_text(encoding="utf-8")
    _override(ws, "base.html", base.replace("<title>", "{{ recipient.name }}\n<title>"))


def _use(ws: Workspace, template: str) -> None:
    if template == "head":
        _name_in_head(ws)
    elif TEMPLATES[template]:
        _override(ws, "email.html", TEMPLATES[template])


@pytest.mark.parametrize("template", ["branch", "alone", "head"])
def test_a_second_skeleton_only_when_a_nameless_reader_needs_it(
    issue_ws: Workspace, template: str
) -> None:
    _use(issue_ws, template)
    named, nameless = READER, Recipient("s-2", "bob@example.com", "")
    prepared = None

    def prepare_and_fill_named() -> None:
        nonlocal prepared
        prepared = prepared_of(issue_ws)
        prepared.html(named)

    assert _runs_during(prepare_and_fill_named) == 1
    assert _runs_during(lambda: prepared.html(nameless)) == 1
    assert _runs_during(lambda: prepared.html(nameless)) == 0
    _same_both_ways(prepared, named)
    _same_both_ways(prepared, nameless)


# -- the fast path is a full render, byte for byte ------------------------------

NAMES = [
    "Tom & Jerry",
    "<b>bold</b>",
    'Ann "The Quill" O\'Brien',
    "Zoë Ünïcødé",
    "Дмитрий Петров",
    "🦊 Fox 🎉",
    "a&amp;b",
    "  spaced\tout\nname ",
    "",
]


def _same_both_ways(prepared, recipient: Recipient) -> None:
    html, text = prepared.render_full(recipient)
    assert prepared.html(recipient) == html
    assert prepared.text(recipient) == text


@pytest.mark.parametrize("template", [*TEMPLATES, "head"])
@pytest.mark.parametrize("name", NAMES)
def test_fast_fill_equals_full_render(issue_ws: Workspace, name: str, template: str) -> None:
    _use(issue_ws, template)
    prepared = prepared_of(issue_ws)
    recipient = Recipient("id-" + name, "o'brien+news@example.com", name)
    _same_both_ways(prepared, recipient)
    assert prepared.html(recipient) != prepared.html(Recipient("other", "x@example.com", name))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    local=st.from_regex(r"[a-z0-9.&'+_-]{1,12}", fullmatch=True),
)
@pytest.mark.parametrize("template", ["override", "branch"])
def test_fast_fill_equals_full_render_for_any_name(
    issue_ws: Workspace, template: str, name: str, local: str
) -> None:
    if not (issue_ws.templates_dir / "email.html").exists():
        _use(issue_ws, template)
    prepared = prepared_of(issue_ws)
    _same_both_ways(prepared, Recipient("hyp", f"{local}@example.com", name))


def test_names_are_cleaned_of_control_characters() -> None:
    assert clean_name("  Ann\x00 \r\n Lee\u2028 ") == "Ann Lee"
    assert Recipient("1", " a@example.com ", "Ann\tLee").name == "Ann Lee"
    assert Recipient("1", " a@example.com ").email == "a@example.com"


def test_sample_recipient_is_not_a_real_address() -> None:
    assert sample_recipient().email.endswith("@example.com")


# -- commands ---------------------------------------------------------------------


def test_render_command_writes_parts_and_eml(cli, issue_ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = cli(
        "render",
        "2026-12-04",
        "--html",
        str(out / "a.html"),
        "--text",
        str(out / "a.txt"),
        "--eml",
        str(out / "a.eml"),
        "--to",
        "Zoë <zoe@example.com>",
    )
    assert result.exit_code == 0, result.output
    assert "zoe@example.com" in (out / "a.html").read_text(encoding="utf-8")
    assert "zoe@example.com" in (out / "a.txt").read_text(encoding="utf-8")
    assert b"To: =?utf-8?b?" in (out / "a.eml").read_bytes()


def test_render_command_prints_html_of_the_upcoming_issue(cli, issue_ws: Workspace) -> None:
    result = cli("--now", "2026-12-01T10:00:00Z", "render")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<!DOCTYPE html>") and "reader@example.com" in result.output


def test_templates_command_lists_builtins_and_overrides(cli, issue_ws: Workspace) -> None:
    _override(issue_ws, "email.txt", "x {{ recipient.email }}\n")
    _override(issue_ws, "extra.html", "x")
    lines = cli("templates").output.splitlines()
    assert any(re.fullmatch(r"email\.txt\s+overridden", line) for line in lines)
    assert any(re.fullmatch(r"email\.html\s+built-in", line) for line in lines)
    assert any(re.fullmatch(r"extra\.html\s+workspace only", line) for line in lines)


def test_unconfigured_section_is_still_rendered(workspace: Workspace) -> None:
    issue = sample_issue(1)
    issue.articles.append(Article(url="https://news.example.com/x", title="X", section="Sport"))
    write_issue(workspace, issue)
    assert 'data-section="Sport"' in prepared_of(workspace).html(READER)


def test_no_invalid_presentational_attributes_after_inlining(issue_ws: Workspace) -> None:
    """premailer copies CSS into attributes; only those HTML allows on that element remain."""
    import lxml.html

    from digest.confirmation import build

    documents = [
        prepared_of(issue_ws).html(READER),
        prepared_of(issue_ws).html_public(),
        build(issue_ws, "ann@example.com", "Ann", "https://newsletter.example.com/confirm/t").html,
    ]
    allowed = {
        "width": {"table", "td", "th", "img"},
        "height": {"table", "td", "th", "img"},
        "bgcolor": {"body", "table", "tr", "td", "th"},
    }
    for html in documents:
        for element in lxml.html.document_fromstring(html).iter():
            if not isinstance(element.tag, str):
                continue
            for name, tags in allowed.items():
                value = element.get(name)
                if value is None:
                    continue
                assert element.tag in tags, f"<{element.tag} {name}={value!r}>"
                if name != "bgcolor":
                    assert re.fullmatch(r"\d+%?", value), f"<{element.tag} {name}={value!r}>"


def test_the_preheader_stays_hidden_where_display_none_is_ignored(issue_ws: Workspace) -> None:
    """Gmail's webmail for non-Google accounts ignores display:none (caniemail), so the
    preheader also collapses, clips and fades itself: no low-contrast colour trick."""
    html = prepared_of(issue_ws).html(READER)
    style = re.search(r'<div class="preheader" style="([^"]*)"', html)
    assert style is not None, html[:2000]
    rules = {
        name.strip(): value.strip()
        for name, _, value in (rule.partition(":") for rule in style.group(1).split(";"))
        if name.strip()
    }
    assert rules == {
        "display": "none",
        "mso-hide": "all",
        "max-height": "0",
        "overflow": "hidden",
        "opacity": "0",
        "font-size": "1px",
        "line-height": "1px",
    }


def _footer(html: str) -> str:
    cell = re.search(r'<td class="footer"[^>]*>(.*?)</td>', html, re.S)
    assert cell is not None
    return " ".join(re.sub(r"<[^>]+>", " ", cell.group(1)).replace("&middot;", "·").split())


def test_the_footer_names_the_newsletter_once(issue_ws: Workspace) -> None:
    # The repository's own sample workspace: its postal address does not repeat the name.
    sample = open_workspace(Path(__file__).parent.parent)
    assert not sample.config.newsletter.postal_address.startswith(sample.config.newsletter.name)
    html = prepared_of(issue_ws).html(READER)
    assert "The Weekly Brief · 1 Press Lane, Springfield" in _footer(html)
    # An address that starts with the name itself: the name is not said twice.
    ws = set_config(
        issue_ws,
        'postal_address = "1 Press Lane, Springfield"',
        'postal_address = "The Weekly Brief, 1 Press Lane, Springfield"',
    )
    prepared = prepared_of(ws)
    footer = _footer(prepared.html(READER))
    assert footer.count("The Weekly Brief") == 2, footer  # the `why` line, then the address
    assert footer.endswith("The Weekly Brief, 1 Press Lane, Springfield")
    text = prepared.text(READER)
    assert "The Weekly Brief, The Weekly Brief" not in text
    assert text.rstrip().endswith("The Weekly Brief, 1 Press Lane, Springfield")
    # The confirmation email shares the footer's rule.
    from digest import confirmation

    mail = confirmation.build(ws, "ann@example.com", "Ann", "https://x.example/confirm/t")
    assert mail.text.rstrip().endswith("--\nThe Weekly Brief, 1 Press Lane, Springfield")
    assert "The Weekly Brief · The Weekly Brief" not in _footer(mail.html)


def test_the_archive_copy_offers_subscribe_once(issue_ws: Workspace) -> None:
    footer = _footer(prepared_of(issue_ws).html_public())
    assert footer.count("Subscribe") == 1, footer
    assert "Past issues" in footer and "Privacy policy" in footer
