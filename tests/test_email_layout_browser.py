"""What a reader sees, in a real Chromium: the issue and the confirmation email hold their
layout at phone and desktop widths, light and dark, with <style> kept or dropped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _email_fixtures import (
    awkward_issue,
    confirmation_html,
    demo_html,
    issue_html,
    serve_sample_images,
    strip_style,
)
from _render_fixtures import set_config

from digest.render import MAX_IMAGE_HEIGHT
from digest.workspace import Workspace

pytestmark = pytest.mark.browser

WIDTHS = (320, 375, 600, 1024)
DOCS = Path(__file__).parent.parent / "docs"

MEASURE = """() => {
  const right = Math.max(...[...document.querySelectorAll('body *')]
      .map(e => e.getBoundingClientRect().right));
  const sheet = document.querySelector('.sheet').getBoundingClientRect();
  return {doc: document.documentElement.scrollWidth, right: right, sheet: sheet.width,
          background: getComputedStyle(document.querySelector('.sheet-table')).backgroundColor};
}"""


def _render(browser, html: str, width: int, scheme: str) -> dict:
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        serve_sample_images(page)
        page.set_content(html, wait_until="load")
        return page.evaluate(MEASURE)
    finally:
        context.close()


@pytest.fixture
def documents(workspace: Workspace) -> dict[str, str]:
    awkward_issue(workspace)
    issue, confirm = issue_html(workspace), confirmation_html(workspace)
    return {
        "issue": issue,
        "issue without <style>": strip_style(issue),
        "confirmation": confirm,
        "confirmation without <style>": strip_style(confirm),
    }


def test_never_wider_than_the_screen(browser, documents: dict[str, str]) -> None:
    too_wide = []
    for name, html in documents.items():
        for width in WIDTHS:
            for scheme in ("light", "dark"):
                seen = _render(browser, html, width, scheme)
                if seen["doc"] > width or seen["right"] > width + 0.5:
                    too_wide.append(f"{name} at {width}px {scheme}: {seen}")
                # Fluid up to 600px: the sheet fills a phone and stops at 600.
                assert seen["sheet"] == min(width, 600), (name, width, seen)
                if "<style>" in html and scheme == "dark":
                    assert seen["background"] == "rgb(27, 27, 27)", (name, width)
                elif scheme == "light" or "<style>" not in html:
                    assert seen["background"] == "rgb(255, 255, 255)", (name, width)
    assert not too_wide, "\n".join(too_wide)


def test_tall_pictures_are_capped_and_wide_ones_fit(browser, workspace: Workspace) -> None:
    awkward_issue(workspace)
    html = strip_style(issue_html(workspace))
    for width in (375, 1024):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        serve_sample_images(page)
        page.set_content(html, wait_until="load")
        boxes = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.src.split('/').pop(), e.width, e.height])"
        )
        context.close()
        sizes = {name: (w, h) for name, w, h in boxes}
        assert sizes["tula.jpg"][1] <= MAX_IMAGE_HEIGHT and sizes["tula.jpg"][0] <= 288
        assert sizes["pipeline.jpg"][0] <= min(536, width - 64)
        # Without a stated size, the picture keeps its own proportions.
        w, h = sizes["rapprochement.jpg"]
        assert abs(h - w * 630 / 1200) <= 1


def test_right_to_left_issue_is_mirrored(browser, workspace: Workspace) -> None:
    ws = set_config(workspace, 'language = "en"', 'language = "ar"')
    awkward_issue(ws)
    html = issue_html(ws)
    assert '<html lang="ar" dir="rtl"' in html
    context = browser.new_context(viewport={"width": 600, "height": 900})
    page = context.new_page()
    page.route("**/*", lambda route: route.abort())
    page.set_content(strip_style(html))
    wrapper = page.eval_on_selector(
        "[role=article]", "e => [e.getAttribute('lang'), getComputedStyle(e).direction]"
    )
    dateline = page.eval_on_selector(
        ".dateline",
        "e => { const r = document.createRange(); r.selectNodeContents(e);"
        " const t = r.getBoundingClientRect(); const c = e.getBoundingClientRect();"
        " return [t.left - c.left, c.right - t.right]; }",
    )
    context.close()
    assert wrapper == ["ar", "rtl"]
    gap_left, gap_right = dateline
    assert gap_right < 1 < gap_left  # the text starts at the right


def test_screenshots_of_the_default_design(browser, demo_ws: Workspace, tmp_path: Path) -> None:
    """docs/email-375.png and docs/email-640.png: the demo issue as a phone and a desktop show it.

    Written to docs/ when DIGEST_WRITE_SCREENSHOTS=1 (then committed), else to a
    temporary folder, so every run still proves they can be made.
    """
    folder = DOCS if os.environ.get("DIGEST_WRITE_SCREENSHOTS") == "1" else tmp_path
    html = demo_html(demo_ws)
    for width in (375, 640):
        context = browser.new_context(viewport={"width": width, "height": 1400})
        page = context.new_page()
        serve_sample_images(page)
        page.set_content(html, wait_until="load")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        path = folder / f"email-{width}.png"
        page.screenshot(path=str(path))
        context.close()
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
