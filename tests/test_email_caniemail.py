"""The caniemail data finds nothing in the default templates that Gmail or Outlook lacks.

Every CSS property (in style attributes and in <style> rules outside @media),
selector kind, HTML element and attribute of the rendered issue and
confirmation email is looked up in caniemail's support tables (vendored under
tests/fixtures/caniemail) for Gmail (web, iOS, Android) and Outlook (Windows,
macOS, web). Left out, as the design intends: Outlook's conditional comments
(only Outlook reads them) and the @media blocks, which only refine a layout
that holds without them (tests/test_email_layout_browser.py drops the whole
<style> and measures), and, for Outlook for Windows only, what an element hidden there
with mso-hide:all says besides (the preheader's fallback for Gmail's webmail).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import lxml.html
from _email_fixtures import confirmation_html, issue_html
from _render_fixtures import sample_issue, write_issue

from digest.workspace import Workspace

DATA = Path(__file__).parent / "fixtures" / "caniemail" / "caniemail.json"
CLIENTS = {
    ("gmail", "desktop-webmail"): "Gmail web",
    ("gmail", "ios"): "Gmail iOS",
    ("gmail", "android"): "Gmail Android",
    ("outlook", "windows"): "Outlook Windows",
    ("outlook", "macos"): "Outlook macOS",
    ("outlook", "outlook-com"): "Outlook web",
}
# What every HTML document has, whatever its design: the data marks them unsupported
# where a client ignores them (Outlook for Windows: "the HTML5 doctype has no impact";
# Outlook for macOS replaces <body> with a <div>), not where something breaks.
STRUCTURAL = {"html-doctype", "html-body"}

ELEMENTS = {
    "div": "html-div",
    "p": "html-p",
    "span": "html-span",
    "img": "html-img",
    "table": "html-table",
    "strong": "html-strong",
    "b": "html-strong",
    "ul": "html-lists",
    "ol": "html-lists",
    "li": "html-lists",
    "blockquote": "html-blockquote",
    "code": "html-code",
    "pre": "html-pre",
    "hr": "html-hr",
    "small": "html-small",
    "del": "html-del",
    "style": "html-style",
    "body": "html-body",
    "svg": "html-svg",
    "picture": "html-picture",
    "video": "html-video",
    "form": "html-form",
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
}
ATTRIBUTES = {
    "lang": "html-lang",
    "dir": "html-dir",
    "role": "html-role",
    "aria-label": "html-aria-label",
    "aria-hidden": "html-aria-hidden",
    "aria-labelledby": "html-aria-labelledby",
    "aria-describedby": "html-aria-describedby",
    "align": "html-align",
    "valign": "html-valign",
    "width": "html-width",
    "height": "html-height",
    "cellpadding": "html-cellpadding",
    "cellspacing": "html-cellspacing",
    "background": "html-background",
    "target": "html-target",
    "srcset": "html-srcset",
    "loading": "html-loading-attribute",
}
# CSS properties whose feature is a family (padding-left is css-padding).
FAMILIES = ("padding", "margin", "border", "background", "font", "text-decoration", "outline")


@cache
def support() -> dict[str, dict[str, str]]:
    """slug -> {client label: the latest tested version's verdict ('y', 'a #1', 'n' ...)}."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    table: dict[str, dict[str, str]] = {}
    for feature in data["data"]:
        verdicts = {}
        for (family, platform), label in CLIENTS.items():
            versions = feature["stats"].get(family, {}).get(platform)
            if versions:
                verdicts[label] = list(versions.values())[-1]
        table[feature["slug"]] = verdicts
    return table


def css_feature(prop: str, value: str) -> list[str]:
    prop = prop.strip().lower()
    value = value.strip().lower()
    slugs = []
    if prop == "display":
        slugs.append("css-display-none" if value == "none" else "css-display")
    elif f"css-{prop}" in support():
        slugs.append(f"css-{prop}")
    else:
        for family in FAMILIES:
            if prop.startswith(family + "-") and f"css-{family}" in support():
                slugs.append(f"css-{family}")
                break
    if "!important" in value:
        slugs.append("css-important")
    if re.search(r"\brgba?\(", value):
        slugs.append("css-rgba" if "rgba(" in value else "css-rgb")
    for unit, slug in (("px", "css-unit-px"), ("%", "css-unit-percent"), ("em", "css-unit-em")):
        if re.search(rf"\d{re.escape(unit)}\b" if unit != "%" else r"\d%", value):
            slugs.append(slug)
    if re.search(r"\d(vw|vh)\b", value):
        slugs.append("css-unit-vw")
    if "calc(" in value:
        slugs.append("css-unit-calc")
    return slugs


def declarations(css: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"([-a-zA-Z]+)\s*:\s*([^;{}]+)", css)]


def top_level_rules(css: str) -> list[tuple[str, str]]:
    """(selector, body) of each rule outside @media (and other at-rule) blocks."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules, depth, start, selector_start = [], 0, 0, 0
    at_rule = False
    for index, char in enumerate(css):
        if char == "{":
            if depth == 0:
                selector = css[selector_start:index].strip()
                at_rule = selector.startswith("@")
                start = index + 1
                current = selector
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                if not at_rule:
                    rules.append((current, css[start:index]))
                selector_start = index + 1
    return rules


def selector_features(selector: str) -> list[str]:
    slugs = []
    for part in selector.split(","):
        part = part.strip()
        if "," in selector:
            slugs.append("css-selector-grouping")
        if re.search(r"\s", part):
            slugs.append("css-selector-descendant")
        if "." in part:
            slugs.append("css-selector-class")
        if re.match(r"^[a-z]", part):
            slugs.append("css-selector-type")
        if "#" in part:
            slugs.append("css-selector-id")
        if "[" in part:
            slugs.append("css-selector-attribute")
        if ">" in part:
            slugs.append("css-selector-child")
        for pseudo in re.findall(r":([a-z-]+)", part):
            slugs.append(f"css-pseudo-class-{pseudo}")
    return slugs


# Outlook for Windows does not show an element styled mso-hide:all (the preheader), so
# what else that element says (the fallback that hides it in Gmail's webmail for
# non-Google accounts, which ignores display:none) need not work there.
MSO_HIDDEN = " (hidden in Outlook: mso-hide)"


def _mso_hidden(css: str) -> bool:
    return any(
        p.strip().lower() == "mso-hide" and v.strip().lower() == "all" for p, v in declarations(css)
    )


def features(html: str) -> dict[str, set[str]]:
    """Each caniemail slug the document uses, with where (for the report)."""
    html = re.sub(r"<!--\[if [^\]]*\]>.*?<!\[endif\]-->", "", html, flags=re.S)
    found: dict[str, set[str]] = {}

    def add(slug: str, where: str) -> None:
        found.setdefault(slug, set()).add(where)

    if html.lstrip().lower().startswith("<!doctype"):
        add("html-doctype", "<!DOCTYPE>")
    doc = lxml.html.document_fromstring(html)
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower()
        if tag in ELEMENTS:
            add(ELEMENTS[tag], f"<{tag}>")
        if tag == "meta" and (element.get("name") or "").lower() == "color-scheme":
            add("html-meta-color-scheme", "<meta name=color-scheme>")
        for name, value in element.attrib.items():
            name = name.lower()
            if name in ATTRIBUTES:
                add(ATTRIBUTES[name], f"<{tag} {name}>")
            if name == "href" and value.startswith("#"):
                add("html-anchor-links", f"<{tag} href=#>")
            if name == "href" and value.startswith("mailto:"):
                add("html-mailto-links", f"<{tag} href=mailto:>")
            if name == "style":
                hidden = MSO_HIDDEN if _mso_hidden(value) else ""
                for prop, val in declarations(value):
                    for slug in css_feature(prop, val):
                        add(slug, f"<{tag} style={prop}>{hidden}")
        if tag == "style":
            for selector, body in top_level_rules(element.text or ""):
                for slug in selector_features(selector):
                    add(slug, f"<style> {selector}")
                hidden = MSO_HIDDEN if _mso_hidden(body) else ""
                for prop, val in declarations(body):
                    for slug in css_feature(prop, val):
                        add(slug, f"<style> {selector} {{{prop}}}{hidden}")
    return found


def unsupported(html: str) -> list[str]:
    """One line per feature some target client lacks ('n'), structural ones left out."""
    lines = []
    for slug, where in sorted(features(html).items()):
        if slug in STRUCTURAL:
            continue
        lacking = [
            label for label, verdict in support().get(slug, {}).items() if verdict.startswith("n")
        ]
        if all(w.endswith(MSO_HIDDEN) for w in where):
            lacking = [label for label in lacking if label != "Outlook Windows"]
        if lacking:
            lines.append(
                f"{slug}: not in {', '.join(lacking)} (used by {', '.join(sorted(where)[:3])})"
            )
    return lines


def test_the_data_knows_our_target_clients() -> None:
    assert support()["css-max-width"]["Outlook Windows"].startswith("a")
    assert support()["css-overflow-wrap"]["Gmail web"] == "n"


def test_the_detector_finds_what_a_client_lacks() -> None:
    """A document using features the data marks unsupported is reported, each by name."""
    bad = (
        '<html><head><meta name="color-scheme" content="light dark"></head><body>'
        '<div style="overflow-wrap:anywhere; opacity:0.5; box-sizing:border-box">x</div>'
        "</body></html>"
    )
    report = "\n".join(unsupported(bad))
    for slug in ("css-overflow-wrap", "css-opacity", "css-box-sizing", "html-meta-color-scheme"):
        assert slug in report


def test_the_default_templates_use_nothing_gmail_or_outlook_lacks(workspace: Workspace) -> None:
    issue = sample_issue(6)
    issue.intro = "Hello **there**: [a link](https://news.example.com/x).\n\n- one\n- two"
    issue.articles[0].image_size = "800x1000"
    write_issue(workspace, issue)
    documents = {"issue": issue_html(workspace), "confirmation": confirmation_html(workspace)}
    report = []
    for name, html in documents.items():
        used = features(html)
        # The detector did look: the usual suspects of an email were found.
        assert {"css-padding", "css-max-width", "html-table", "html-lang", "html-dir"} <= set(used)
        report += [f"{name}: {line}" for line in unsupported(html)]
    assert not report, "\n".join(report)
